"""One frozen dataclass describes a training run; named profiles say how much work a pipeline run
does."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from .errors import MnistError

PROFILES = ("quick", "default", "full")
"""quick: a CI-sized subset; default: the course as `make run-all` runs it; full: all of it."""

REFERENCE_AUGMENT = ("rotate", "crop", "translate")
"""The three transforms of the reference recipe, in the order they are applied."""

ALLOCATOR = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"
"""``GLIBC_TUNABLES`` of every process that trains: glibc keeps freed blocks of up to 32 MB in its
heap, so training steps reuse pages instead of mapping (and faulting) them afresh."""


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run; the defaults are the reference recipe."""

    name: str = "reference"
    model: str = "reference"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    schedule: str = "constant"  # constant | onecycle
    # any of rotate, crop, translate, flip, strong, elastic, noise
    augment: tuple[str, ...] = REFERENCE_AUGMENT
    dropout: float = 0.0
    label_smoothing: float = 0.0
    seed: int = 0
    train_size: int | None = None  # a random subset of the training images (quick mode)
    val_size: int = 0  # images held out of the training set for model selection
    test_size: int | None = None  # evaluate on a subset of the test set (quick mode)
    channels_last: bool = True
    # float32 | bfloat16: autocast of the forward pass (fast on CPUs with AMX or AVX-512 BF16)
    precision: str = "float32"
    # Adam's (beta1, beta2), kept fixed; None: PyTorch's (0.9, 0.999), beta1 cycled by OneCycle
    adam_betas: tuple[float, float] | None = None
    # fine-tune: start from the final weights of this run instead of a random init
    init_from: str | None = None

    def replace(self, **changes) -> RunConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain-JSON view of the config."""
        d = dataclasses.asdict(self)
        d["augment"] = list(self.augment)
        d["adam_betas"] = None if self.adam_betas is None else list(self.adam_betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["augment"] = tuple(d.get("augment", ()))
        if d.get("adam_betas") is not None:
            d["adam_betas"] = tuple(d["adam_betas"])
        return cls(**d)


def profile_from_env(default: str = "default") -> str:
    """The profile named by ``$MNIST_PROFILE`` (quick / default / full)."""
    profile = os.environ.get("MNIST_PROFILE", "").strip() or default
    if profile not in PROFILES:
        raise MnistError(
            f"MNIST_PROFILE={profile!r} is not one of {', '.join(PROFILES)}; unset it or set one."
        )
    return profile


QUICK = {"train_size": 2000, "test_size": 2000, "val_size": 500}
"""The quick profile's subset sizes (real images, one epoch): what `make test` runs every notebook
with."""


def for_profile(config: RunConfig, profile: str) -> RunConfig:
    """Shrink a config for the quick profile (:data:`QUICK` images, 1 epoch); other profiles keep it
    whole."""
    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r} is not one of {PROFILES}")
    if profile == "quick":
        return config.replace(
            epochs=1,
            train_size=QUICK["train_size"],
            test_size=QUICK["test_size"],
            val_size=min(config.val_size, QUICK["val_size"]),
        )
    return config
