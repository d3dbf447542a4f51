"""Notebook 04's exercises: each worked solution, applied as its Solutions section writes it, does
what the solution says."""

from __future__ import annotations

import json

import pytest
from notebook_edits import printed, run, unpublished

pytestmark = pytest.mark.slow
NB = "04_training.ipynb"
SGD = "    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)"
ADAM = "    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)"
UPDATES = """updates = math.ceil(len(data.train) / cfg.batch_size) * cfg.epochs
print(f"{updates:,} updates of Adam")"""
WIDE = """    "MLP, 1024 hidden units": nn.Sequential(
        nn.Flatten(), nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 10), nn.LogSoftmax(dim=1)
    ),"""
WARM_UP = '            optimizer.param_groups[0]["lr"] = cfg.lr * min(1.0, epoch / 2)'
LOOP = "        for epoch in run.epochs():\n"


def lesson(tmp_path) -> dict:
    """The quick profile's notebook-04 run: its fingerprint file."""
    return json.loads((tmp_path / "artifacts/runs/quick/reference/lesson.json").read_text())


def test_the_published_solutions_are_the_tested_ones():
    assert not unpublished(NB, SGD, UPDATES, WIDE, WARM_UP)


def test_sgd_trains_afresh_under_its_own_fingerprint(tmp_path):
    out = printed(run(NB, tmp_path, [(ADAM, SGD)]))
    assert "0/1 epochs done before" in out and lesson(tmp_path)["optimizer"]["type"] == "SGD"


def test_updates_a_wide_mlp_and_a_warm_up(tmp_path):
    baselines = '"MLP, 256 hidden units": nn.Sequential('
    edits = [(LOOP, LOOP + WARM_UP + "\n"), (baselines, WIDE.strip() + "\n    " + baselines)]
    out = printed(run(NB, tmp_path, edits, append=("import math\n" + UPDATES,)))
    assert "32 updates of Adam" in out  # 2,000 images in batches of 64, one epoch
    history = json.loads((tmp_path / "artifacts/runs/quick/reference/history.json").read_text())
    assert [row["lr"] for row in history] == [0.0005], "the warm-up's half rate, recorded"
    rows = json.loads((tmp_path / "artifacts/runs/quick/baselines.json").read_text())["rows"]
    wide = next(r for r in rows if r["model"] == "MLP, 1024 hidden units")
    assert wide["parameters"] == 784 * 1024 + 1024 + 1024 * 10 + 10
