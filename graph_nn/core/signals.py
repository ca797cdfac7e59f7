"""SIGINT (Ctrl-C) and SIGTERM turned into a request that the training loop honours between two steps.

Raising from the handler could interrupt a checkpoint or an event file half-written; a flag cannot.
"""

import contextlib
import signal
import threading

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal number, as a shell reports it


class StopRequest:
    """Falsy until SIGINT or SIGTERM arrives; then names the signal and the exit code it calls for."""

    def __init__(self):
        self.signum = None

    def __bool__(self):
        return self.signum is not None

    @property
    def name(self):
        return signal.Signals(self.signum).name

    @property
    def exit_code(self):
        return EXIT_CODES[self.signum]


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
