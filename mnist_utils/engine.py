"""Training and evaluation on in-memory tensors: device choice, epoch loop, checkpoints, resume."""

from __future__ import annotations

import math
import os
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import paths
from .augment import AugmentSpec, augment_batch, normalize, to_unit
from .config import RunConfig
from .data import Split
from .models import build_model

CHECKPOINT = "checkpoint.pt"
AUGMENT_IMAGES = 1024
"""Training images :func:`fit` augments per call, drawn batch by batch (the same images as one call
per batch): one resampling per 16 batches of 64 cut the engine's time beyond the model's compute
from 1.7 to 1.2 s per reference epoch."""


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written, is missing or damaged, or belongs to another run; the message
    says the fix."""


class DeviceError(ValueError):
    """``$MNIST_DEVICE`` (or a device argument) names no device this machine has."""


class RunConflictError(CheckpointError):
    """A run folder holds a checkpoint of another config; it is kept, never overwritten."""


class Interrupted(RuntimeError):
    """Raised by :func:`fit` when ``stop_after_steps`` is reached (used to test resuming)."""


def select_device(preference: str | None = None) -> torch.device:
    """``preference`` or ``$MNIST_DEVICE`` if given, else this machine's accelerator (CUDA, MPS,
    ...), else the CPU."""
    preference = preference or os.environ.get("MNIST_DEVICE") or None
    if preference:
        try:
            device = torch.device(preference)
        except RuntimeError:
            raise DeviceError(
                f"unknown device {preference!r} (MNIST_DEVICE): use cpu, cuda, cuda:N or mps, or "
                "unset MNIST_DEVICE to pick the best one."
            ) from None
        available = {"cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}.get(
            device.type
        )
        if available is not None and not available():
            raise DeviceError(
                f"device {preference!r} (MNIST_DEVICE) is not available on this machine: use cpu, "
                "or unset MNIST_DEVICE to pick the best one."
            )
        return device
    return torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")


def show_progress() -> bool:
    """Progress bars on a terminal or in Jupyter, never in CI or when ``$MNIST_PROGRESS=0``."""
    if os.environ.get("CI") or os.environ.get("MNIST_PROGRESS", "1") == "0":
        return False
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def autocast(precision: str, device_type: str = "cpu") -> torch.autocast:
    """The autocast of a forward pass in ``precision``: to bfloat16, or off for float32."""
    return torch.autocast(device_type, torch.bfloat16, enabled=precision == "bfloat16")


def loss_fn(log_probs: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """``NLLLoss`` of the reference recipe; with ``smoothing`` > 0, PyTorch's label-smoothed
    cross-entropy."""
    return (
        F.nll_loss(log_probs, target)
        if smoothing == 0
        else F.cross_entropy(log_probs, target, label_smoothing=smoothing)
    )


@torch.inference_mode()
def predict_log_probs_unit(
    model: nn.Module, x: torch.Tensor, batch_size: int = 128
) -> torch.Tensor:
    """Log-probabilities [N, 10] for float images [N, 1, 28, 28] in [0, 1] (normalised here), eval
    mode, no gradients.

    Batches of 128 keep a batch's activations in the CPU's cache: the deep model scores 5,000 images
    1.5-2x faster than in batches of 1,000, on one thread or two."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        xb = normalize(x[i : i + batch_size].to(device, torch.float32))
        out.append(model(xb.contiguous(memory_format=torch.channels_last)).float().cpu())
    model.train(was_training)
    return torch.cat(out)


def predict_log_probs(model: nn.Module, images_u8: torch.Tensor) -> torch.Tensor:
    """Log-probabilities [N, 10] for uint8 images [N, 28, 28] (see
    :func:`predict_log_probs_unit`)."""
    return predict_log_probs_unit(model, to_unit(images_u8.cpu()))


def evaluate(model: nn.Module, split: Split) -> dict[str, float]:
    """Mean NLL loss and accuracy (a fraction) on a split."""
    log_probs = predict_log_probs(model, split.images)
    return {
        "loss": F.nll_loss(log_probs, split.labels).item(),
        "accuracy": (log_probs.argmax(1) == split.labels).float().mean().item(),
    }


def make_optimizer(model: nn.Module, config: RunConfig, steps_per_epoch: int):
    """Fused Adam and the configured learning-rate schedule (constant or OneCycle; OneCycle also
    cycles Adam's beta1 unless ``config.adam_betas`` fixes the betas)."""
    betas = config.adam_betas or (0.9, 0.999)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, betas=betas, fused=True)
    if config.schedule == "constant":
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    if config.schedule == "onecycle":
        total = config.epochs * steps_per_epoch
        return opt, torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=config.lr,
            total_steps=total,
            pct_start=0.25,
            cycle_momentum=config.adam_betas is None,
        )
    raise ValueError(f"unknown schedule {config.schedule!r}: use constant or onecycle")


def save_checkpoint(path: Path, state: dict) -> None:
    """Write a checkpoint atomically; a full or read-only disk raises :class:`CheckpointError` and
    leaves no partial file."""
    try:
        paths.atomic_write(path, lambda tmp: torch.save(state, tmp))
    # torch reports a failed write as RuntimeError("[enforce fail ...] ...")
    except (OSError, RuntimeError) as exc:
        raise CheckpointError(
            f"Cannot write checkpoint {path}: disk full or not writable "
            f"({str(exc).splitlines()[0]}); any earlier checkpoint there is kept. Free space or "
            "fix permissions, then re-run to resume (or set MNIST_ARTIFACTS_DIR)."
        ) from exc


def _own_run(path: Path) -> tuple[str, str] | None:
    """(profile, run name) when ``path`` is a checkpoint training wrote in artifacts/, else None."""
    path = Path(path).resolve()
    runs_dir = paths.artifacts_dir() / "runs"
    if path.name != CHECKPOINT or path.parent.parent.parent != runs_dir:
        return None
    return path.parent.parent.name, path.parent.name


def train_command(path: Path) -> str:
    """The command that trains the run of checkpoint ``path``: notebook 4's, else the study's."""
    profile, run = _own_run(path) or ("default", "reference")
    suffix = "" if profile == "default" else f" PROFILE={profile}"
    return f"make nb/04_training{suffix}" if run == "reference" else f"make experiments{suffix}"


def _fix(path: Path, problem: str) -> str:
    """The fix for an unusable checkpoint: retrain the project's own; never delete a user's."""
    if _own_run(path) is None:
        return (
            f"{path} {problem}; it was left as it is. Pass a checkpoint.pt written by this "
            f"project's training (`make run-all` writes artifacts/runs/default/reference/"
            f"checkpoint.pt)."
        )
    return f"{path} {problem}. Retrain it: `rm {path} && {train_command(path)}`."


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint with ``weights_only=True`` after checking the CRC-32 that its zip container
    stores for every member (``torch.load`` does not); a missing or damaged file raises
    :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        fix = (
            f"Train it first: `{train_command(path)}`"
            if _own_run(path)
            else "Name an existing checkpoint.pt, or train one with `make run-all`"
        )
        raise CheckpointError(f"No checkpoint at {path}. {fix}.")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        problem = f"is damaged or not a PyTorch checkpoint (no zip container: {exc})"
        raise CheckpointError(_fix(path, problem)) from exc
    if bad is not None:
        raise CheckpointError(
            _fix(
                path,
                f"is damaged: its bytes changed since it was written ({bad} fails its CRC check)",
            )
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged file
        raise CheckpointError(
            _fix(
                path,
                f"is damaged or not a checkpoint of this project ({type(exc).__name__}: {exc})",
            )
        ) from exc
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(_fix(path, "lacks the 'model'/'config' entries this project writes"))
    return state


def load_model(path: Path, device: torch.device | None = None) -> tuple[nn.Module, RunConfig, dict]:
    """Rebuild the trained model from a checkpoint: (model in eval mode, its config, the
    checkpoint)."""
    state = load_checkpoint(path)
    try:
        config = RunConfig.from_dict(state["config"])
        model = build_model(config.model, config.dropout)
        model.load_state_dict(state["model"])
    # config fields, model names or weights this code does not know
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            _fix(
                path,
                f"was written by an incompatible version of mnist_utils "
                f"({type(exc).__name__}: {exc})",
            )
        ) from exc
    broken = [
        name
        for name, t in state["model"].items()
        if t.is_floating_point() and not torch.isfinite(t).all()
    ]
    if broken:
        raise CheckpointError(
            _fix(
                path,
                f"holds non-finite weights (NaN or Inf in "
                f"{', '.join(broken[:3])}) and cannot predict",
            )
        )
    model.to(device or torch.device("cpu")).eval()
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    return model, config, state


def training_state(
    config: RunConfig,
    history: list[dict],
    model: nn.Module,
    optimizer,
    g: torch.Generator,
    scheduler=None,
) -> dict:
    """Everything a run needs to continue exactly where it stopped: weights, optimizer, schedule,
    both RNGs, history."""
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


def checkpoint_of(path: Path, config: RunConfig) -> dict:
    """The checkpoint at ``path``, which ``config`` must have written: else
    :class:`RunConflictError`, the file kept."""
    state = load_checkpoint(path)
    if (
        RunConfig.from_dict(state["config"]) != config
    ):  # fields added since the checkpoint take their defaults
        raise RunConflictError(
            f"{path} holds a run {config.name!r} of another config; it was kept. To replace it: "
            f"`rm -r {Path(path).parent}`, or train into another folder: "
            "`MNIST_ARTIFACTS_DIR=/some/dir ...`."
        )
    return state


def resume(
    path: Path, config: RunConfig, model: nn.Module, optimizer, g: torch.Generator, scheduler=None
) -> list[dict]:
    """Restore a checkpoint of ``config`` at ``path`` into model, optimizer, schedule and RNGs; its
    history ([] if none)."""
    if not Path(path).is_file():
        return []
    state = checkpoint_of(path, config)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng_torch"])
    g.set_state(state["rng_generator"])
    return state["history"]


@dataclass
class FitResult:
    """What :func:`fit` returns: the trained model and its per-epoch history."""

    model: nn.Module
    history: list[dict]


def fit(
    config: RunConfig,
    train: Split,
    eval_split: Split | None = None,
    *,
    eval_name: str = "test",
    run_dir: Path | None = None,
    device: torch.device | str | None = None,
    progress: bool | None = None,
    stop_after_steps: int | None = None,
    init_weights: dict | None = None,
) -> FitResult:
    """Train ``config`` on ``train``; after each epoch evaluate on ``eval_split`` and checkpoint to
    ``run_dir``.

    The loop is notebook 4's (tests/test_lessons.py proves both give the same history) plus a
    learning-rate schedule, label smoothing and a progress bar. With a checkpoint of the same config
    in ``run_dir``, training continues after its last epoch and ends as an uninterrupted run would.
    ``init_weights`` (a state dict) starts a fresh run from trained weights instead of a random
    initialisation: fine-tuning.
    """
    device = select_device(device) if not isinstance(device, torch.device) else device
    if config.precision not in ("float32", "bfloat16"):
        raise ValueError(f"unknown precision {config.precision!r}: use float32 or bfloat16")
    progress = show_progress() if progress is None else progress
    torch.manual_seed(config.seed)  # dropout, init
    g = torch.Generator().manual_seed(config.seed)  # shuffling and augmentation
    model = build_model(config.model, config.dropout).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    n = len(train)
    steps_per_epoch = math.ceil(n / config.batch_size)
    opt, sched = make_optimizer(model, config, steps_per_epoch)
    spec = AugmentSpec.from_names(config.augment)
    ckpt_path = Path(run_dir) / CHECKPOINT if run_dir is not None else None
    if init_weights is not None:
        model.load_state_dict(init_weights)
    history = resume(ckpt_path, config, model, opt, g, sched) if ckpt_path is not None else []
    images, labels = train.images, train.labels
    chunk = max(1, AUGMENT_IMAGES // config.batch_size)
    steps_done = 0
    for epoch in range(len(history) + 1, config.epochs + 1):
        model.train()
        start = time.perf_counter()
        perm = torch.randperm(n, generator=g)
        total_loss = torch.zeros((), device=device)  # summed on the device: no host sync per step
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"{config.name} epoch {epoch}/{config.epochs}",
            disable=not progress,
            leave=False,
            mininterval=0.5,
            file=sys.stderr,
        )
        for step in bar:
            if (
                step % chunk == 0
            ):  # the next `chunk` batches, augmented at once: the same images as batch by batch
                ahead = perm[step * config.batch_size : (step + chunk) * config.batch_size]
                batches = normalize(
                    augment_batch(
                        to_unit(images[ahead].to(device, non_blocking=True)),
                        g,
                        spec,
                        config.batch_size,
                    )
                ).split(config.batch_size)
            idx = perm[step * config.batch_size : (step + 1) * config.batch_size]
            x = batches[step % chunk]
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(config.precision, device.type):
                log_probs = model(x)
            loss = loss_fn(
                log_probs.float(), labels[idx].to(device, non_blocking=True), config.label_smoothing
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.detach() * len(idx)
            steps_done += 1
            if progress and step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
            if stop_after_steps is not None and steps_done >= stop_after_steps:
                raise Interrupted(f"stopped after {steps_done} steps in epoch {epoch}")
        row = {
            "epoch": epoch,
            "train_loss": total_loss.item() / n,
            "epoch_seconds": time.perf_counter() - start,
            "lr": opt.param_groups[0]["lr"],
        }
        if eval_split is not None:
            metrics = evaluate(model, eval_split)
            row[f"{eval_name}_loss"], row[f"{eval_name}_accuracy"] = (
                metrics["loss"],
                metrics["accuracy"],
            )
        history.append(row)
        if progress:
            shown = ", ".join(f"{k}={v:.4f}" for k, v in row.items() if k not in ("epoch", "lr"))
            tqdm.write(f"{config.name} epoch {epoch}/{config.epochs}: {shown}", file=sys.stderr)
        if ckpt_path is not None:
            save_checkpoint(ckpt_path, training_state(config, history, model, opt, g, sched))
    return FitResult(model, history)
