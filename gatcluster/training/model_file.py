"""The trained-model file (`models/model.pt`): weights, params and input channels in one file.

Written atomically and loadable with `torch.load(..., weights_only=True)`, like checkpoints;
everything needed to rebuild the network travels with it.
"""

from __future__ import annotations

from pathlib import Path

from gatcluster.config.loading import saved_params_from_dict
from gatcluster.config.params import Params, ParamsError, params_to_dict
from gatcluster.model import GATCluster
from gatcluster.training.checkpoint import CheckpointError, first_line, load_checkpoint, save_checkpoint


def save_model(model: GATCluster, params: Params, path: Path) -> None:
    """Write the weights (on the CPU), the params and the input channels to `path`."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {"model": state, "params": params_to_dict(params), "in_channels": model.in_channels}
    save_checkpoint(payload, path)


def not_a_model_file(path: Path, err: Exception) -> CheckpointError:
    """The error for a readable torch file that holds no gatcluster model."""
    return CheckpointError(f"{path} is not a gatcluster model file ({first_line(err)}): train it again")


def load_model(path: Path) -> tuple[GATCluster, Params]:
    """The network in eval mode on the CPU and the params it was trained with."""
    if not path.is_file():
        raise CheckpointError(f"no model file at {path}: run the train stage first (dvc repro)")
    state = load_checkpoint(path, "model file", "train it again (dvc repro -f train)")
    try:
        params = saved_params_from_dict(state["params"])
        in_channels, weights = int(state["in_channels"]), state["model"]
    # A model of an earlier version, whose settings are refused today. `dvc repro` alone may call
    # train up to date (export.opset is no train param): -f trains and writes the file again.
    except ParamsError as err:
        raise CheckpointError(
            f"{path} was trained with settings this version refuses ({err}): fix them in params.yaml"
            " and train again (dvc repro -f), or use the gatcluster version that wrote it"
        ) from err
    except (KeyError, TypeError, ValueError) as err:  # other contents
        raise not_a_model_file(path, err) from err
    model = GATCluster(params.model, in_channels, params.experimental)
    model.keep_head(0)  # a saved model holds only its selected head
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as err:  # weights of another network, or none
        raise not_a_model_file(path, err) from err
    return model.eval(), params
