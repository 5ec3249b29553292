"""Reading and checking LR-TK0 checkpoints before Lightning uses them: one-line errors that name the file.

A checkpoint is read with ``torch.load(weights_only=True)`` (a crafted pickle cannot run code), must be a
Lightning checkpoint of :class:`~lr0fm.lrtk0.module.LRTK0Module`, and must hold every trainable tensor of the
configuration it is loaded into, with the same shapes and only finite values.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

#: where ``lr0fm fit`` keeps a run's checkpoints, relative to the logs root (``lightning_logs``)
RUN_CHECKPOINTS = "version_N/checkpoints"
#: what to pass instead, in the messages
WHICH = f"pass a .ckpt written by `lr0fm fit` (lightning_logs/{RUN_CHECKPOINTS}/last.ckpt or epochNNN.ckpt)"
_WHICH = f"{WHICH}, or `--ckpt_path last` for the latest run of this config"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file, what was expected and the fix."""


def read_checkpoint(path: str | Path, hint: str = _WHICH) -> dict[str, Any]:
    """Load a Lightning checkpoint of tensors and plain values (never arbitrary pickled objects).

    Args:
        path: the ``.ckpt`` file.
        hint: what the user should pass instead, ending every message.

    Raises:
        CheckpointError: missing, a folder, unreadable (truncated, random bytes, a crafted pickle), or not a
            Lightning checkpoint with a ``state_dict``.

    """
    path = Path(path)
    if not path.is_file():
        kind = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise CheckpointError(f"checkpoint {str(path)!r} {kind}; {hint}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError ... depending on the damage
        first = (str(exc).strip().splitlines() or [""])[0].split(". ")[0][:120]
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read ({type(exc).__name__}: {first}): it is truncated or damaged, "
            f"not a checkpoint, or holds Python objects that lr0fm refuses to unpickle; {hint}."
        ) from None
    if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict):
        raise CheckpointError(f"{str(path)!r} is not a Lightning checkpoint (no state_dict); {_WHICH}.")
    return state


def lrtk0_hparams(path: str | Path, state: Mapping[str, Any], hint: str = _WHICH) -> dict[str, Any]:
    """The ``LRTK0Module`` hyper-parameters of a checkpoint.

    Raises:
        CheckpointError: the checkpoint was not written by ``lr0fm fit`` (no ``hyper_parameters.backbone``).

    """
    hparams = state.get("hyper_parameters")
    if not isinstance(hparams, Mapping) or not isinstance(hparams.get("backbone"), str):
        raise CheckpointError(
            f"{str(path)!r} is not an LR-TK0 checkpoint (expected a Lightning checkpoint of LRTK0Module with "
            f"hyper_parameters.backbone); {hint}."
        )
    return dict(hparams)


def check_tensors(
    path: str | Path, state_dict: Mapping[str, Any], expected: Mapping[str, tuple[int, ...]], config: str
) -> None:
    """Check that ``state_dict`` holds every ``expected`` tensor with its shape and only finite values.

    Args:
        path: the checkpoint (named in the message).
        state_dict: its ``state_dict``.
        expected: trainable tensor name -> shape of the configuration it is loaded into.
        config: that configuration in words (e.g. ``"model.backbone='toyclip', model.method='lr_tokens'"``).

    Raises:
        CheckpointError: a missing tensor, another shape (another backbone or token layout), or NaN/inf values.

    """
    other = "it was written for another configuration; pass that run's config (lightning_logs/version_N/config.yaml)"
    missing = sorted(name for name in expected if name not in state_dict)
    if missing:
        shown = ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else "")
        raise CheckpointError(f"checkpoint {str(path)!r} lacks the trainable tensors {shown} of {config}: {other}.")
    for name, shape in expected.items():
        tensor = state_dict[name]
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"checkpoint {str(path)!r}: {name} is a {type(tensor).__name__}, not a tensor.")
        if tuple(tensor.shape) != tuple(shape):
            raise CheckpointError(
                f"checkpoint {str(path)!r}: {name} has shape {list(tensor.shape)} but {config} needs {list(shape)} "
                f"(another backbone or token layout); {other}."
            )
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(
                f"checkpoint {str(path)!r}: {name} holds {bad} NaN/inf values (the training diverged); use an earlier "
                "checkpoint (epochNNN.ckpt) or retrain with a lower model.lr."
            )


def check_resumable(path: str | Path, state: Mapping[str, Any]) -> None:
    """A checkpoint ``fit`` can resume from holds the optimizer and loop states.

    Raises:
        CheckpointError: a weights-only checkpoint.

    """
    if not {"optimizer_states", "loops"} <= set(state):
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds weights only (no optimizer or loop state), so `fit` cannot resume from "
            "it; resume from the run's last.ckpt, or evaluate it with `lr0fm validate --ckpt_path`."
        )
