"""A notebook's run belongs to the code and settings that trained it: an edit trains afresh, the old
run is kept.

Notebook 04 trains its run with lesson functions a student may change (the loop, ``train_epoch``,
``evaluate``), a model, an optimizer and a config. :func:`run_folder` compares a fingerprint of all
of them with the one stored beside the checkpoint: the same run resumes (or is reused when
finished); a different one is moved aside to ``<name>@<its digest>`` — never deleted — and the
edited run starts afresh in ``<name>/``. Undo the edit and the earlier run comes back.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable
from pathlib import Path

from torch import nn

from . import errors, paths
from .config import RunConfig

LESSON_FILE = "lesson.json"
"""Beside a notebook run's checkpoint: the fingerprint that trained it and its digest."""


def fingerprint(config: RunConfig, model: nn.Module, optimizer, functions: list[Callable]) -> dict:
    """What defines a notebook's run: its config, the model's layers and device, the optimizer and
    its settings, the code of the lesson functions that train and score it (the loop included, so
    its seed, the arguments of its calls and every line of it count)."""
    settings = {
        k: v
        for k, v in optimizer.defaults.items()
        if isinstance(v, (bool, int, float, str, tuple, type(None)))
    }
    return {
        "config": config.to_dict(),
        "model": repr(model),
        "device": str(next(model.parameters()).device),
        "optimizer": {"type": type(optimizer).__name__, **settings},
        "code": {f.__name__: inspect.getsource(f) for f in functions},
    }


def digest(print_: dict) -> str:
    """A short, stable name for a fingerprint (12 hex digits of its SHA-256)."""
    return hashlib.sha256(json.dumps(print_, sort_keys=True, default=str).encode()).hexdigest()[:12]


def stored_digest(folder: Path) -> str | None:
    """The digest recorded in ``folder`` (None when it holds no notebook run)."""
    lesson = folder / LESSON_FILE
    if not lesson.is_file():
        return None
    try:
        found = json.loads(lesson.read_text())
        return str(found["digest"])
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise errors.MnistError(
            f"{lesson} is damaged ({type(exc).__name__}: {exc}); it was left as it is. Move the "
            f"run aside (`mv {folder} {folder}.bad`) and run the notebook again."
        ) from exc


def run_folder(config: RunConfig, profile: str, print_: dict) -> Path:
    """The folder that holds the run ``print_`` describes: ``artifacts/runs/<profile>/<name>/``. A
    run of other code or settings found there is moved to ``<name>@<its digest>`` (kept whole); a
    run of this fingerprint kept that way earlier is moved back, so undoing an edit reuses its
    run."""
    folder, key = paths.run_dir(config.name, profile), digest(print_)
    if folder.exists() and not folder.is_dir():
        raise errors.MnistError(
            f"{folder} is a file, not a run folder; move it aside (`mv {folder} {folder}.bad`) and "
            "run the notebook again."
        )
    present = stored_digest(folder)
    holds_a_run = present is not None or (folder / paths.CHECKPOINT).exists()
    if present != key and folder.exists() and holds_a_run:
        folder.rename(paths.unused_name(folder.with_name(f"{config.name}@{present or 'earlier'}")))
    earlier = folder.with_name(f"{config.name}@{key}")
    if not folder.exists() and earlier.is_dir():
        earlier.rename(folder)
    if stored_digest(folder) != key:
        paths.atomic_write(
            folder / LESSON_FILE,
            lambda tmp: tmp.write_text(
                json.dumps({"digest": key, **print_}, indent=1, default=str)
            ),
        )
    return folder
