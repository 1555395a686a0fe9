"""Decoding files on a few threads, results in input order.

Pillow's decoders and resizes release the GIL, so threads decode large files side by side (fetch
of an image folder, `gat predict`) while the caller keeps the order of its input. Small files do
not pay: decoding a 28-px PNG is mostly Python, and two threads contending for the GIL decoded
10,000 of them at 2,600 files/s against 6,600 in one (2-core Xeon). So the work starts in the
caller's thread and moves to the threads only once files take long to decode (12-megapixel JPEGs:
37 files/s in one thread, 81 in two). Files that are clearly large move at once, not after a full
window: a 12-megapixel HEIC photo takes 1-2 s to decode, and waiting for sixteen of them cost half
a minute of one idle core (a folder of twelve never went to the threads at all). The input is
consumed lazily and only a bounded number of files is in flight, so a walk of a million files
streams.
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
# ...or sooner, once at least two slow items, half of those seen, took this long together.
EARLY_SWITCH_S = 0.25


def decode_workers(limit: int | None = None) -> int:
    """Threads for decoding: one per CPU this process may use, at most MAX_DECODE_WORKERS or `limit`."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, MAX_DECODE_WORKERS, limit or MAX_DECODE_WORKERS))


def ordered_map(fn: Callable[[In], Out], items: Iterable[In], workers: int) -> Iterator[Out]:
    """fn(item) for each item, in order: in the caller's thread while items are quick
    (`worth_threads`), then on `workers` threads with a few ahead.

    One worker always maps in the caller's thread. An exception of `fn` is raised where its result
    is due.
    """
    items = iter(items)
    if workers <= 1:
        yield from map(fn, items)
        return
    recent: deque[float] = deque(maxlen=SLOW_WINDOW)  # seconds of each of the last items
    for item in items:
        tic = time.perf_counter()
        result = fn(item)
        recent.append(time.perf_counter() - tic)
        yield result
        if worth_threads(recent):
            yield from threaded_map(fn, items, workers)
            return


def worth_threads(recent: deque[float]) -> bool:
    """Whether the items whose seconds are `recent` (the last SLOW_WINDOW at most) are slow enough
    for threads: half of a full window slow, or, before it fills, at least two slow items that are
    half of those seen and took EARLY_SWITCH_S together. Counted, not averaged, and never on one
    item: one large file among small ones does not switch."""
    slow = [seconds for seconds in recent if seconds > SLOW_ITEM_S]
    if 2 * len(slow) < len(recent):
        return False
    return len(recent) == SLOW_WINDOW or (len(slow) >= 2 and sum(slow) >= EARLY_SWITCH_S)


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
