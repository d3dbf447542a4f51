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
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, (
                f"{path.name}: strip outputs"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_a_papermill_parameters_cell_reading_the_profile(path):
    nb = json.loads(path.read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: exactly one cell tagged 'parameters'"
    assert "profile = config.profile_from_env()" in "".join(tagged[0]["source"])
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


MUTATIONS = [
    (
        "01_data_exploration.ipynb",
        "s2 += (x * x).sum()",
        "s2 += (x * x).sum() * 1.001",
        "the constants of the reference recipe",
    ),
    (
        "02_augmentation.ipynb",
        "return (rotate @ resized_crop @ translate)[:, :2]",
        "return (translate @ resized_crop @ rotate)[:, :2]",
        "the package composes the same matrices",
    ),
    (
        "02_augmentation.ipynb",
        "p = augment.sample_params(len(x), g)\ntheta",
        "p = {k: v[:1].repeat(len(x), *[1] * (v.dim() - 1)) for k, v in "
        "augment.sample_params(len(x), g).items()}\n"
        "theta",
        "a fresh angle for every image",
    ),
    (
        "03_model.ipynb",
        "nn.Conv2d(1, 32, kernel_size=3, padding=1)",
        "nn.Conv2d(1, 32, kernel_size=3, padding=1, bias=False)",
        "AssertionError: 421610",
    ),
    (
        "04_training.ipynb",
        "loss = F.nll_loss(output, y)",
        "loss = 0 * F.nll_loss(output, y)",
        "far above chance",
    ),
]
"""(notebook, lesson line, a broken version of it, what the notebook's own check then says)."""


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, good, bad, message", MUTATIONS, ids=[f"{m[0][:2]}-{m[3][:20]}" for m in MUTATIONS]
)
def test_a_notebook_check_fails_when_its_fact_is_broken(name, good, bad, message, tmp_path):
    import nbformat
    from conftest import execute_quick
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(paths.ROOT / "notebooks" / name, as_version=4)
    sources = [c.source for c in nb.cells]
    assert sum(good in s for s in sources) == 1, (
        f"{name}: the line to break is no longer there; update MUTATIONS"
    )
    for cell in nb.cells:
        cell.source = cell.source.replace(good, bad)
    with pytest.raises(CellExecutionError) as failure:
        execute_quick(nb, tmp_path)
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(failure.value))  # the traceback is coloured
    assert "AssertionError" in text and message in text
