"""The notebooks are committed clean, numbered, parameterised for papermill and tagged for nbval."""
from __future__ import annotations

import json
import re

import pytest

from mnist_utils import paths

NOTEBOOKS = sorted((paths.ROOT / "notebooks").glob("*.ipynb"))


def test_the_numbered_story_is_there():
    names = [nb.name for nb in NOTEBOOKS]
    assert all(re.fullmatch(r"\d\d_[a-z_]+\.ipynb", n) for n in names), names
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(1, len(names) + 1)]
    assert len(names) >= 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, f"{path.name}: strip outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_a_papermill_parameters_cell_reading_the_profile(path):
    nb = json.loads(path.read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: exactly one cell tagged 'parameters'"
    assert "profile = config.profile_from_env()" in "".join(tagged[0]["source"])
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


def test_deterministic_facts_are_checked_by_nbval():
    checked = {p.name: ["".join(c["source"]) for c in json.loads(p.read_text())["cells"]
                        if "nbval-check-output" in c.get("metadata", {}).get("tags", [])] for p in NOTEBOOKS}
    assert any("streaming_mean_std" in s for s in checked["01_data_exploration.ipynb"])
    assert any("count_parameters" in s for s in checked["03_model.ipynb"])
