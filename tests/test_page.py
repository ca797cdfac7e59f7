"""`serve`'s page in a real headless Chromium (Debian's, driven by Playwright): digits drawn with the mouse and
files opened on it, read back from what the page shows."""

import base64
import os

import numpy as np
import pytest
from PIL import Image

from graph_nn.data.digit_images import prepare
from graph_nn.reports.export import saved_model_predictions
from graph_nn.reports.predict import predict_files
from graph_nn.serving.child import ServerProcess
from scripts.page_screenshot import CHROMIUM, CHROMIUM_FLAGS, draw, open_page

ANSWER_MILLISECONDS = 60_000


@pytest.fixture(scope="module")
def served(exported, tmp_path_factory):
    """The base URL of `serve` on the exported short run."""
    with open(tmp_path_factory.mktemp("page") / "serve-stderr.txt", "w") as log:
        server = ServerProcess(exported, stderr=log)
        yield server.base
        server.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} not found: apt-get install -y chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, served):
    page = open_page(browser, served)
    yield page
    page.close()


def shown_probabilities(page):
    return [float(value) for value in page.locator("#bars .value").all_inner_texts()]


def pad_png(page):
    url = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
    return base64.b64decode(url.split(",", 1)[1])


def assert_shows_saved_models_answer(page, run_dir, digit):
    """The page shows what run_dir's SavedModel predicts for `digit` (a prepared 784-vector), to 4 decimals."""
    probabilities, classes = saved_model_predictions(run_dir.saved_model, digit[None])
    assert int(page.inner_text("#digit")) == classes[0]
    np.testing.assert_allclose(shown_probabilities(page), probabilities[0], atol=5.1e-5)


@pytest.mark.parametrize("digit", [7, 1, 0])
def test_a_digit_drawn_with_the_mouse_is_read_as_that_digit(page, exported, digit):
    assert draw(page, digit) == digit
    # What the page drew, prepared here as `predict` prepares a file, is what the server classified.
    assert_shows_saved_models_answer(page, exported, prepare(pad_png(page), "the pad"))


def test_the_page_shows_the_prepared_input_and_each_layer(page):
    draw(page, 7)
    assert page.locator("[data-layer]").evaluate_all("panels => panels.map(p => p.dataset.layer)") == [
        "hidden1",
        "output",
    ]
    assert page.locator("[data-layer] h3").all_inner_texts() == ["hidden1: 64 units", "output: the 10 logits"]
    seen = page.evaluate("Array.from(document.getElementById('seen').getContext('2d').getImageData(0, 0, 28, 28).data)")
    grey = np.array(seen, dtype=np.float32).reshape(28, 28, 4)[..., 0] / 255
    expected = prepare(pad_png(page), "the pad").reshape(28, 28)
    assert np.abs(grey - expected).max() <= 0.5 / 255 + 1e-6  # the prepared input, in 8 bits


def test_an_image_file_opened_on_the_page_gets_the_answer_predict_gives(page, exported, mnist, tmp_path):
    """A test digit as a scan would have it (dark ink on white, 4x larger), opened with the page's file input."""
    ink = 255 - (mnist.test.images[0].reshape(28, 28) * 255).astype(np.uint8)
    path = tmp_path / "seven.png"
    Image.fromarray(ink).resize((112, 112), Image.Resampling.BILINEAR).save(path)
    answered = int(page.get_attribute("body", "data-predictions"))
    page.set_input_files("#file", str(path))
    page.wait_for_function(f"Number(document.body.dataset.predictions) > {answered}", timeout=ANSWER_MILLISECONDS)
    [prediction] = predict_files(exported, [path])
    assert int(page.inner_text("#digit")) == prediction.digit == 7
    np.testing.assert_allclose(shown_probabilities(page), prediction.probabilities, atol=5.1e-5)


def test_a_file_that_is_not_an_image_gets_the_servers_sentence(page, tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a picture at all")
    page.set_input_files("#file", str(path))
    page.wait_for_selector("#status.error", timeout=ANSWER_MILLISECONDS)
    assert page.inner_text("#status").startswith("The image sent: not an image file Pillow can read")
