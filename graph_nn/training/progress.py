"""What the training loop shows on the terminal: Keras's progress bar per epoch, or a line every N steps.

Both are reporters with the same four calls, so the loop says what happened and never how it is shown:
step() after every training step, evaluation() after every evaluation, epoch_end() at the end of every epoch,
stopped() when a signal ends the run early.
"""

import math
import sys
import time

BAR_WIDTH = 30
REDRAW_SECONDS = 0.1


def format_metrics(metrics):
    return " - ".join(f"{name}: {value:.4f}" for name, value in metrics.items())


def reporter_for(config, schedule, first_step, out=None):
    """Lines every --print-every steps when the config asks for them, else the progress bars; made just
    before the loop's first step, which makes step first_step + 1."""
    if config.print_every:
        return StepLines(config.print_every, schedule.total_steps, first_step, out)
    return EpochBars(schedule, out)


class StepLines:
    """`step 100/2000 - loss: ... - accuracy: ... - 812 steps/s` every `every` steps, as the TF1 article prints."""

    def __init__(self, every, total_steps, first_step, out=None):
        self.every, self.total_steps = every, total_steps
        self.out = out or sys.stdout
        # The rate counts this session's steps only, those of a resumed run included.
        self.first_step, self.start = first_step, time.perf_counter()

    def step(self, step, loss, accuracy, epoch_means):
        if step % self.every == 0:
            rate = (step - self.first_step) / (time.perf_counter() - self.start)
            print(
                f"step {step}/{self.total_steps} - loss: {loss:.4f} - accuracy: {accuracy:.4f} - {rate:.0f} steps/s",
                file=self.out,
                flush=True,
            )

    def evaluation(self, step, metrics):
        print(f"step {step} evaluation - {format_metrics(metrics)}", file=self.out, flush=True)

    def epoch_end(self, step, epoch_means):
        pass

    def stopped(self):
        pass


class EpochBars:
    """`Epoch 2/5` then `469/469 [=====] 3s 6ms/step - loss: ... - accuracy: ...`, one bar per epoch.

    An evaluation at the epoch's end closes the bar with its metrics, as Keras's fit shows validation;
    one inside the epoch (--eval-every) prints its own line above the bar.
    """

    def __init__(self, schedule, out=None):
        self.schedule = schedule
        self.out = out or sys.stdout
        self.bar = None

    def position(self, step):
        """How many of its epoch's steps `step` completes."""
        return step - self.schedule.epoch_of(step) * self.schedule.steps_per_epoch

    def step(self, step, loss, accuracy, epoch_means):
        if self.bar is None:
            epoch = self.schedule.epoch_of(step)
            steps_in_epoch = min(
                self.schedule.steps_per_epoch, self.schedule.total_steps - epoch * self.schedule.steps_per_epoch
            )
            epochs = math.ceil(self.schedule.total_steps / self.schedule.steps_per_epoch)
            self.bar = Bar(epoch + 1, epochs, steps_in_epoch, self.out, done=self.position(step) - 1)
        self.bar.update(self.position(step), epoch_means)

    def evaluation(self, step, metrics):
        if self.schedule.is_epoch_end(step) or step == self.schedule.total_steps:
            self.bar.finish(self.position(step), metrics)
            self.bar = None
        else:
            self.bar.note(f"step {step} evaluation - {format_metrics(metrics)}")

    def epoch_end(self, step, epoch_means):
        if self.bar:  # an epoch without an evaluation (--eval-every, compare) still ends its bar
            self.bar.finish(self.position(step), epoch_means)
            self.bar = None

    def stopped(self):
        if self.bar:
            print(file=self.out, flush=True)


class Bar:
    """One epoch's bar: redrawn in place on a terminal, written once when the epoch ends otherwise.

    `done` is how many of the epoch's steps a resumed run had made before it stopped.
    """

    def __init__(self, epoch, epochs, steps, out, done=0):
        self.out = out
        self.live = out.isatty()
        self.steps = steps
        self.done_before = done
        self.start = self.last_draw = time.perf_counter()
        print(f"Epoch {epoch}/{epochs}", file=self.out, flush=True)

    def update(self, done, metrics):
        now = time.perf_counter()
        if self.live and now - self.last_draw >= REDRAW_SECONDS:
            self.last_draw = now
            self.out.write("\r" + self.line(done, metrics, now))
            self.out.flush()

    def note(self, text):
        """A line of its own above the bar (the bar is redrawn at the next update)."""
        self.out.write(("\r\x1b[K" if self.live else "") + text + "\n")
        self.out.flush()

    def finish(self, done, metrics):
        end = "\r" if self.live else ""
        self.out.write(end + self.line(done, metrics, time.perf_counter()) + "\n")
        self.out.flush()

    def line(self, done, metrics, now):
        elapsed = now - self.start
        filled = BAR_WIDTH * done // self.steps
        bar = "=" * filled + (">" if filled < BAR_WIDTH else "") + "." * (BAR_WIDTH - filled - 1)
        per_step = 1000 * elapsed / max(done - self.done_before, 1)
        return (
            f"{done}/{self.steps} [{bar[:BAR_WIDTH]}] {elapsed:.0f}s {per_step:.1f}ms/step - {format_metrics(metrics)}"
        )
