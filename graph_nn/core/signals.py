"""SIGINT (Ctrl-C) and SIGTERM turned into a request that the training loop honours between two steps, and so is
the reader of the loop's output going away (`python run.py | head`).

Raising from the handler could interrupt a checkpoint or an event file half-written; a flag cannot.
"""

import contextlib
import os
import signal
import threading

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal number, as a shell reports it


class StopRequest:
    """Falsy until SIGINT or SIGTERM arrives, or a write finds the output pipe closed; then names the cause and
    the exit code it calls for."""

    def __init__(self):
        self.signum = None

    def __bool__(self):
        return self.signum is not None

    @property
    def name(self):
        if self.signum == signal.SIGPIPE:
            return "the closed output pipe (SIGPIPE)"
        return signal.Signals(self.signum).name

    @property
    def exit_code(self):
        return 128 + self.signum  # as a shell reports a process the signal killed

    def watching(self, stream):
        """stream, whose reader going away requests a stop instead of raising BrokenPipeError."""
        return StopOnClosedPipe(stream, self)


class StopOnClosedPipe:
    """A text stream that turns a write to a closed pipe into a StopRequest, as SIGPIPE would be in a process
    that did not ignore it (Python does, and raises BrokenPipeError instead).

    Raising would leave the run in the middle of a step, its steps since the last checkpoint lost.  As Python's
    documentation advises, the stream's descriptor then leads to /dev/null: nothing more is shown, and neither the
    later writes nor the interpreter's flush at exit fail again.
    """

    def __init__(self, stream, request):
        self.stream, self.request = stream, request

    def write(self, text):
        return self.guarded(self.stream.write, text)

    def flush(self):
        self.guarded(self.stream.flush)

    def isatty(self):
        return self.stream.isatty()

    def guarded(self, call, *args):
        try:
            return call(*args)
        except BrokenPipeError:
            if not self.request:
                self.request.signum = signal.SIGPIPE
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
            return None


@contextlib.contextmanager
def stop_requested_by_signals():
    """A StopRequest that SIGINT and SIGTERM set inside the block (only the main thread can catch signals)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum, frame):
        request.signum = signum

    previous = {signum: signal.signal(signum, handler) for signum in EXIT_CODES}
    try:
        yield request
    finally:
        for signum, old_handler in previous.items():
            signal.signal(signum, old_handler)
