"""Decoding on threads: results in input order, input consumed lazily, errors where they are due."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from gatcluster.data.parallel import (
    MAX_DECODE_WORKERS,
    SLOW_ITEM_S,
    SLOW_WINDOW,
    decode_workers,
    ordered_map,
    threaded_map,
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
