"""Decoding on threads: results in input order, input consumed lazily, errors where they are due."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from gatcluster.data.parallel import MAX_DECODE_WORKERS, decode_workers, ordered_map


@pytest.mark.parametrize("workers", [1, 3])
def test_results_come_in_input_order_whatever_finishes_first(workers):
    def slow_for_even(i: int) -> int:
        time.sleep(0.01 if i % 2 == 0 else 0)
        return i * i

    assert list(ordered_map(slow_for_even, range(25), workers)) == [i * i for i in range(25)]


def test_work_runs_on_the_threads_and_the_input_is_read_only_a_few_items_ahead():
    names, taken = set(), []

    def record(i: int) -> int:
        names.add(threading.current_thread().name)
        return i

    def endless():
        for i in itertools.count():
            taken.append(i)
            yield i

    results = ordered_map(record, endless(), 2)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    assert len(taken) <= 3 + 4 * 2  # a bounded look-ahead, not the whole (endless) walk
    results.close()
    assert names and all(name.startswith("gat-decode") for name in names)


def test_an_error_is_raised_where_its_result_is_due():
    def fail_at_five(i: int) -> int:
        if i == 5:
            raise ValueError("five")
        return i

    results = ordered_map(fail_at_five, range(10), 2)
    assert [next(results) for _ in range(5)] == list(range(5))
    with pytest.raises(ValueError, match="five"):
        next(results)


def test_worker_count_is_bounded_by_the_cpus_the_cap_and_the_callers_limit():
    assert 1 <= decode_workers() <= MAX_DECODE_WORKERS
    assert decode_workers(1) == 1
