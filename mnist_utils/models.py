"""The reference CNN of notebook 3 (the report's Table 1) and the family of variants the experiments
compare."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


# The class below is notebook 3's, character for character (tests/test_lessons.py checks it).
class ReferenceCNN(nn.Module):
    """Conv(1→32) → MaxPool → ReLU → Conv(32→64) → MaxPool → ReLU → Linear(3136→128) → ReLU →
    Linear(128→10)."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, padding=1)  # 1×28×28 → 32×28×28
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)  # 32×14×14 → 64×14×14
        self.pool = nn.MaxPool2d(2)  # halves height and width
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.dropout = nn.Dropout(dropout)  # p = 0: does nothing (the reference recipe)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        # 32×14×14 (pool, then ReLU: the same numbers, 4× less work)
        x = F.relu(self.pool(self.conv1(x)))
        x = F.relu(self.pool(self.conv2(x)))  # 64×7×7
        x = torch.flatten(x, 1)  # 3,136 numbers per image
        x = self.dropout(F.relu(self.fc1(x)))  # 128
        return F.log_softmax(self.fc2(x), dim=1)  # log-probabilities of the 10 digits


class CNN(nn.Sequential):
    """The family: one block per entry of ``channels`` (conv 3×3 → [BatchNorm] → ReLU for each width
    of the entry, then MaxPool), then the reference head. A block's last ReLU comes after its
    MaxPool, as in :class:`ReferenceCNN`: max and ReLU commute, so outputs and gradients are the
    same numbers, for a quarter of the ReLU's work.

    ``CNN((32, 64))`` is the reference network; ``batchnorm``, a third block and a second conv in a
    block (``CNN(((32, 32), 64))``) are what the variants change.
    """

    def __init__(
        self,
        channels: tuple[int | tuple[int, ...], ...] = (32, 64),
        batchnorm: bool = False,
        dropout: float = 0.0,
    ):
        layers, c_in, size = [], 1, 28
        for block in channels:
            for c_out in block if isinstance(block, tuple) else (block,):
                layers += [
                    nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batchnorm),
                    *([nn.BatchNorm2d(c_out)] if batchnorm else []),
                    nn.ReLU(),
                ]
                c_in = c_out
            layers.insert(-1, nn.MaxPool2d(2))  # before the block's last ReLU
            size //= 2
        super().__init__(
            *layers,
            nn.Flatten(),
            nn.Linear(c_in * size * size, 128),
            nn.ReLU(),
            *([nn.Dropout(dropout)] if dropout > 0 else []),
            nn.Linear(128, 10),
            nn.LogSoftmax(dim=1),
        )


class Whiten(nn.Module):
    """A fixed first layer: ``k``×``k`` convolution filters (stride ``stride``, no padding) that
    whiten the image patches, each with its negative, so that a ReLU after it keeps both signs.

    The filters are the top ``pairs`` eigenvectors of the covariance of the first batch's patches,
    scaled by 1/√(eigenvalue + ``eps``): computed once, on the first call, then kept (buffers, saved
    with the weights, never trained). Nothing before the layer learns, so back-propagation stops at
    the next layer: that layer needs the gradient of its weights only, not of its input."""

    def __init__(self, k: int = 5, pairs: int = 12, stride: int = 2, eps: float = 1e-2):
        super().__init__()
        self.k, self.pairs, self.stride, self.eps = k, pairs, stride, eps
        self.register_buffer("weight", torch.zeros(2 * pairs, 1, k, k))
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def set_filters(self, x: torch.Tensor) -> None:
        """Set the filters from the patches of a batch [N, 1, H, W]."""
        patches = F.unfold(x.double(), self.k, stride=self.stride).transpose(1, 2)
        patches = patches.reshape(-1, self.k * self.k)
        eigenvalues, eigenvectors = torch.linalg.eigh(patches.T.cov())  # ascending
        top, vectors = eigenvalues[-self.pairs :], eigenvectors[:, -self.pairs :]
        filters = (vectors / (top + self.eps).sqrt()).T.reshape(self.pairs, 1, self.k, self.k)
        self.weight.copy_(torch.cat([filters, -filters]))
        self.ready.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.ready:
            self.set_filters(x)
        return F.conv2d(x, self.weight, stride=self.stride)


class FlattenChannelsLast(nn.Module):
    """Flatten [N, C, H, W] in (H, W, C) order: a view, not a copy, of a channels-last tensor, so
    its gradient stays channels-last too (``nn.Flatten`` copies it to (C, H, W) order, and mixed
    memory layouts make the ReLU's backward pass several times slower)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1)


def fast_cnn(dropout: float = 0.0) -> nn.Sequential:
    """The racer of notebook 09 and `make bench`: a fixed whitening layer (5×5 patches, stride 2:
    28×28 → 24×12×12; the stride and no padding skip the border, where MNIST has almost no ink),
    two conv → BatchNorm → ReLU blocks (3×3, stride 2 → 48×6×6, stride 1 → 32×6×6), one linear
    layer."""
    whiten = Whiten()
    blocks = [(2 * whiten.pairs, 48, 2), (48, 32, 1)]  # (in, out channels, stride)
    layers = [whiten, nn.ReLU()]
    for c_in, c_out, stride in blocks:
        conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        layers += [conv, nn.BatchNorm2d(c_out), nn.ReLU()]
    layers += [FlattenChannelsLast(), *([nn.Dropout(dropout)] if dropout > 0 else [])]
    return nn.Sequential(*layers, nn.Linear(blocks[-1][1] * 6 * 6, 10), nn.LogSoftmax(dim=1))


MODELS = {
    "reference": ReferenceCNN,
    "batchnorm": lambda dropout=0.0: CNN((32, 64), batchnorm=True, dropout=dropout),
    "three_conv": lambda dropout=0.0: CNN((32, 64, 128), dropout=dropout),
    "improved": lambda dropout=0.0: CNN((32, 64, 128), batchnorm=True, dropout=dropout),
    "deep": lambda dropout=0.0: CNN(((32, 32), (64, 64), 128), batchnorm=True, dropout=dropout),
    "fast": fast_cnn,
}
"""Model name (``RunConfig.model``) → constructor taking ``dropout``."""


def build_model(name: str, dropout: float = 0.0) -> nn.Module:
    """Instantiate a model by its name in :data:`MODELS`."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](dropout=dropout)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
