"""Decoding on threads: results in input order, input consumed lazily, errors where they are due."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque

import pytest

from gatcluster.data.parallel import (
    EARLY_SWITCH_S,
    MAX_DECODE_WORKERS,
    SLOW_ITEM_S,
    SLOW_WINDOW,
    decode_workers,
    ordered_map,
    threaded_map,
    worth_threads,
)


@pytest.mark.parametrize("workers", [1, 3])
def test_results_come_in_input_order_whatever_finishes_first(workers):
    def slow_for_even(i: int) -> int:
        time.sleep(0.01 if i % 2 == 0 else 0)  # slow enough to move to the threads after a while
        return i * i

    assert list(ordered_map(slow_for_even, range(40), workers)) == [i * i for i in range(40)]


def test_slow_work_moves_to_the_threads_and_the_input_is_read_only_a_few_items_ahead():
    names, taken = set(), []

    def slow(i: int) -> int:
        names.add(threading.current_thread().name)
        time.sleep(2 * SLOW_ITEM_S)
        return i

    def endless():
        for i in itertools.count():
            taken.append(i)
            yield i

    results = ordered_map(slow, endless(), 2)
    assert [next(results) for _ in range(SLOW_WINDOW + 3)] == list(range(SLOW_WINDOW + 3))
    assert len(taken) <= SLOW_WINDOW + 3 + 4 * 2  # a bounded look-ahead, not the whole (endless) walk
    results.close()
    assert any(name.startswith("gat-decode") for name in names)


def test_quick_work_stays_in_the_callers_thread():
    names = set()

    def quick(i: int) -> int:
        names.add(threading.current_thread().name)
        return i

    assert list(ordered_map(quick, range(500), 4)) == list(range(500))
    assert names == {threading.current_thread().name}  # threads would only contend for the GIL


@pytest.mark.parametrize("mapped", [ordered_map, threaded_map])
def test_an_error_is_raised_where_its_result_is_due(mapped):
    def fail_at_five(i: int) -> int:
        if i == 5:
            raise ValueError("five")
        return i

    results = mapped(fail_at_five, iter(range(10)), 2)
    assert [next(results) for _ in range(5)] == list(range(5))
    with pytest.raises(ValueError, match="five"):
        next(results)


def test_worker_count_is_bounded_by_the_cpus_the_cap_and_the_callers_limit():
    assert 1 <= decode_workers() <= MAX_DECODE_WORKERS
    assert decode_workers(1) == 1


def test_one_slow_item_among_quick_ones_keeps_the_work_in_the_callers_thread():
    names = set()

    def one_slow(i: int) -> int:
        names.add(threading.current_thread().name)
        if i == 0:
            time.sleep(40 * SLOW_ITEM_S)  # one large photo in a folder of icons
        return i

    assert list(ordered_map(one_slow, range(300), 2)) == list(range(300))
    assert names == {threading.current_thread().name}


def test_a_few_large_files_move_to_the_threads_without_waiting_for_a_full_window():
    # Twelve HEIC photos (1-2 s each) never filled the window: they decoded one at a time.
    where = {}

    def large(i: int) -> int:
        where[i] = threading.current_thread().name
        time.sleep(EARLY_SWITCH_S / 2 + 0.01)
        return i

    assert list(ordered_map(large, range(6), 2)) == list(range(6))
    assert [where[i].startswith("gat-decode") for i in range(6)] == [False, False, True, True, True, True]


@pytest.mark.parametrize(
    ("seconds", "switch"),
    [
        ([0.3], False),  # one large file: never on one item
        ([0.3, 0.0001], False),
        ([0.15, 0.15], True),  # two large files at the start
        ([0.01, 0.01, 0.01], False),  # slow, but not yet long enough to be sure
        ([0.3, 0.0001, 0.0001, 0.0001, 0.3], False),  # two slow of five: not half
        ([0.003] * (SLOW_WINDOW // 2) + [0.0001] * (SLOW_WINDOW // 2), True),  # a full window, half slow
        ([0.003] * (SLOW_WINDOW // 2 - 1) + [0.0001] * (SLOW_WINDOW // 2 + 1), False),
    ],
)
def test_threads_are_worth_it_once_half_the_recent_items_are_slow_and_long(seconds, switch):
    assert worth_threads(deque(seconds, maxlen=SLOW_WINDOW)) is switch
