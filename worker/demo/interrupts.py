"""Ctrl-C and SIGTERM in the demo process: both stop the run and clean up,
and neither can cut the clean-up short."""

import contextlib
import signal
import threading

_STOPPING = (signal.SIGINT, signal.SIGTERM)


def _handle_stopping(handler):
    """Give Ctrl-C and SIGTERM to ``handler``; a function restoring the
    handlers they had. Only the main thread may set handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {signum: signal.signal(signum, handler)
                for signum in _STOPPING}

    def restore():
        for signum, old in previous.items():
            signal.signal(signum, old)

    return restore


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def signals_as_interrupt():
    """Ctrl-C and SIGTERM both raise KeyboardInterrupt, so a stopped demo
    still cleans up. Ctrl-C is taken even when the demo was started with it
    ignored (a background job of a script inherits that), as the worker
    takes it. Returns a function restoring the previous handlers."""
    return _handle_stopping(_interrupt)


@contextlib.contextmanager
def interrupts_held():
    """A second Ctrl-C (or SIGTERM) must not cut the clean-up short: the
    children run in sessions of their own and would be left running."""
    restore = _handle_stopping(signal.SIG_IGN)
    try:
        yield
    finally:
        restore()
