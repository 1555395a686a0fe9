"""Log callbacks: the progress bar shows the latest losses; loggers fan out in order."""

from __future__ import annotations

from gatcluster.pipeline.progress import ProgressLogger, combine_loggers


def test_combined_loggers_are_called_in_order_and_none_is_skipped():
    calls = []
    log = combine_loggers(lambda s, m: calls.append(("a", s)), None, lambda s, m: calls.append(("b", s)))
    log(1, {"loss/total": 1.0})
    log(2, {})
    assert calls == [("a", 1), ("b", 1), ("a", 2), ("b", 2)]


def test_progress_bar_shows_the_latest_loss_and_acc(capsys):
    with ProgressLogger(3, "train") as bar:
        bar(1, {"loss/total": 1.25, "loss/entropy": -2.0})
        bar(2, {"loss/total": 0.75, "acc": 0.5})
    err = capsys.readouterr().err
    assert "train" in err and "loss 0.75" in err and "acc 0.5" in err and "2/3" in err
