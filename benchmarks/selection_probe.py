"""Does a run's own loss tell, without labels, how good it will end? (a label-free criterion)

Trains the default params.yaml on mnist5k for each seed and, at chosen iterations, scores the
current model by the head-selection loss (the selection loss on one fixed clean
batch, the same for every seed, BatchNorm refitted and put back), beside its ACC (labels only
score, after the fact). Training is not changed by the probes. One JSON line per probe.

    .venv/bin/python benchmarks/selection_probe.py --seeds 0 1 --out reports/probe.jsonl &
    .venv/bin/python benchmarks/selection_probe.py --seeds 2 3 --out reports/probe.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from gatcluster.config.loading import load_params, replace_params
from gatcluster.data.bundled import load_mnist5k
from gatcluster.data.prepare import prepare_images
from gatcluster.data.store import fit_dataset
from gatcluster.evaluation.metrics import cluster_scores
from gatcluster.training.passes import preserved_batchnorm_stats
from gatcluster.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
COMMON_SEED = 12345  # the selection batch's seed: one batch for every probed seed


def probe_seed(seed: int, steps: list[int], out: Path) -> None:
    """Train one seed and append a probe record at each of `steps`."""
    dataset = load_mnist5k()
    overrides = {"seed": seed, "train.device": "cpu", "train.checkpoint_every": 0, "train.eval_every": 0}
    params = replace_params(load_params(ROOT / "params.yaml"), overrides)
    size = params.model.input_size
    images = prepare_images(fit_dataset(dataset, size).images, size, True)
    # The scorer first: each Trainer seeds the global RNGs, and the trained one must be seeded last.
    scorer = Trainer(replace_params(params, {"seed": COMMON_SEED}), images, torch.device("cpu"))
    trainer = Trainer(params, images, torch.device("cpu"))
    started = time.perf_counter()
    for iteration in range(max(steps)):
        metrics = trainer.run_iteration(iteration)
        if iteration + 1 not in steps:
            continue
        scorer.model, scorer.teacher = trainer.model, trainer.teacher  # score on the common batch
        with preserved_batchnorm_stats(trainer.output_model):
            trainer.finalize()
            selection_loss = min(scorer.selection_losses())
            pred = trainer.head_probs()[0].argmax(1).numpy()
        record = {
            "seed": seed,
            "step": iteration + 1,
            "selection_loss": selection_loss,
            "train_loss": metrics["loss/total"],
            "acc": cluster_scores(pred, dataset.labels).acc,
            "seconds": time.perf_counter() - started,
        }
        with out.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, nargs="+", default=[40, 60, 100, 150, 200])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("probe.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for seed in args.seeds:
        probe_seed(seed, sorted(args.steps), args.out)


if __name__ == "__main__":
    main()
