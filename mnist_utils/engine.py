"""Training and evaluation on in-memory tensors: device choice, the epoch loop, evaluation."""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import checkpoints, errors
from .augment import AugmentSpec, augment_batch, normalize, to_unit
from .config import RunConfig
from .data import Split
from .models import build_model

AUGMENT_IMAGES = 1024
"""Training images :func:`fit` augments per call, drawn batch by batch: the same images as one call
per batch, with less work per image."""


class DeviceError(errors.MnistError):
    """``$MNIST_DEVICE`` (or a device argument) names no device this machine has."""


def select_device(preference: str | None = None) -> torch.device:
    """``preference`` or ``$MNIST_DEVICE`` if given (cpu, cuda, cuda:N or mps), else this machine's
    accelerator (CUDA, MPS), else the CPU."""
    preference = preference or os.environ.get("MNIST_DEVICE") or None
    if not preference:
        return torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")
    fix = "use cpu, cuda, cuda:N or mps, or unset MNIST_DEVICE to pick the best one"
    try:
        device = torch.device(preference)
    except RuntimeError:
        raise DeviceError(f"unknown device {preference!r} (MNIST_DEVICE): {fix}.") from None
    checks = {
        "cpu": lambda: True,
        "cuda": torch.cuda.is_available,
        "mps": torch.backends.mps.is_available,
    }
    if device.type not in checks:
        raise DeviceError(f"device {preference!r} (MNIST_DEVICE) cannot train this course: {fix}.")
    if not checks[device.type]():
        raise DeviceError(f"device {preference!r} (MNIST_DEVICE) is not on this machine: {fix}.")
    return device


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
    model: nn.Module, x: torch.Tensor, batch_size: int = 128, precision: str = "float32"
) -> torch.Tensor:
    """Log-probabilities [N, 10] for float images [N, 1, 28, 28] in [0, 1] (normalised here), in
    eval mode, without gradients, the forward pass in ``precision``; small batches keep each
    batch's activations in the CPU's cache."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        xb = normalize(x[i : i + batch_size].to(device, torch.float32))
        with autocast(precision, device.type):
            out.append(model(xb.contiguous(memory_format=torch.channels_last)).float().cpu())
    model.train(was_training)
    return torch.cat(out)


def predict_log_probs(
    model: nn.Module, images_u8: torch.Tensor, precision: str = "float32"
) -> torch.Tensor:
    """Log-probabilities [N, 10] for uint8 images [N, 28, 28] (see
    :func:`predict_log_probs_unit`)."""
    return predict_log_probs_unit(model, to_unit(images_u8.cpu()), precision=precision)


def evaluate(model: nn.Module, split: Split, precision: str = "float32") -> dict[str, float]:
    """Mean NLL loss and accuracy (a fraction) on a split, the forward pass in ``precision``."""
    log_probs = predict_log_probs(model, split.images, precision)
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


@dataclass
class FitResult:
    """What :func:`fit` returns: the trained model and its per-epoch history."""

    model: nn.Module
    history: list[dict]


def train_step(model, optimizer, scheduler, x, y, config: RunConfig) -> torch.Tensor:
    """One step of notebook 04's loop: forward (autocast to the config's precision), loss,
    ``zero_grad``, ``backward``, ``step``; the loss, detached."""
    with autocast(config.precision, x.device.type):
        log_probs = model(x)
    loss = loss_fn(log_probs.float(), y, config.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss.detach()


def augmented_batches(images, labels, order, g, spec: AugmentSpec, config: RunConfig, device):
    """The epoch's batches (x, y) in ``order``: :data:`AUGMENT_IMAGES` images augmented per call,
    the random numbers drawn batch by batch, so the images equal those of one call per batch."""
    chunk = max(1, AUGMENT_IMAGES // config.batch_size) * config.batch_size
    for start in range(0, len(order), chunk):
        ahead = order[start : start + chunk]
        x = to_unit(images[ahead].to(device, non_blocking=True))
        x = normalize(augment_batch(x, g, spec, config.batch_size))
        for xb, idx in zip(x.split(config.batch_size), ahead.split(config.batch_size)):
            if config.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yield xb, labels[idx].to(device, non_blocking=True)


def train_epoch(model, optimizer, scheduler, train: Split, g, config: RunConfig, bar) -> float:
    """One pass over ``train`` in a random order; the mean training loss."""
    model.train()
    device = next(model.parameters()).device
    order = torch.randperm(len(train), generator=g)
    spec = AugmentSpec.from_names(config.augment)
    total = torch.zeros((), device=device)  # summed on the device: no host sync per step
    batches = augmented_batches(train.images, train.labels, order, g, spec, config, device)
    for step, (x, y) in enumerate(batches):
        loss = train_step(model, optimizer, scheduler, x, y, config)
        total += loss * len(y)
        bar.update()
        if bar.disable is False and step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    return total.item() / len(train)


def new_run(config: RunConfig, steps_per_epoch: int, device: torch.device):
    """(model, optimizer, schedule, generator) of a fresh run: both seeds set from the config."""
    torch.manual_seed(config.seed)  # dropout, init
    g = torch.Generator().manual_seed(config.seed)  # shuffling and augmentation
    model = build_model(config.model, config.dropout).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return (model, *make_optimizer(model, config, steps_per_epoch), g)


def fit(
    config: RunConfig,
    train: Split,
    eval_split: Split | None = None,
    *,
    eval_name: str = "test",
    run_dir: Path | None = None,
    device: torch.device | str | None = None,
    progress: bool | None = None,
    init_weights: dict | None = None,
    score_every_epoch: bool = True,
) -> FitResult:
    """Train ``config`` on ``train``; after each epoch evaluate on ``eval_split`` and checkpoint to
    ``run_dir``, from whose checkpoint of the same config it resumes.

    The loop is notebook 04's (a test proves both give the same history) plus a learning-rate
    schedule, label smoothing and a progress bar. ``init_weights`` starts from trained weights.
    The scoring is in the run's precision, after every epoch or, where only the trained model's
    score matters, after the last."""
    device = device if isinstance(device, torch.device) else select_device(device)
    if config.precision not in ("float32", "bfloat16"):
        raise ValueError(f"unknown precision {config.precision!r}: use float32 or bfloat16")
    progress = show_progress() if progress is None else progress
    steps = math.ceil(len(train) / config.batch_size)
    model, opt, sched, g = new_run(config, steps, device)
    if init_weights is not None:
        model.load_state_dict(init_weights)
    ckpt = Path(run_dir) / checkpoints.CHECKPOINT if run_dir is not None else None
    history = checkpoints.resume(ckpt, config, model, opt, g, sched) if ckpt else []
    for epoch in range(len(history) + 1, config.epochs + 1):
        start = time.perf_counter()
        desc = f"{config.name} epoch {epoch}/{config.epochs}"
        bar = tqdm(total=steps, desc=desc, disable=not progress, leave=False, file=sys.stderr)
        with bar:
            train_loss = train_epoch(model, opt, sched, train, g, config, bar)
        seconds, lr = time.perf_counter() - start, opt.param_groups[0]["lr"]
        row = {"epoch": epoch, "train_loss": train_loss, "epoch_seconds": seconds, "lr": lr}
        if eval_split is not None and (score_every_epoch or epoch == config.epochs):
            scores = evaluate(model, eval_split, config.precision)
            row |= {f"{eval_name}_{k}": v for k, v in scores.items()}
        history.append(row)
        if progress:
            shown = ", ".join(f"{k}={v:.4f}" for k, v in row.items() if k not in ("epoch", "lr"))
            tqdm.write(f"{desc}: {shown}", file=sys.stderr)
        if ckpt is not None:
            state = checkpoints.training_state(config, history, model, opt, g, sched)
            checkpoints.save(ckpt, state)
    return FitResult(model, history)
