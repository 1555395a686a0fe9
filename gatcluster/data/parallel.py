"""Decoding files on a few threads, results in input order.

Pillow's decoders and resizes release the GIL, so threads decode large files side by side (fetch
of an image folder, `gat predict`) while the caller keeps the order of its input. Small files do
not pay: decoding a 28-px PNG is mostly Python, and two threads contending for the GIL decoded
10,000 of them at 2,600 files/s against 6,600 in one (2-core Xeon). So the work starts in the
caller's thread and moves to the threads only once files take long to decode (12-megapixel JPEGs:
37 files/s in one thread, 81 in two). The input is consumed lazily and only a bounded number of
files is in flight, so a walk of a million files streams.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

MAX_DECODE_WORKERS = 4  # beyond this the disk and the caller's own work limit a decode loop
# Once half of the last SLOW_WINDOW items took longer than this, the rest go to the threads:
# a 28-px PNG decodes in ~0.1 ms, a 12-megapixel JPEG in ~27 ms reduced and ~150 ms in full.
SLOW_ITEM_S = 0.002
SLOW_WINDOW = 16


def decode_workers(limit: int | None = None) -> int:
    """Threads for decoding: one per CPU this process may use, at most MAX_DECODE_WORKERS or `limit`."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, MAX_DECODE_WORKERS, limit or MAX_DECODE_WORKERS))


def ordered_map(fn: Callable[[In], Out], items: Iterable[In], workers: int) -> Iterator[Out]:
    """fn(item) for each item, in order: in the caller's thread while items are quick (fewer than
    half of the last SLOW_WINDOW over SLOW_ITEM_S), then on `workers` threads with a few ahead.

    One worker always maps in the caller's thread. An exception of `fn` is raised where its result
    is due.
    """
    items = iter(items)
    if workers <= 1:
        yield from map(fn, items)
        return
    slow: deque[bool] = deque(maxlen=SLOW_WINDOW)
    for item in items:
        tic = time.perf_counter()
        result = fn(item)
        slow.append(time.perf_counter() - tic > SLOW_ITEM_S)
        yield result
        # Half the window slow, not its mean: one large file among small ones does not switch.
        if len(slow) == SLOW_WINDOW and 2 * sum(slow) >= SLOW_WINDOW:
            yield from threaded_map(fn, items, workers)
            return


def threaded_map(fn: Callable[[In], Out], items: Iterator[In], workers: int) -> Iterator[Out]:
    """fn(item) for each item, in order, computed on `workers` threads with a few items ahead."""
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
