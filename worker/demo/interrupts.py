"""Ctrl-C and SIGTERM in the demo process: both stop the run and clean up,
and neither can cut the clean-up short."""

import contextlib
import signal
import threading


def signals_as_interrupt():
    """Ctrl-C and SIGTERM both raise KeyboardInterrupt, so a stopped demo
    still cleans up. Ctrl-C is taken even when the demo was started with it
    ignored (a background job of a script inherits that), as the worker
    takes it. Returns a function restoring the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, interrupt)
                for signum in (signal.SIGINT, signal.SIGTERM)}

    def restore():
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore


@contextlib.contextmanager
def interrupts_held():
    """A second Ctrl-C (or SIGTERM) must not cut the clean-up short: the
    children run in sessions of their own and would be left running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, signal.SIG_IGN)
                for signum in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
