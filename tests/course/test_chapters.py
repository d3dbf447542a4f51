"""Every notebook ends like a chapter: a summary computed from the run, at least five exercises with
worked solutions, and the references it uses — the same works as the report's bibliography."""

from __future__ import annotations

import json
import re

import pytest

from mnist_utils import paths

NOTEBOOKS = sorted((paths.ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
BIB = paths.ROOT / "report" / "references.bib"


def cells(path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_ends_with_summary_exercises_solutions_and_references(path):
    text = [source(c) for c in cells(path)]
    headings = [t.splitlines()[0] for t in text if t.startswith("## ")]
    end = ["## Summary", "## Exercises", "## Solutions", "## References"]
    assert [h for h in headings if h in end] == end, headings
    summary = next(i for i, t in enumerate(text) if t.startswith("## Summary"))
    assert cells(path)[summary + 1]["cell_type"] == "code", "its numbers come from the run"
    exercises = next(t for t in text if t.startswith("## Exercises"))
    numbered = re.findall(r"^(\d+)\. \*\((think|code)", exercises, re.M)
    assert len(numbered) >= 5 and [int(n) for n, _ in numbered] == list(range(1, len(numbered) + 1))
    assert any(kind == "code" for _, kind in numbered) and any(k == "think" for _, k in numbered)
    solutions = next(t for t in text if t.startswith("## Solutions"))
    assert "<details>" in solutions and "</details>" in solutions
    answered = re.findall(r"^\*\*(\d+)\.\*\*", solutions, re.M)
    assert [int(n) for n in answered] == list(range(1, len(numbered) + 1)), "a solution for each"


def test_every_work_a_notebook_cites_is_in_the_reports_bibliography():
    keys = set(re.findall(r"@\w+\{([^,]+),", BIB.read_text()))
    for path in NOTEBOOKS:
        references = next(source(c) for c in cells(path) if source(c).startswith("## References"))
        cited = re.findall(r"^- \[([\w-]+)\]", references, re.M)
        assert cited and set(cited) <= keys, (path.name, set(cited) - keys)
