"""Ctrl-C and SIGTERM in the demo process: both stop the run and clean up,
and neither can cut the clean-up short."""

import contextlib
import signal
import threading


def sigterm_as_interrupt():
    """Treat SIGTERM like Ctrl-C, so a stopped demo still cleans up.
    Returns a function restoring the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)


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
