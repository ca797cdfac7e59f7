"""The page of `python run.py serve` in headless Chromium: a digit drawn on it with the mouse, and a screenshot.

    apt-get update && apt-get install -y chromium        # Debian's Chromium, once
    python run.py --preset cnn --epochs 1 && python run.py export --run RUN
    python scripts/page_screenshot.py RUN docs/serve-page.png

It starts `serve` on a free port of 127.0.0.1 (graph_nn/serving/child.py), opens its page in Chromium (driven by
Playwright), draws the strokes of DIGITS[digit] as a person would, waits for the page's answer, prints it and saves
the screenshot.
tests/test_page.py draws with the same strokes.
"""

import argparse
import pathlib

from graph_nn.serving.child import ServerProcess

# The strokes of a few digits, each a list of (x, y) points in a 0..1 square, as a hand draws them.
DIGITS = {
    0: [
        [
            (0.5, 0.15),
            (0.3, 0.25),
            (0.25, 0.5),
            (0.3, 0.75),
            (0.5, 0.85),
            (0.7, 0.75),
            (0.75, 0.5),
            (0.7, 0.25),
            (0.5, 0.15),
        ]
    ],
    1: [[(0.45, 0.25), (0.55, 0.12), (0.55, 0.88)]],
    7: [[(0.25, 0.18), (0.75, 0.18), (0.45, 0.88)]],
}
# Chromium as the test machine has it: Debian's, headless, no sandbox (root), and none of the background
# connections that this machine's closed network would refuse.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ANSWER_MILLISECONDS = 60_000
STEPS_PER_SEGMENT = 8  # mouse moves between two points of a stroke: the page sees a moving pointer, not jumps


def open_page(browser, base):
    """The server's page in a new tab, once it has read what the server serves."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(base + "/")
    page.wait_for_function("document.getElementById('model').textContent.startsWith('Model')")
    return page


def draw(page, digit):
    """Draws DIGITS[digit] on the page's square with the mouse; returns the digit the page then shows."""
    answered = int(page.get_attribute("body", "data-predictions"))
    box = page.locator("#pad").bounding_box()
    for stroke in DIGITS[digit]:
        points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=STEPS_PER_SEGMENT)
        page.mouse.up()
    # Each stroke's end asks the server; the answer to the last one is the digit as drawn.
    page.wait_for_function(
        f"Number(document.body.dataset.predictions) >= {answered + len(DIGITS[digit])}", timeout=ANSWER_MILLISECONDS
    )
    return int(page.inner_text("#digit"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", metavar="RUN_OR_EXPORT")
    parser.add_argument("png", type=pathlib.Path)
    parser.add_argument("--digit", type=int, choices=sorted(DIGITS), default=7)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    server = ServerProcess(args.source)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = open_page(browser, server.base)
            print(f"drew a {args.digit}; the page says {draw(page, args.digit)}")
            page.screenshot(path=str(args.png), full_page=True)
            browser.close()
    finally:
        server.stop()
    print(f"screenshot: {args.png}")


if __name__ == "__main__":
    main()
