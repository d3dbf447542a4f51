"""One named run end to end: load its data, train (or resume), test once, and record history and
metrics in artifacts/."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from filelock import FileLock, Timeout

from . import checkpoints, edits, errors, paths
from .config import RunConfig
from .data import Split, load_split
from .engine import evaluate, fit

VAL_SPLIT_SEED = 12345
"""The validation images are the same for every run, whatever its seed."""


@dataclass(frozen=True)
class RunData:
    """The three splits a run uses; ``val`` is None when nothing is held out."""

    train: Split
    val: Split | None
    test: Split


def load_run_data(
    config: RunConfig, train: Split | None = None, test: Split | None = None
) -> RunData:
    """Hold ``val_size`` training images out (fixed seed), then subsample train/test as the config
    asks."""
    train = train if train is not None else load_split(True)
    test = test if test is not None else load_split(False)
    val = None
    if config.val_size:
        train, val = train.split_off(config.val_size, seed=VAL_SPLIT_SEED)
    return RunData(
        train.subset(config.train_size, seed=config.seed), val, test_split_for(config, test)
    )


def test_split_for(config: RunConfig, test: Split | None = None) -> Split:
    """The test images a run is scored on (all 10,000 unless the config asks for a subset)."""
    return (test if test is not None else load_split(False)).subset(config.test_size, seed=0)


class ArtifactError(errors.MnistError):
    """An artifact file cannot be read or written (invalid JSON, a read-only or full folder)."""


def read_json(path: Path, default):
    """Parse a JSON file, or return ``default`` when it does not exist; an unreadable one raises
    :class:`ArtifactError`."""
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(
            f"{path} cannot be read as JSON ({exc}); it was left as it is. Move it aside "
            f"(`mv {path} {path}.bad`) and re-run: finished runs are reused from their checkpoints."
        ) from exc


def write_json(path: Path, obj) -> None:
    """Write JSON atomically (temporary name, then rename)."""
    paths.atomic_write(
        path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    )


MIN_FREE_BYTES = 100 * 2**20
"""Free space a run needs before it starts: two checkpoints (~5–15 MB each) and its history, with a
wide margin."""


def check_writable(folder: Path) -> None:
    """Create ``folder``, write a probe file and check free space, so a read-only or full disk fails
    before training."""
    fix = (
        "free some space or make it writable, or train elsewhere with "
        "`MNIST_ARTIFACTS_DIR=/some/writable/dir`"
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise ArtifactError(f"Cannot write to {folder} ({exc.strerror or exc}): {fix}.") from exc
    if free < MIN_FREE_BYTES:
        raise ArtifactError(
            f"Only {free / 2**20:.0f} MB free at {folder} (a run needs "
            f"{MIN_FREE_BYTES / 2**20:.0f} MB): {fix}."
        )


def read_metrics(profile: str) -> dict:
    """All recorded runs of ``profile``: ``{run name: metrics}``."""
    return read_json(paths.metrics_path(profile), {})


def record_metrics(name: str, entry: dict) -> None:
    """Add or replace one run's entry in the metrics.json of its profile; a portable file lock keeps
    a notebook and a study driver writing at the same time from dropping each other's entries."""
    path = paths.metrics_path(entry["profile"])
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_name(path.name + ".lock")):
        write_json(path, {**read_metrics(entry["profile"]), name: entry})


def own_checkpoint(config: RunConfig, profile: str) -> dict | None:
    """The run's checkpoint in artifacts/ (None when there is none); a
    :class:`checkpoints.RunConflictError` if another config wrote it."""
    path = paths.checkpoint_path(config.name, profile)
    return checkpoints.of_config(path, config) if path.is_file() else None


def finished(config: RunConfig, profile: str, metrics: dict | None = None) -> bool:
    """Whether artifacts/ holds the run complete: its metrics entry (written last) for this config,
    and its checkpoint."""
    entry = (read_metrics(profile) if metrics is None else metrics).get(config.name)
    return (
        entry is not None
        and RunConfig.from_dict(entry["config"]) == config
        and paths.checkpoint_path(config.name, profile).is_file()
    )


def adopt_run(source: RunConfig, target: RunConfig, profile: str) -> bool:
    """Record the finished run ``source`` as ``target`` when the two differ only in their name,
    which training never reads: its checkpoint, history and metrics entry under the new name. False
    (nothing written) otherwise, or when ``target`` has a checkpoint already."""
    metrics = read_metrics(profile)
    src, dst = paths.run_dir(source.name, profile), paths.run_dir(target.name, profile)
    same = target.replace(name=source.name) == source
    if not same or not finished(source, profile, metrics) or (dst / paths.CHECKPOINT).is_file():
        return False
    state = checkpoints.of_config(src / paths.CHECKPOINT, source)
    check_writable(dst)
    save_run(
        target,
        profile,
        dict(state, config=target.to_dict()),
        read_json(src / "history.json", []),
        dict(metrics[source.name], config=target.to_dict()),
    )
    return True


def save_run(
    config: RunConfig, profile: str, checkpoint: dict, history: list[dict], entry: dict
) -> None:
    """Write one finished run's artifacts, each file atomically; the metrics entry last, so a run
    counts only once it is whole."""
    checkpoints.save(paths.checkpoint_path(config.name, profile), checkpoint)
    write_json(paths.run_dir(config.name, profile) / "history.json", history)
    record_metrics(config.name, entry)


def fit_run(config: RunConfig, data: RunData, run_dir: Path, init: dict | None = None, **kw):
    """Train ``config`` on ``data.train``, checkpointed in ``run_dir``, and score it after its last
    epoch on its validation split (else the test split): the study reads no other score.
    ``init``: the weights a fine-tune starts from."""
    eval_split, eval_name = (data.val, "val") if data.val is not None else (data.test, "test")
    return fit(
        config,
        data.train,
        eval_split,
        eval_name=eval_name,
        run_dir=run_dir,
        init_weights=init,
        score_every_epoch=False,
        **kw,
    )


def train_run(
    config: RunConfig, profile: str, data: RunData | None = None, device=None, progress=None
) -> dict:
    """Train ``config`` in artifacts/ (resuming its own checkpoint), test it once, record and return
    its metrics."""
    run_dir = paths.run_dir(config.name, profile)
    check_writable(run_dir)  # a read-only or full disk fails now, not after the first epoch
    data = data if data is not None else load_run_data(config)
    # a fresh fine-tune starts from its parent's weights; its own checkpoint resumes it
    parent = paths.checkpoint_path(config.init_from, profile) if config.init_from else None
    fresh = not (run_dir / paths.CHECKPOINT).is_file()
    init = checkpoints.load(parent)["model"] if parent and fresh else None
    result = fit_run(config, data, run_dir, init, device=device, progress=progress)
    return record_run(config, profile, result.model, result.history, data)


def score(config: RunConfig, profile: str, model, history: list[dict], data: RunData) -> dict:
    """A finished run's metrics entry: its test images scored once, its validation accuracy, time
    and setting."""
    test = evaluate(model, data.test, config.precision)
    entry = {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "epochs": config.epochs,
        "seed": config.seed,
        "train_seconds": sum(row["epoch_seconds"] for row in history),
        "profile": profile,
        "train_images": len(data.train),
        "test_images": len(data.test),
        "device": str(next(model.parameters()).device),
        "threads": torch.get_num_threads(),
        "config": config.to_dict(),
    }
    if data.val is not None:
        entry["val_accuracy"] = history[-1]["val_accuracy"]
    return entry


def record_run(config: RunConfig, profile: str, model, history: list[dict], data: RunData) -> dict:
    """Score a finished run once; write its history.json and its entry in metrics.json, with the
    fingerprint of the notebook code that trained it, if any (notebook 04)."""
    entry = score(config, profile, model, history, data)
    if (lesson := edits.stored_digest(paths.run_dir(config.name, profile))) is not None:
        entry["lesson"] = lesson
    write_json(paths.run_dir(config.name, profile) / "history.json", history)
    record_metrics(config.name, entry)
    return entry


class LessonRun:
    """Notebook 04's run behind one ``with``: the run folder of the code's fingerprint (an edited
    run trains afresh, the earlier one kept as ``<name>@<digest>``), locked against a second run in
    the same folder; resumed from its checkpoint; a checkpoint after every epoch; scored and
    recorded at the end. ``for epoch in run.epochs()`` runs the epochs not done yet."""

    def __init__(self, config, profile, model, optimizer, g, code, data: RunData):
        self.config, self.profile, self.data = config, profile, data
        self.model, self.optimizer, self.g = model, optimizer, g
        self.print = edits.fingerprint(config, model, optimizer, code)
        self.digest, self.history, self.entry = edits.digest(self.print), [], None
        lock = paths.profile_dir(profile) / f".{config.name}.lock"
        check_writable(lock.parent)
        self.lock = FileLock(lock, timeout=0)

    def __enter__(self) -> LessonRun:
        try:
            self.lock.acquire()
        except Timeout:
            folder = Path(self.lock.lock_file).parent
            raise ArtifactError(
                f"another run of {self.config.name!r} is training in {folder} right now; wait for "
                "it to finish, or train elsewhere with `MNIST_ARTIFACTS_DIR=/some/dir`."
            ) from None
        try:
            self.checkpoint = (
                edits.run_folder(self.config, self.profile, self.print) / "checkpoint.pt"
            )
            self.history = checkpoints.resume(
                self.checkpoint, self.config, self.model, self.optimizer, self.g
            )
        except BaseException:
            self.lock.release()
            raise
        done = f"{len(self.history)}/{self.config.epochs} epochs"  # "0/1 epochs": read as a ratio
        print(f"run {self.config.name}, fingerprint {self.digest}: {done} done before", flush=True)
        return self

    def epochs(self) -> range:
        """The epochs still to train."""
        return range(len(self.history) + 1, self.config.epochs + 1)

    def save(self, row: dict) -> None:
        """Add an epoch's row to the history and checkpoint the run."""
        self.history.append(row)
        state = checkpoints.training_state(
            self.config, self.history, self.model, self.optimizer, self.g
        )
        checkpoints.save(self.checkpoint, state)

    def __exit__(self, kind, error, traceback) -> None:
        try:
            if kind is None:
                self.entry = record_run(
                    self.config, self.profile, self.model, self.history, self.data
                )
        finally:
            self.lock.release()


def history(name: str, profile: str) -> list[dict]:
    """The per-epoch history written by :func:`train_run`."""
    path = paths.run_dir(name, profile) / "history.json"
    if not path.is_file():
        raise ArtifactError(
            f"No history for run {name!r} at {path}; run `{errors.run_all(profile)}`."
        )
    return read_json(path, [])
