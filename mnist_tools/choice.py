"""Which trained model the tools use: chosen on validation, never on the test set."""

from __future__ import annotations

import argparse
from pathlib import Path

from torch import nn

from mnist_utils import checkpoints, data, errors, paths, runs
from mnist_utils.config import PROFILES, RunConfig
from mnist_utils.engine import predict_log_probs


def default_checkpoint() -> Path:
    """The best trained single model, chosen on validation, never on the test set: the highest
    recorded validation accuracy among the runs of the full and default profiles whose checkpoint
    exists (a run without a validation split, such as notebook 04's reference, only when no run has
    one; the quick profile's only when neither profile has a run); else notebook 04's."""
    for profiles in (("full", "default"), ("quick",)):
        found = [
            (("val_accuracy" in entry, entry.get("val_accuracy", -1.0)), path)
            for profile in profiles
            for name, entry in runs.read_metrics(profile).items()
            if (path := paths.checkpoint_path(name, profile)).is_file()
        ]
        if found:
            return max(found)[1]
    return paths.checkpoint_path("reference", "default")


def load_default(checkpoint: Path | None = None) -> tuple[nn.Module, str]:
    """(the model of ``checkpoint`` or :func:`default_checkpoint` on the CPU, one line naming it:
    file, run, profile, and the test accuracy its metrics.json records)."""
    path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    model, config, _ = checkpoints.load_model(path)
    run, profile = path.parent.name, path.parent.parent.name
    metrics = path.parent.parent / "metrics.json"
    try:
        entry = runs.read_json(metrics, {}).get(run, {})
    except runs.ArtifactError:
        entry = {}
    same = "config" in entry and RunConfig.from_dict(entry["config"]) == config
    score = (
        f"test accuracy {100 * entry['test_accuracy']:.2f} % in {metrics}"
        if same
        else "no test accuracy recorded for it"
    )
    smoke = "; a smoke-test model (2,000 training images): train a real one with "
    note = f"{smoke}`{errors.run_all()}`" if profile == "quick" else ""
    where = f", profile {profile}" if profile in PROFILES else ""
    return model, f"model: {path} (run {config.name}{where}, {score}{note})"


PROBE_IMAGES = 500
"""MNIST test digits a model is probed on before it is used: a working model reads nearly all."""
USABLE = 0.5
"""Below this accuracy on the probe a model is flagged (chance is 0.1)."""


def probe_accuracy(model: nn.Module) -> float | None:
    """The model's accuracy on the first :data:`PROBE_IMAGES` MNIST test digits (None when the data
    cannot be prepared)."""
    try:
        test = data.load_split(False)
    except errors.MnistError:
        return None
    images, labels = test.images[:PROBE_IMAGES], test.labels[:PROBE_IMAGES]
    return (predict_log_probs(model, images).argmax(1) == labels).double().mean().item()


def sanity_warning(model: nn.Module) -> str | None:
    """Why the model's answers mean nothing (untrained, or damaged weights), or None."""
    accuracy = probe_accuracy(model)
    if accuracy is None or accuracy >= USABLE:
        return None
    return (
        f"the model reads only {100 * accuracy:.0f} % of {PROBE_IMAGES} MNIST test digits right "
        f"(chance is 10 %): it is untrained or its weights are damaged; retrain it with "
        f"`{errors.run_all()}`."
    )


def checkpoint_argument(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint PATH``: the model to use instead of :func:`default_checkpoint`."""
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="checkpoint to use (default: the model chosen on validation, named in the output)",
    )
