"""Candidate starts (train.candidates): the lowest-loss start is kept, without labels, and goes on
exactly as a plain run of its seed; a run stopped after the choice resumes bit-identically."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gatcluster.config.loading import replace_params
from gatcluster.config.params import Params, ParamsError
from gatcluster.data.prepare import prepare_images
from gatcluster.data.store import fit_dataset
from gatcluster.training.candidates import candidate_seed
from gatcluster.training.fit import fit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interrupted import stop_and_resume  # noqa: E402

SMALL = {
    "data.source": "digits",
    "train.large_batch": 200,
    "train.sub_batch": 32,
    "train.repeats": 1,
    "train.device": "cpu",
    "train.checkpoint_every": 0,
    "train.iterations": 3,
    "train.candidates": 3,
    "train.candidate_iterations": 1,
    "train.kmeans_n_init": 3,
}


@pytest.fixture(scope="module")
def digit_images(digits_dataset):
    return prepare_images(fit_dataset(digits_dataset, 32).images, 32, True)


def small(**overrides) -> Params:
    return replace_params(Params(), {**SMALL, **overrides})


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def logged(params: Params, images, labels=None, checkpoint=None) -> tuple:
    """fit with a log that records every metric: (result, {(step, key): value})."""
    log: dict = {}
    result = fit(
        params, images, labels, lambda step, m: log.update({(step, k): v for k, v in m.items()}), checkpoint
    )
    return result, log


def test_candidate_seeds_differ_and_the_first_is_the_runs():
    seeds = [candidate_seed(7, c) for c in range(4)]
    assert seeds[0] == 7 and len(set(seeds)) == 4 and seeds == [candidate_seed(7, c) for c in range(4)]


def test_the_lowest_loss_start_goes_on_as_a_plain_run_of_its_seed(digit_images):
    result, log = logged(small(), digit_images)
    scores = [log[(1, f"candidate{c}/selection_loss")] for c in range(3)]
    chosen = int(log[(1, "train/chosen_candidate")])
    assert chosen == int(np.argmin(scores)) and len(set(scores)) == 3
    plain = fit(small(**{"seed": candidate_seed(0, chosen), "train.candidates": 1}), digit_images)
    assert states_equal(result.model.state_dict(), plain.model.state_dict())
    assert [r["loss/total"] for r in result.history] == [r["loss/total"] for r in plain.history]
    assert (
        log[(1, "loss/total")] == log[(1, f"candidate{chosen}/loss/total")]
    )  # its start, logged as the run's


def test_labels_never_choose_the_start(digit_images, digits_dataset):
    params = small(**{"train.eval_every": 2, "train.iterations": 2, "train.candidates": 2})
    with_labels, log = logged(params, digit_images, digits_dataset.labels)
    shuffled, _ = logged(params, digit_images, np.random.default_rng(0).permutation(digits_dataset.labels))
    assert states_equal(with_labels.model.state_dict(), shuffled.model.state_dict())
    assert {(1, f"candidate{c}/acc") for c in range(2)} <= log.keys()  # monitoring only


def test_a_run_stopped_after_the_choice_resumes_bit_identically(digit_images, tmp_path):
    params = small(**{"train.checkpoint_every": 1, "train.candidates": 2})
    run = stop_and_resume(params, digit_images, tmp_path, stop_at=2)
    assert run.checkpoint["iteration"] == 1
    assert run.checkpoint["seed"] in [candidate_seed(0, c) for c in range(2)]
    assert run.resumed.resumed_from == 1
    assert states_equal(run.resumed.model.state_dict(), run.whole.model.state_dict())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train.candidate_iterations": 4}, "train.candidate_iterations .4. must be <= train.iterations"),
        ({"train.processes": 2}, "train.candidates > 1 runs in one process"),
    ],
)
def test_impossible_candidate_settings_are_refused(overrides, message):
    with pytest.raises(ParamsError, match=message):
        small(**overrides)


def test_candidates_under_several_processes_are_refused_before_training(digit_images):
    from gatcluster.training.distributed import Ranks
    from gatcluster.training.fit import TrainingSetupError

    with pytest.raises(TrainingSetupError, match="train.candidates > 1 trains in one process, but 2 were"):
        fit(small(), digit_images, ranks=Ranks(rank=0, world_size=2, local_rank=0))
