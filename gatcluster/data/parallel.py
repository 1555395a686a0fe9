"""Decoding files on a few threads, results in input order.

Pillow's decoders and resizes release the GIL, so threads decode files side by side (fetch of an
image folder, `gat predict`) while the caller keeps the order of its input. The input is consumed
lazily and only a bounded number of files is in flight, so a walk of a million files streams.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

MAX_DECODE_WORKERS = 4  # beyond this the disk and the caller's own work limit a decode loop


def decode_workers(limit: int | None = None) -> int:
    """Threads for decoding: one per CPU this process may use, at most MAX_DECODE_WORKERS or `limit`."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, MAX_DECODE_WORKERS, limit or MAX_DECODE_WORKERS))


def ordered_map(fn: Callable[[In], Out], items: Iterable[In], workers: int) -> Iterator[Out]:
    """fn(item) for each item, in order, computed on `workers` threads with a few items ahead.

    One worker maps in the caller's thread. An exception of `fn` is raised where its result is due.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    ahead = 4 * workers  # enough to keep every thread busy while the caller uses a result
    with ThreadPoolExecutor(workers, thread_name_prefix="gat-decode") as pool:
        pending: deque[Future[Out]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # a caller that stops early (or an error) leaves no file decoding for nobody
            for future in pending:
                future.cancel()
