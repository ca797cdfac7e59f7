"""Keras-style progress on the terminal: a live bar per epoch on a TTY, one clean line per epoch otherwise."""
import sys
import time

BAR_WIDTH = 30
REDRAW_SECONDS = 0.1


def format_metrics(metrics):
    return " - ".join(f"{name}: {value:.4f}" for name, value in metrics.items())


class Meter:
    """Running means of loss and accuracy since the last reset."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.count = 0
        self.loss = 0.0
        self.accuracy = 0.0

    def add(self, loss, accuracy):
        self.count += 1
        self.loss += (float(loss) - self.loss) / self.count
        self.accuracy += (float(accuracy) - self.accuracy) / self.count

    def means(self):
        return {"loss": self.loss, "accuracy": self.accuracy}


class EpochBar:
    """`Epoch 2/5` then `469/469 [=====] 3s 6ms/step - loss: ... - accuracy: ...`.

    `done` is how many of the epoch's steps a resumed run had made before it stopped.
    """

    def __init__(self, epoch, epochs, steps, stream=None, done=0):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty()
        self.steps = steps
        self.done_before = done
        self.start = self.last_draw = time.perf_counter()
        print(f"Epoch {epoch}/{epochs}", file=self.stream, flush=True)

    def update(self, done, metrics):
        now = time.perf_counter()
        if self.live and now - self.last_draw >= REDRAW_SECONDS:
            self.last_draw = now
            self.stream.write("\r" + self.line(done, metrics, now))
            self.stream.flush()

    def note(self, text):
        """A line of its own above the bar (the bar is redrawn at the next update)."""
        self.stream.write(("\r\x1b[K" if self.live else "") + text + "\n")
        self.stream.flush()

    def finish(self, done, metrics):
        end = "\r" if self.live else ""
        self.stream.write(end + self.line(done, metrics, time.perf_counter()) + "\n")
        self.stream.flush()

    def line(self, done, metrics, now):
        elapsed = now - self.start
        filled = BAR_WIDTH * done // self.steps
        bar = "=" * filled + (">" if filled < BAR_WIDTH else "") + "." * (BAR_WIDTH - filled - 1)
        per_step = 1000 * elapsed / max(done - self.done_before, 1)
        return f"{done}/{self.steps} [{bar[:BAR_WIDTH]}] {elapsed:.0f}s {per_step:.1f}ms/step - {format_metrics(metrics)}"
