"""Checkpoints: written atomically, verified on load, tied to the config that wrote them; resume."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch
from torch import nn

from . import errors, paths
from .config import RunConfig
from .models import build_model

CHECKPOINT = paths.CHECKPOINT


class CheckpointError(errors.MnistError):
    """A checkpoint cannot be written, is missing or damaged, or belongs to another run."""


class RunConflictError(CheckpointError):
    """A run folder holds a checkpoint of another config; it is kept, never overwritten."""


def save(path: Path, state: dict) -> None:
    """Write a checkpoint atomically; a full or read-only disk leaves no partial file."""
    try:
        paths.atomic_write(path, lambda tmp: torch.save(state, tmp))
    except (OSError, RuntimeError) as exc:  # torch reports a failed write as RuntimeError
        raise CheckpointError(
            f"Cannot write checkpoint {path}: disk full or not writable "
            f"({str(exc).splitlines()[0]}); any earlier checkpoint there is kept. Free space or "
            "fix permissions, then re-run to resume (or set MNIST_ARTIFACTS_DIR)."
        ) from exc


def _own_run(path: Path) -> tuple[str, str] | None:
    """(profile, run name) when ``path`` is a checkpoint training wrote in artifacts/, else None."""
    path = Path(path).resolve()
    if path.name != CHECKPOINT or path.parent.parent.parent != paths.artifacts_dir() / "runs":
        return None
    return path.parent.parent.name, path.parent.name


def train_command(path: Path) -> str:
    """The command that trains the run of checkpoint ``path``: notebook 04's, else the study's."""
    profile, run = _own_run(path) or ("default", "reference")
    if run == "reference":
        return errors.notebook("04_training", profile)
    return errors.experiments(profile)


def _fix(path: Path, problem: str) -> str:
    """The fix for an unusable checkpoint: retrain the project's own; never delete a user's."""
    if _own_run(path) is None:
        return (
            f"{path} {problem}; it was left as it is. Pass a checkpoint.pt written by this "
            f"project's training (`{errors.run_all()}` writes "
            f"{paths.checkpoint_path('reference', 'default')})."
        )
    return f"{path} {problem}. Retrain it: `rm {path} && {train_command(path)}`."


def _check_zip(path: Path) -> None:
    """Check the CRC-32 that the zip container stores for every member (``torch.load`` does not)."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        problem = f"is damaged or not a PyTorch checkpoint (no zip container: {exc})"
        raise CheckpointError(_fix(path, problem)) from exc
    if bad is not None:
        problem = f"is damaged: its bytes changed since it was written ({bad} fails its CRC check)"
        raise CheckpointError(_fix(path, problem))


def load(path: Path) -> dict:
    """A verified checkpoint, loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        fix = (
            f"Train it first: `{train_command(path)}`"
            if _own_run(path)
            else f"Name an existing checkpoint.pt, or train one with `{errors.run_all()}`"
        )
        raise CheckpointError(f"No checkpoint at {path}. {fix}.")
    _check_zip(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged file
        problem = f"is damaged or not a checkpoint of this project ({type(exc).__name__}: {exc})"
        raise CheckpointError(_fix(path, " ".join(problem.split()))) from exc
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(_fix(path, "lacks the 'model'/'config' entries this project writes"))
    return state


def _weights_problem(weights: dict) -> str | None:
    """Why a state dict cannot predict (non-finite or non-float weights), or None."""
    if not all(isinstance(t, torch.Tensor) for t in weights.values()):
        return "holds weights that are not tensors"
    broken = [n for n, t in weights.items() if t.is_floating_point() and not t.isfinite().all()]
    if broken:
        return (
            f"holds non-finite weights (NaN or Inf in {', '.join(broken[:3])}) and cannot predict"
        )
    return None


def load_model(path: Path, device: torch.device | None = None) -> tuple[nn.Module, RunConfig, dict]:
    """Rebuild a trained model from its checkpoint: (model in eval mode, its config, the state)."""
    state = load(path)
    try:
        config = RunConfig.from_dict(state["config"])
        model = build_model(config.model, config.dropout)
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # fields this code lacks
        problem = f"was written by an incompatible version ({type(exc).__name__}: {exc})"
        raise CheckpointError(_fix(path, " ".join(problem.split()))) from exc
    if (problem := _weights_problem(state["model"])) is not None:
        raise CheckpointError(_fix(path, problem))
    model.to(device or torch.device("cpu")).eval()
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    return model, config, state


def training_state(
    config: RunConfig, history: list[dict], model: nn.Module, optimizer, g, scheduler=None
) -> dict:
    """Everything a run needs to go on exactly where it stopped: weights, optimizer, schedule, both
    random generators, history."""
    return {
        "config": config.to_dict(),
        "epoch": len(history),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng_torch": torch.get_rng_state(),
        "rng_generator": g.get_state(),
        "history": history,
    }


def of_config(path: Path, config: RunConfig) -> dict:
    """The checkpoint at ``path``, which ``config`` must have written (else
    :class:`RunConflictError`; the file is kept)."""
    state = load(path)
    if RunConfig.from_dict(state["config"]) != config:  # fields added since take their defaults
        raise RunConflictError(
            f"{path} holds a run {config.name!r} of another config; it was kept. To replace it: "
            f"`rm -r {Path(path).parent}`, or train into another folder: "
            "`MNIST_ARTIFACTS_DIR=/some/dir ...`."
        )
    return state


def resume(
    path: Path, config: RunConfig, model: nn.Module, optimizer, g, scheduler=None
) -> list[dict]:
    """Restore a checkpoint of ``config`` into model, optimizer, schedule and both generators;
    return its history ([] when there is no checkpoint)."""
    if not Path(path).is_file():
        return []
    state = of_config(path, config)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng_torch"])
    g.set_state(state["rng_generator"])
    return state["history"]
