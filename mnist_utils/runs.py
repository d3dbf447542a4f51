"""One named run end to end: load its data, train (or resume), test once, and record history and metrics in artifacts/."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from . import paths
from .config import RunConfig
from .data import Split, load_split
from .engine import CHECKPOINT, evaluate, fit, load_checkpoint

VAL_SPLIT_SEED = 12345
"""The validation images are the same for every run, whatever its seed."""


@dataclass(frozen=True)
class RunData:
    """The three splits a run uses; ``val`` is None when nothing is held out."""

    train: Split
    val: Split | None
    test: Split


def load_run_data(config: RunConfig, train: Split | None = None, test: Split | None = None) -> RunData:
    """Hold ``val_size`` training images out (fixed seed), then subsample train/test as the config asks."""
    train = train if train is not None else load_split(True)
    test = test if test is not None else load_split(False)
    val = None
    if config.val_size:
        train, val = train.split_off(config.val_size, seed=VAL_SPLIT_SEED)
    return RunData(train.subset(config.train_size, seed=config.seed), val, test_split_for(config, test))


def test_split_for(config: RunConfig, test: Split | None = None) -> Split:
    """The test images a run is scored on (all 10,000 unless the config asks for a subset)."""
    return (test if test is not None else load_split(False)).subset(config.test_size, seed=0)


def read_json(path: Path, default):
    """Parse a JSON file, or return ``default`` when it does not exist."""
    return json.loads(path.read_text()) if path.is_file() else default


def write_json(path: Path, obj) -> None:
    """Write JSON atomically (temporary name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


class RunConflictError(RuntimeError):
    """A run name already holds a checkpoint of another config; nothing was overwritten."""


def read_metrics(profile: str) -> dict:
    """All recorded runs of ``profile``: ``{run name: metrics}``."""
    return read_json(paths.metrics_path(profile), {})


def record_metrics(name: str, entry: dict) -> None:
    """Add or replace one run's entry in the metrics.json of its profile (one writer: a study's driver writes alone)."""
    write_json(paths.metrics_path(entry["profile"]), {**read_metrics(entry["profile"]), name: entry})


def own_checkpoint(config: RunConfig, profile: str) -> dict | None:
    """The run's checkpoint in artifacts/ (None when there is none); :class:`RunConflictError` if another config wrote it."""
    run_dir = paths.run_dir(config.name, profile)
    if not (run_dir / CHECKPOINT).is_file():
        return None
    state = load_checkpoint(run_dir / CHECKPOINT)
    if RunConfig.from_dict(state["config"]) != config:
        raise RunConflictError(
            f"{run_dir / CHECKPOINT} holds a run {config.name!r} of another config; it was kept. To replace it: "
            f"`rm -r {run_dir}`, or train into another folder: `MNIST_ARTIFACTS_DIR=/some/dir ...`.")
    return state


def train_run(config: RunConfig, profile: str, data: RunData | None = None, device=None, progress: bool | None = None) -> dict:
    """Train ``config`` (resuming a checkpoint of the same config), test it once, record and return its metrics."""
    data = data if data is not None else load_run_data(config)
    run_dir = paths.run_dir(config.name, profile)
    fresh = own_checkpoint(config, profile) is None  # a run with its own checkpoint resumes: its parent is not needed
    eval_split, eval_name = (data.val, "val") if data.val is not None else (data.test, "test")
    init = load_checkpoint(paths.run_dir(config.init_from, profile) / CHECKPOINT)["model"] if config.init_from and fresh else None
    result = fit(config, data.train, eval_split, eval_name=eval_name, run_dir=run_dir, device=device, progress=progress,
                 init_weights=init)
    test = evaluate(result.model, data.test)
    entry = {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "epochs": config.epochs,
        "seed": config.seed,
        "train_seconds": result.train_seconds,
        "profile": profile,
        "train_images": len(data.train),
        "test_images": len(data.test),
        "device": str(next(result.model.parameters()).device),
        "threads": torch.get_num_threads(),
        "config": config.to_dict(),
    }
    if data.val is not None:
        entry["val_accuracy"] = result.history[-1]["val_accuracy"]
    write_json(run_dir / "history.json", result.history)
    record_metrics(config.name, entry)
    return entry


def history(name: str, profile: str) -> list[dict]:
    """The per-epoch history written by :func:`train_run`."""
    path = paths.run_dir(name, profile) / "history.json"
    if not path.is_file():
        raise FileNotFoundError(f"No history for run {name!r} at {path}; run notebooks/04_training.ipynb (or `make run-all`).")
    return read_json(path, [])
