"""The race to 99 %: one epoch of the racer network (``models.fast_cnn``) in bfloat16, as plain as
notebook 04's loop; notebook 09 shows this code and `make bench` races it against a published
recipe."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .augment import normalize, to_unit
from .models import fast_cnn

BATCH_SIZE, LR, BETAS, SMOOTHING = 256, 2e-2, (0.7, 0.9), 0.1
"""The racer's settings, chosen on held-out training images (docs/speed.md)."""


def train_racer(images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> nn.Module:
    """One epoch on uint8 images [N, 28, 28]: Adam with OneCycle, label smoothing, bfloat16."""
    torch.manual_seed(seed)  # the initial weights
    x = normalize(to_unit(images)).contiguous(memory_format=torch.channels_last)
    model = fast_cnn().to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, betas=BETAS, fused=True)
    steps = math.ceil(len(x) / BATCH_SIZE)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=LR, total_steps=steps, pct_start=0.25, cycle_momentum=False
    )
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    model.train()
    for idx in order.split(BATCH_SIZE):
        with torch.autocast("cpu", torch.bfloat16):
            log_probs = model(x[idx])
        loss = F.cross_entropy(log_probs.float(), labels[idx], label_smoothing=SMOOTHING)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model


@torch.inference_mode()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Test accuracy of the racer, scored in bfloat16 as it trained."""
    model.eval()
    x = normalize(to_unit(images)).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", torch.bfloat16):
        predicted = torch.cat([model(part).argmax(1) for part in x.split(1000)])
    return (predicted == labels).double().mean().item()
