"""The race to 99 % of `make bench`: the course's racer (``mnist_utils.racer``, notebook 09) against
the fastest published MNIST recipe we know, seed by seed on the same tensors."""

from __future__ import annotations

import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from mnist_utils import racer
from mnist_utils.augment import normalize, to_unit
from mnist_utils.data import Split
from mnist_utils.engine import evaluate

PEER = "tuomaso/train_mnist_fast"
PEER_URL = "https://github.com/tuomaso/train_mnist_fast"
"""The published recipe the racer races: 99.04 ± 0.07 % in 0.76 s on a GTX 1660 Ti, its README
says."""


def racer_time_to_99(seed: int, train: Split, test: Split) -> dict:
    """Wall time from an untrained racer to its test accuracy (scoring included)."""
    start = time.perf_counter()
    model = racer.train_racer(train.images, train.labels, seed)
    accuracy = racer.accuracy(model, test.images, test.labels)
    return {"seed": seed, "seconds": time.perf_counter() - start, "test_accuracy": accuracy}


def peer_cnn() -> nn.Sequential:
    """The peer's network, written from its description: 1→24 5×5, pool, ReLU, 24→32 3×3, pool,
    ReLU, 800→256, ReLU, 256→10, log-softmax."""
    return nn.Sequential(
        nn.Conv2d(1, 24, 5),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Conv2d(24, 32, 3),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(800, 256),
        nn.ReLU(),
        nn.Linear(256, 10),
        nn.LogSoftmax(dim=1),
    )


def peer_time_to_99(seed: int, train: Split, test: Split, batch_size: int = 256) -> dict:
    """The peer recipe in float32, timed like the racer: normalise the tensors, shuffle once, one
    epoch of Adam (lr 1e-2, betas 0.7/0.9) with OneCycle stepped per batch, then score the test
    set."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    x, y = normalize(to_unit(train.images)), train.labels
    model = peer_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.7, 0.9))
    steps = math.ceil(len(x) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=1e-2, total_steps=steps, cycle_momentum=False
    )
    model.train()
    for idx in torch.randperm(len(x)).split(batch_size):
        loss = F.nll_loss(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    accuracy = evaluate(model, test)["accuracy"]
    return {"seed": seed, "seconds": time.perf_counter() - start, "test_accuracy": accuracy}


def race(seeds: int, train: Split, test: Split) -> dict[str, list[dict]]:
    """The racer and the peer, seed by seed on the same tensors; who goes first alternates with the
    seed (A B, B A, A B, …), so neither always follows the other."""
    contestants = {"racer": racer_time_to_99, "peer": peer_time_to_99}
    runs: dict[str, list[dict]] = {name: [] for name in contestants}
    for seed in range(seeds):
        order = list(contestants) if seed % 2 == 0 else list(reversed(contestants))
        for name in order:
            runs[name].append(contestants[name](seed, train, test))
    return runs


def summary(runs: list[dict]) -> dict:
    """Times (min, median, max), and the mean and min test accuracy of a contestant's runs with how
    many reached 99 %."""
    seconds, accuracies = [r["seconds"] for r in runs], [r["test_accuracy"] for r in runs]
    return {
        "seconds": {"min": min(seconds), "median": statistics.median(seconds), "max": max(seconds)},
        "mean": statistics.mean(accuracies),
        "min": min(accuracies),
        "reached": sum(a >= 0.99 for a in accuracies),
        "seeds": len(runs),
    }
