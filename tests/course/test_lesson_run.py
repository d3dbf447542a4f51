"""Notebook 04's run bookkeeping (runs.LessonRun): one run per folder at a time, filed under the
code that trained it, and one line for what a user can fix."""

from __future__ import annotations

import json

import pytest
import torch

from mnist_utils import edits, engine, errors, models, paths, runs
from mnist_utils.config import RunConfig

CFG = RunConfig(name="reference", epochs=1, train_size=256, test_size=256)


def lesson_run(data, code):
    torch.manual_seed(0)
    model = models.ReferenceCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=CFG.lr)
    g = torch.Generator().manual_seed(0)
    return runs.LessonRun(CFG, "quick", model, optimizer, g, code, data)


@pytest.fixture
def small(tmp_path, monkeypatch, train_split, test_split):
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path))
    return runs.RunData(train_split.subset(256), None, test_split.subset(256))


def train_a(x):
    return x + 1


def train_b(x):
    return x + 2  # an edited loop


def test_a_second_run_in_the_same_folder_is_refused_in_one_line(small):
    with lesson_run(small, [train_a]):
        with pytest.raises(
            runs.ArtifactError, match="another run of 'reference' is training"
        ) as err:
            with lesson_run(small, [train_a]):
                pass
        assert "\n" not in str(err.value)
    with lesson_run(small, [train_a]) as again:  # released when the first one ended
        assert list(again.epochs()) == [1]


def test_the_fingerprint_covers_the_loops_own_code_and_device():
    model = models.ReferenceCNN()
    optimizer = torch.optim.Adam(model.parameters())
    one = edits.fingerprint(CFG, model, optimizer, [train_a])
    assert edits.digest(one) != edits.digest(edits.fingerprint(CFG, model, optimizer, [train_b]))
    assert one["device"] == "cpu"


def test_a_damaged_lesson_file_is_one_line_naming_it(small):
    folder = paths.run_dir("reference", "quick")
    folder.mkdir(parents=True)
    for damage in ("{not json", "[1, 2]"):
        (folder / edits.LESSON_FILE).write_text(damage)
        with pytest.raises(errors.MnistError, match=f"{folder / edits.LESSON_FILE} is damaged"):
            with lesson_run(small, [train_a]):
                pass


def test_a_file_where_the_run_folder_goes_is_named_and_kept(small):
    blocker = paths.run_dir("reference", "quick")
    blocker.parent.mkdir(parents=True)
    blocker.write_text("mine")
    with pytest.raises(errors.MnistError, match="is a file, not a run folder"):
        with lesson_run(small, [train_a]):
            pass
    assert blocker.read_text() == "mine"


def test_an_artifacts_dir_that_is_a_file_is_one_line(
    tmp_path, monkeypatch, train_split, test_split
):
    blocker = tmp_path / "artifacts"
    blocker.write_text("")
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(blocker))
    data = runs.RunData(train_split.subset(64), None, test_split.subset(64))
    with pytest.raises(runs.ArtifactError, match="Cannot write to") as err:
        lesson_run(data, [train_a])
    assert "MNIST_ARTIFACTS_DIR" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("device", ["meta", "xpu", "nonsense"])
def test_a_device_the_course_cannot_train_on_is_one_line(device, monkeypatch):
    monkeypatch.setenv("MNIST_DEVICE", device)
    with pytest.raises(engine.DeviceError, match="use cpu, cuda, cuda:N or mps"):
        engine.select_device()


def test_a_finished_lesson_run_records_its_own_fingerprint(small):
    with lesson_run(small, [train_a]) as run:
        for epoch in run.epochs():
            run.save({"epoch": epoch, "train_loss": 1.0, "epoch_seconds": 0.0, "lr": 1e-3})
    assert run.entry["lesson"] == run.digest
    stored = json.loads((paths.run_dir("reference", "quick") / edits.LESSON_FILE).read_text())
    assert stored["digest"] == run.digest
