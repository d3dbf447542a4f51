"""The committed snapshot (snapshot/) shows the code that is in notebooks/ now, with a stamp saying
where it ran."""

from __future__ import annotations

import json

import pytest

from mnist_tools import snapshot

NOTEBOOKS = snapshot.course()


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_snapshot_shows_the_code_of_the_course(notebook):
    copy = snapshot.SNAPSHOT / notebook.name
    assert copy.is_file(), f"{copy} is missing: make run-all && make report && make snapshot"
    assert snapshot.code_cells(copy) == snapshot.code_cells(notebook), (
        f"snapshot/{notebook.name} shows other code than notebooks/{notebook.name}: "
        "make run-all && make report && make snapshot"
    )
    outputs = [
        c["outputs"] for c in json.loads(copy.read_text())["cells"] if c["cell_type"] == "code"
    ]
    assert any(outputs), f"snapshot/{notebook.name} has no outputs"


def test_snapshot_is_stamped_small_and_has_the_report():
    info = json.loads((snapshot.SNAPSHOT / "stamp.json").read_text())
    assert (
        info["profile"] == "default" and info["sgemm_gflops"] > 0 and info["cpu"] and info["commit"]
    )
    assert (snapshot.SNAPSHOT / "report.pdf").read_bytes()[:5] == b"%PDF-"
    assert sum(p.stat().st_size for p in snapshot.SNAPSHOT.iterdir()) <= snapshot.MAX_BYTES
    index = (snapshot.SNAPSHOT / "README.md").read_text()
    assert all(f"({nb.name})" in index for nb in NOTEBOOKS) and "(report.pdf)" in index
    assert set(info["notebooks"]) == {nb.name for nb in NOTEBOOKS}, "each file's commit"


def test_a_stale_or_foreign_run_is_refused(tmp_path):
    for notebook in NOTEBOOKS:
        nb = json.loads(notebook.read_text())
        nb["metadata"]["papermill"] = {"parameters": {"profile": "default"}}
        (tmp_path / notebook.name).write_text(json.dumps(nb))
    assert len(snapshot.check_executed(tmp_path)) == len(NOTEBOOKS)
    nb["cells"].append({"cell_type": "code", "metadata": {}, "source": ["x = 1\n"], "outputs": []})
    (tmp_path / notebook.name).write_text(json.dumps(nb))
    with pytest.raises(snapshot.SnapshotError, match="older code"):
        snapshot.check_executed(tmp_path)
    nb = json.loads(notebook.read_text()) | {
        "metadata": {"papermill": {"parameters": {"profile": "quick"}}}
    }
    (tmp_path / notebook.name).write_text(json.dumps(nb))
    with pytest.raises(snapshot.SnapshotError, match="profile 'quick'"):
        snapshot.check_executed(tmp_path)


def test_a_notebook_that_stopped_at_an_error_is_never_published(tmp_path):
    for notebook in NOTEBOOKS:
        nb = json.loads(notebook.read_text())
        nb["metadata"]["papermill"] = {"parameters": {"profile": "default"}, "exception": None}
        nb["metadata"]["mnist"] = {"commit": "abc1234"}
        (tmp_path / notebook.name).write_text(json.dumps(nb))
    found = snapshot.check_executed(tmp_path)
    info = snapshot.stamp(100.0, found)
    assert set(info["notebooks"].values()) == {"abc1234"}
    assert "run at `abc1234`" in snapshot.index(info, found)
    nb["metadata"]["papermill"]["exception"] = True  # papermill's flag: a cell raised
    (tmp_path / notebook.name).write_text(json.dumps(nb))
    with pytest.raises(snapshot.SnapshotError, match="stopped at an error"):
        snapshot.check_executed(tmp_path)
