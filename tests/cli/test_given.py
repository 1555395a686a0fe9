"""Empty path and name arguments: refused as usage errors, never read as "." or as the default."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gatcluster.cli.app import app
from gatcluster.cli.given import given_path, given_text

runner = CliRunner()


def test_a_value_is_kept_as_typed():
    assert given_path("photos/a b.png") == Path("photos/a b.png")
    assert given_text(" ") == " "


@pytest.mark.parametrize("parse", [given_path, given_text])
def test_an_empty_value_is_a_bad_parameter(parse):
    with pytest.raises(typer.BadParameter, match="empty"):
        parse("")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["predict", ""], "'paths'"),  # clustered the current folder
        (["predict", "x.png", ""], "'paths'"),
        (["predict", "x.png", "--out", ""], "'--out'"),
        (["predict", "x.png", "--attention-dir", ""], "'--attention-dir'"),
        (["predict", "x.png", "--gallery", ""], "'--gallery'"),
        (["predict", "x.png", "--sort-into", ""], "'--sort-into'"),
        (["predict", "x.png", "--model", ""], "'--model'"),
        (["info", ""], "'model'"),
        (["check", "--params", ""], "'--params'"),  # said ". is a folder"
        (["preset", "stl10", "--params", ""], "'--params'"),
        (["promote", "1", "--params", ""], "'--params'"),
        (["server", "--backend-store-uri", ""], "'--backend-store-uri'"),  # served ./mlflow.db
        (["server", "--artifacts-destination", ""], "'--artifacts-destination'"),
        (["ui", "--backend-store-uri", ""], "'--backend-store-uri'"),
        (["ui", "--host", ""], "'--host'"),  # every interface, without authentication
        (["server", "--host", ""], "'--host'"),
    ],
)
def test_an_empty_argument_stops_the_command_naming_it(tmp_path, monkeypatch, args, named):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert named in result.output and "empty string" in result.output
    assert list(tmp_path.iterdir()) == []  # nothing made: no mlflow.db, no output
