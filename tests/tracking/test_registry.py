"""The model registry: versions with tags, aliases, models:/ URIs fetched once, foreign models refused."""

from __future__ import annotations

import json
import shutil
import socket

import mlflow
import onnx
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
from mlflow.tracking import MlflowClient
from onnx import TensorProto, helper, numpy_helper

from gatcluster.serving.contract import read_contract
from gatcluster.tracking.mlflow_runs import default_tracking_uri, experiment_id, start_run
from gatcluster.tracking.model_uri import ModelRef, RegistryError, alias_problem, parse_model_uri
from gatcluster.tracking.registry import (
    access_refused,
    fetch_model,
    latest_version,
    move_alias,
    register_version,
    registry_client,
)


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("models:/gatcluster@champion", ModelRef("gatcluster", None, "champion")),
        ("models:/my-model/12", ModelRef("my-model", 12, None)),
        ("models:/gatcluster@prüfung", ModelRef("gatcluster", None, "prüfung")),  # MLflow takes any letter
    ],
)
def test_model_uris_parse(text, ref):
    assert parse_model_uri(text) == ref and str(ref) == text


@pytest.mark.parametrize(
    ("alias", "said"),
    [
        ("a b", "use letters, digits"),
        ("x" * 256, "at most 255 characters"),
        ("v1", "reserved"),
        ("Latest", "reserved"),
    ],
)
def test_aliases_mlflow_refuses_are_named_first(alias, said):
    assert said in alias_problem(alias)
    assert alias_problem("champion") is None and alias_problem("prüfung-2") is None


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("models:/team@lab/2", ModelRef("team@lab", 2, None)),  # the alias follows the last '@'
        ("models:/team@lab@champion", ModelRef("team@lab", None, "champion")),
    ],
)
def test_a_name_may_hold_an_at_sign(text, ref):
    assert parse_model_uri(text) == ref and str(ref) == text


@pytest.mark.parametrize(
    "text",
    [
        "models:/",
        "models:/a/b/c",
        "models:/a@",
        "models:/a/latest",
        "runs:/x/model",
        "models:/a/" + "9" * 5000,
        "models:/a?b/1",  # MLflow reads it as a URL: model a, query b/1
    ],
)
def test_other_uris_are_refused_with_the_forms_that_work(text):
    with pytest.raises(RegistryError, match="models:/NAME/VERSION or models:/NAME@ALIAS"):
        parse_model_uri(text)


@pytest.fixture
def registry(tmp_path):
    """A SQLite tracking store and registry in tmp_path, with one experiment: (client, exp_id)."""
    client = MlflowClient(tracking_uri=default_tracking_uri(tmp_path))
    return client, experiment_id(client, "registry-test", tmp_path / "mlartifacts")


def log_onnx(client: MlflowClient, exp_id: str, model: onnx.ModelProto) -> tuple[str, str, str]:
    """Log an ONNX model the way the export stage does; (run id, logged model URI, model id)."""
    run_id = start_run(client, exp_id, "export", {})
    mlflow.set_tracking_uri(client.tracking_uri)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.onnx.log_model(model, name="model", pip_requirements=["onnx"])
    return run_id, info.model_uri, info.model_id


def test_register_promote_and_fetch_once(tmp_path, registry, trained_onnx):
    client, exp_id = registry
    run_id, uri, model_id = log_onnx(client, exp_id, onnx.load(str(trained_onnx[2])))
    assert register_version(client, "gatcluster", uri, model_id, run_id, {"acc": "0.9"}) == 1
    assert register_version(client, "gatcluster", uri, model_id, run_id, {"acc": "0.8"}) == 2
    version = client.get_model_version("gatcluster", "1")
    assert version.run_id == run_id and version.tags["acc"] == "0.9"
    assert move_alias(client, "gatcluster", 1, "champion") is None
    assert move_alias(client, "gatcluster", latest_version(client, "gatcluster"), "champion") == 1
    path, number = fetch_model(client, parse_model_uri("models:/gatcluster@champion"), tmp_path / "cache")
    assert number == 2 and read_contract(path) == read_contract(trained_onnx[2])
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    for t in onnx.load(str(trained_onnx[2])).graph.initializer:
        assert (weights[t.name] == numpy_helper.to_array(t)).all()
    shutil.rmtree(tmp_path / "mlartifacts")  # the cached version no longer needs the artifact store
    again, _ = fetch_model(client, parse_model_uri("models:/gatcluster/2"), tmp_path / "cache")
    assert again == path
    with pytest.raises(RegistryError, match=r"versions \[1, 2\] and @champion -> 2"):
        fetch_model(client, parse_model_uri("models:/gatcluster@staging"), tmp_path / "cache")
    with pytest.raises(RegistryError, match="not in the registry"):
        move_alias(client, "gatcluster", 7, "champion")


def test_a_registered_model_created_by_another_export_meanwhile_takes_the_version(
    registry, trained_onnx, monkeypatch
):
    client, exp_id = registry
    run_id, uri, model_id = log_onnx(client, exp_id, onnx.load(str(trained_onnx[2])))
    client.create_registered_model("gatcluster")  # by the other export, after this one looked

    def not_there_yet(name):  # as this export saw it a moment before
        raise MlflowException(f"Registered Model with name={name} not found", RESOURCE_DOES_NOT_EXIST)

    monkeypatch.setattr(client, "get_registered_model", not_there_yet)
    assert register_version(client, "gatcluster", uri, model_id, run_id, {}) == 1


@pytest.mark.parametrize("name", ["team@lab", "v#2 of it"])
def test_names_that_models_uris_cannot_carry_are_still_fetched(tmp_path, registry, trained_onnx, name):
    # MLflow reads models:/team@lab/1 as alias "lab/1" of model "team": the files are fetched from
    # where the version keeps them instead.
    client, exp_id = registry
    run_id, uri, model_id = log_onnx(client, exp_id, onnx.load(str(trained_onnx[2])))
    assert register_version(client, name, uri, model_id, run_id, {}) == 1
    path, number = fetch_model(client, parse_model_uri(f"models:/{name}/1"), tmp_path / "cache")
    assert number == 1 and read_contract(path) == read_contract(trained_onnx[2])
    assert (path.parent / "MLmodel").is_file()  # the logged model folder, not a sub-folder of it


def test_a_version_whose_files_are_gone_says_so(tmp_path, registry, trained_onnx):
    client, exp_id = registry
    run_id, uri, model_id = log_onnx(client, exp_id, onnx.load(str(trained_onnx[2])))
    register_version(client, "gatcluster", uri, model_id, run_id, {})
    shutil.rmtree(tmp_path / "mlartifacts")  # a deleted artifact store, or a project moved without it
    with pytest.raises(RegistryError, match="models:/gatcluster/1 are missing from its artifact store"):
        fetch_model(client, parse_model_uri("models:/gatcluster/1"), tmp_path / "cache")


def test_an_onnx_model_without_the_gatcluster_contract_is_refused(tmp_path, registry):
    client, exp_id = registry
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    foreign = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    run_id, uri, model_id = log_onnx(client, exp_id, foreign)
    register_version(client, "other", uri, model_id, run_id, {})
    with pytest.raises(RegistryError, match="models:/other/1 is not a GATCluster ONNX model"):
        fetch_model(client, parse_model_uri("models:/other/1"), tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("model.onnx"))  # nothing refused is kept


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_server_that_is_down_or_a_uri_mlflow_cannot_use_is_one_line_at_once():
    uri = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(RegistryError, match=f"the tracking server at {uri} does not answer .*refused"):
        registry_client(uri)  # one connection, not MLflow's retries, then the registry blamed
    with pytest.raises(RegistryError, match="MLFLOW_TRACKING_URI foo://bar: "):
        registry_client("foo://bar")


def test_a_project_without_a_store_is_told_so_and_gets_none(tmp_path):
    with pytest.raises(RegistryError, match=f"no MLflow store at {tmp_path}/mlflow.db: run the pipeline"):
        registry_client(default_tracking_uri(tmp_path))
    assert not (tmp_path / "mlflow.db").exists()  # MLflow would have created an empty one
    (tmp_path / "mlflow.db").touch()  # SQLAlchemy's options after the path name the same file
    registry_client(default_tracking_uri(tmp_path) + "?timeout=30")


def test_a_refused_login_says_whether_credentials_were_missing_or_wrong(monkeypatch):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import UNAUTHENTICATED

    refused = MlflowException("Unauthenticated", error_code=UNAUTHENTICATED)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    assert "requires a user: set MLFLOW_TRACKING_USERNAME" in str(access_refused(refused, "http://team"))
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "carol")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong-password")
    assert "refused user carol with this password" in str(access_refused(refused, "http://team"))


def test_a_refused_login_from_the_credentials_file_names_that_user(mlflow_credentials_file):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import UNAUTHENTICATED

    mlflow_credentials_file("dora", "stale")
    refused = MlflowException("Unauthenticated", error_code=UNAUTHENTICATED)
    message = str(access_refused(refused, "http://team"))
    assert "refused user dora with this password" in message and "~/.mlflow/credentials" in message


def with_cluster_names(path, names: list[str]) -> onnx.ModelProto:
    """The ONNX model at `path` with other cluster names in its contract: another model."""
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key.endswith("cluster_names"):
            prop.value = json.dumps(names)
    return model


def test_a_version_registered_anew_is_served_not_the_cached_one(tmp_path, registry, trained_onnx):
    client, exp_id = registry
    served = []
    for names in (["a"] * 10, ["b"] * 10):  # the same URI, name and version number, another model
        run_id, uri, model_id = log_onnx(client, exp_id, with_cluster_names(trained_onnx[2], names))
        assert register_version(client, "gatcluster", uri, model_id, run_id, {}) == 1
        path, _ = fetch_model(client, parse_model_uri("models:/gatcluster/1"), tmp_path / "cache")
        served.append(read_contract(path).cluster_names[0])
        client.delete_registered_model("gatcluster")  # as a store rebuilt from scratch would
    assert served == ["a", "b"]


def test_a_model_cache_that_cannot_be_written_is_one_line(tmp_path, registry, trained_onnx):
    client, exp_id = registry
    run_id, uri, model_id = log_onnx(client, exp_id, onnx.load(str(trained_onnx[2])))
    register_version(client, "bob's", uri, model_id, run_id, {})  # a quote MLflow's filters must quote
    (tmp_path / "cache").write_text("a file, not a folder")
    with pytest.raises(RegistryError, match="cannot write the model cache .*: set GAT_CACHE_DIR"):
        fetch_model(client, parse_model_uri("models:/bob's/1"), tmp_path / "cache")
    assert latest_version(client, "bob's") == 1
    with pytest.raises(RegistryError, match=r"has versions \[1\] and no aliases"):
        fetch_model(client, parse_model_uri("models:/bob's/2"), tmp_path / "cache")
