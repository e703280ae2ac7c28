"""Where the next reader of a shard starts, from the same inputs the runtime
gives the shard reader (worker/runtime/worker.py), so ``status`` measures lag
and ``reset`` looks for unread records exactly where a worker would read.
"""

from datetime import datetime

from worker.kinesis.reader import StartPosition


def next_start(checkpoint: str | None, reset_to: datetime | None,
               has_parents: bool, settings) -> StartPosition:
    return StartPosition(
        checkpoint_sequence=checkpoint,
        reset_to_timestamp=reset_to,
        initial=settings.initial_position,
        initial_timestamp=settings.initial_timestamp,
        is_child=has_parents,
    )
