"""Run bookkeeping: no run destroys another's results, metrics.json stays whole, and errors are one
line before training."""

from __future__ import annotations

import multiprocessing
import shutil

import pytest

from mnist_tools.__main__ import main as cli_main
from mnist_utils import checkpoints, paths, runs
from mnist_utils.config import RunConfig, for_profile


def _write_entries(worker: int, count: int) -> None:
    for i in range(count):
        runs.record_metrics(
            f"w{worker}-run{i}", {"test_accuracy": i / count, "worker": worker, "profile": "quick"}
        )


def test_parallel_workers_never_drop_each_others_entries(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path))
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_write_entries, args=(w, 40)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=60)
        assert p.exitcode == 0
    metrics = runs.read_metrics("quick")
    assert len(metrics) == 4 * 40
    assert metrics["w3-run39"] == {"test_accuracy": 39 / 40, "worker": 3, "profile": "quick"}


SMALL = RunConfig(name="reference", epochs=1, train_size=640, seed=3)


@pytest.fixture
def small_data(train_split, test_split):
    """640 training and 500 test images: a run of seconds."""
    return runs.RunData(train_split.subset(640, seed=3), None, test_split.subset(500))


@pytest.mark.slow
def test_a_quick_run_never_replaces_a_default_run_and_a_differing_config_is_refused(
    tmp_path, monkeypatch, small_data
):
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path))
    runs.train_run(SMALL, "default", data=small_data, device="cpu")
    default_ckpt = paths.run_dir("reference", "default") / paths.CHECKPOINT
    before = default_ckpt.read_bytes()
    # what notebook 04 does under quick
    runs.train_run(for_profile(SMALL, "quick"), "quick", data=small_data, device="cpu")
    assert default_ckpt.read_bytes() == before
    assert (paths.run_dir("reference", "quick") / paths.CHECKPOINT).is_file()
    assert set(runs.read_metrics("default")) == set(runs.read_metrics("quick")) == {"reference"}
    with pytest.raises(
        checkpoints.RunConflictError,
        match=r"another config; it was kept.*rm -r .*MNIST_ARTIFACTS_DIR",
    ) as info:
        runs.train_run(SMALL.replace(lr=0.01), "default", data=small_data, device="cpu")
    assert "\n" not in str(info.value) and default_ckpt.read_bytes() == before


def test_train_cli_refuses_a_differing_config_in_one_line(
    tmp_path, monkeypatch, capsys, tiny_checkpoint
):
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path))
    # holds another config (the tiny run)
    taken = paths.run_dir("no_aug-seed0", "quick") / paths.CHECKPOINT
    taken.parent.mkdir(parents=True)
    taken.write_bytes(tiny_checkpoint.read_bytes())
    assert cli_main(["train", "--profile", "quick", "no_aug", "--seeds", "0"]) == 1
    out, err = capsys.readouterr()
    # the study names the run
    reported = [line for line in out.splitlines() if line.startswith("  FAILED no_aug-seed0:")]
    assert len(reported) == 1 and "Traceback" not in out + err
    assert "rm -r" in reported[0] and str(taken.parent) in reported[0]
    assert taken.read_bytes() == tiny_checkpoint.read_bytes()


def test_unwritable_or_full_artifacts_dir_fails_before_training(tmp_path, monkeypatch, small_data):
    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(runs, "fit", no_training)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    # cannot be created: read-only for everyone
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(blocker / "artifacts"))
    with pytest.raises(runs.ArtifactError, match="Cannot write to .*MNIST_ARTIFACTS_DIR"):
        runs.train_run(SMALL, "default", data=small_data)
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setattr(
        runs.shutil,
        "disk_usage",
        lambda folder: shutil._ntuple_diskusage(10**9, 10**9 - 2**20, 2**20),
    )
    with pytest.raises(runs.ArtifactError, match="Only 1 MB free"):
        runs.train_run(SMALL, "default", data=small_data)


def test_unknown_device_in_the_train_cli_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path))
    monkeypatch.setenv("MNIST_DEVICE", "gpu")
    assert cli_main(["train", "--profile", "quick", "no_aug", "--seeds", "0"]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("error: unknown device 'gpu'")
        and err.count("\n") == 1
        and "use cpu, cuda" in err
    )


@pytest.mark.parametrize("content", ["", '{"reference": {"test_acc'])
def test_empty_or_truncated_metrics_json_is_one_line_naming_the_file_and_the_fix(
    tmp_path, monkeypatch, capsys, content
):
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path))
    path = paths.metrics_path("default")
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(
        runs.ArtifactError, match=f"{path} cannot be read as JSON.*mv {path} {path}.bad"
    ):
        runs.read_metrics("default")
    with pytest.raises(runs.ArtifactError):
        runs.record_metrics("x", {"profile": "default"})  # never overwrites what it could not read
    assert path.read_text() == content
    assert cli_main(["predict", "some.png"]) == 1  # the default model is chosen from metrics.json
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and str(path) in err


def test_adopt_run_records_a_finished_run_under_a_name_that_is_all_it_changes(
    tmp_path, monkeypatch, small_data
):
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path))
    source, target = SMALL.replace(name="search_base-seed3"), SMALL.replace(name="improved-seed3")
    assert not runs.adopt_run(source, target, "quick")  # nothing finished yet
    entry = runs.train_run(source, "quick", data=small_data, progress=False)
    # another recipe: trained, not adopted
    assert not runs.adopt_run(source, target.replace(lr=2e-3), "quick")
    assert not (paths.run_dir(target.name, "quick") / paths.CHECKPOINT).exists()
    assert runs.adopt_run(source, target, "quick")
    adopted = runs.read_metrics("quick")[target.name]
    assert adopted == dict(entry, config=target.to_dict())
    assert runs.history(target.name, "quick") == runs.history(source.name, "quick")
    # finished: resumed, not retrained
    assert runs.train_run(target, "quick", data=small_data, progress=False) == adopted
    assert not runs.adopt_run(source, target, "quick")  # never over a checkpoint of its own
