"""Garbage-collector settings for the length of a run.

Parsed rows are lists of scalars: they never form reference cycles, so the
cyclic collector finds nothing in them, yet with its default threshold (700
allocations) it walks the young ones again and again; on a page of 500-byte
rows that costs a third of the parse time. During a run bulkflow raises the
first threshold, and restores the caller's settings when the last concurrent
run ends. ``ExportRun(tune_gc=False)`` leaves the collector alone.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Allocations between two young-generation collections during a run.
RUN_THRESHOLD = 100_000

_lock = threading.Lock()
_users = 0
_saved: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def gc_tuned(enabled: bool = True) -> Iterator[None]:
    """Raise the collector's first threshold for the duration of the block."""
    global _users, _saved
    if not enabled:
        yield
        return
    with _lock:
        if _users == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(max(RUN_THRESHOLD, _saved[0]), *_saved[1:])
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                gc.set_threshold(*_saved)
