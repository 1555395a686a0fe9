"""DVC stage `train`: fit GATCluster on data/dataset/ and write the model and training reports.

Usage: python stages/train.py   (reads params.yaml: seed, data, model, train, augment, experimental, mlflow)
       torchrun --standalone --nproc-per-node N stages/train.py   (N processes, README "Scaling out")

The work is `gatcluster.pipeline.train_stage.run_train`; this script reads params.yaml and the
environment: GAT_THREADS=<n> (CPU threads), MLFLOW_TRACKING_URI, DVC_EXP_NAME (set by DVC), and
torchrun's RANK / WORLD_SIZE / LOCAL_RANK. With `train.processes` > 1 and no torchrun around it,
the script starts itself under torchrun on this machine.
Ctrl-C or SIGTERM marks the MLflow run KILLED and keeps the checkpoint: run again to resume.
Under torchrun, SIGTERM comes from torchrun stopping the processes after one failed: the run is
marked FAILED. The processes this script launched itself leave saying that they were stopped to it
(one line, not one per process); under a torchrun of your own each process says so.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import torch
from _common import (
    LAYOUT,
    StageError,
    exit_with,
    interrupt_exit_code,
    read_params,
    run_stage,
    verbose_requested,
)

from gatcluster.exit_codes import EXIT_TERMINATED
from gatcluster.library_logs import quiet_torchrun_logs
from gatcluster.pipeline.environment import threads_wanted
from gatcluster.pipeline.launch import (
    ProcessesInterrupted,
    RankFailed,
    launch_processes,
    launched_by_the_stage,
)
from gatcluster.pipeline.train_stage import interrupted_message, run_train
from gatcluster.training.checkpoint import CheckpointError
from gatcluster.training.distributed import (
    SINGLE_PROCESS,
    Ranks,
    start_process_group,
    stop_process_group,
)
from gatcluster.training.fit import LostProcess, TrainingSetupError, resolve_device
from gatcluster.training.step_graph import GraphCaptureFailed
from gatcluster.training.trainer import TrainingDiverged


class StoppedByTorchrun(Exception):
    """SIGTERM to one of several training processes: torchrun stops them all when one fails.

    Not a RuntimeError: raised inside a collective, it would pass for a lost peer (LostProcess).
    """


def set_threads() -> None:
    """Apply GAT_THREADS (number of torch CPU threads) when it is set."""
    threads = threads_wanted(os.environ.get("GAT_THREADS"))
    if threads is not None:
        torch.set_num_threads(threads)


def torchrun_ranks() -> Ranks:
    """This process's place among torchrun's processes, or one process alone outside torchrun."""
    env = os.environ
    if "WORLD_SIZE" not in env:
        return SINGLE_PROCESS
    try:
        return Ranks(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", "0")))
    except (KeyError, ValueError) as err:
        raise StageError(f"RANK / WORLD_SIZE / LOCAL_RANK are not torchrun's: {err}") from None


def stopped_by_torchrun(signum: int, frame: object) -> None:
    """SIGTERM handler of a rank: fail (not KILLED), once; torchrun may signal again while closing.

    When this rank is already failing (a collective broke as the other process died), the
    signal is ignored, so that closing the MLflow run as FAILED is not cut short.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if sys.exc_info()[0] is not None:
        return
    raise StoppedByTorchrun(
        "stopped by torchrun: another training process failed (its message is above) or torchrun "
        f"was stopped; run the train stage again to resume from {LAYOUT.relative(LAYOUT.checkpoint)}"
    )


def interrupted_once(signum: int, frame: object) -> None:
    """SIGINT handler of a rank: Ctrl-C, then torchrun's closing SIGTERM ignored while cleaning up."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def launched_rank(ranks: Ranks) -> bool:
    """Whether this process is one of those this stage launched (not the launcher itself): it
    leaves saying that the processes were stopped to the launcher."""
    return ranks.distributed and launched_by_the_stage(os.environ)


def train_as_rank(ranks: Ranks) -> str:
    """Train as one of torchrun's processes (or alone); the report line (empty on ranks > 0)."""
    params = read_params()
    if ranks.distributed:
        signal.signal(signal.SIGTERM, stopped_by_torchrun)
        signal.signal(signal.SIGINT, interrupted_once)
        if not ranks.is_main:
            logging.getLogger().setLevel(logging.WARNING)
    start_process_group(resolve_device(params.train.device), ranks)
    try:
        return run_train(
            params, LAYOUT, os.environ.get("MLFLOW_TRACKING_URI"), os.environ.get("DVC_EXP_NAME", ""), ranks
        )
    finally:
        stop_process_group()


def main() -> None:
    """Train under an MLflow run; on Ctrl-C or SIGTERM say what was kept and how to resume."""
    params = read_params()
    set_threads()
    ranks = torchrun_ranks()
    try:
        if ranks.world_size == 1 and params.train.processes > 1:
            if not verbose_requested():
                quiet_torchrun_logs(os.environ)  # its lines on a stop repeat ours
            launch_processes(Path(__file__).resolve(), params.train.processes)
            return
        report = train_as_rank(ranks)
        if report:
            print(report)
    except ProcessesInterrupted as err:
        exit_with(interrupted_message(LAYOUT), err.exit_code)
    except KeyboardInterrupt as err:  # the run is already KILLED; the checkpoint is kept
        if launched_rank(ranks):  # the launcher says it once for all processes
            raise SystemExit(interrupt_exit_code(err)) from None
        exit_with(interrupted_message(LAYOUT), interrupt_exit_code(err))
    except StoppedByTorchrun:
        if launched_rank(ranks):  # the launcher names the process that failed, or was stopped
            raise SystemExit(EXIT_TERMINATED) from None
        raise
    except RankFailed as err:
        exit_with(f"error: {err}; run the train stage again to resume", err.shell_exit_code)


if __name__ == "__main__":
    run_stage(
        main,
        failures=(
            TrainingDiverged,
            TrainingSetupError,
            CheckpointError,
            StoppedByTorchrun,
            LostProcess,
            GraphCaptureFailed,
        ),
    )
