"""Run a course notebook as a student would after editing it: the edits made in the one code cell
that holds each, executed in the quick profile (nbclient, a private artifacts folder)."""

from __future__ import annotations

import re

import nbformat
from conftest import execute_quick

from mnist_utils import paths


def section(notebook: str, heading: str) -> str:
    """The markdown cell of ``notebook`` that holds ``heading`` (e.g. "## Try it")."""
    cells = nbformat.read(paths.ROOT / "notebooks" / notebook, as_version=4).cells
    return next(c.source for c in cells if c.cell_type == "markdown" and heading in c.source)


def prompts(notebook: str) -> str:
    """The notebook's "Try it" section."""
    return section(notebook, "## Try it")


def solutions(notebook: str) -> str:
    """The notebook's worked solutions, with their code as written (spaces kept)."""
    return section(notebook, "## Solutions")


def unpublished(notebook: str, *codes: str) -> list[str]:
    """The pieces of solution code a test applies that the notebook's Solutions section does not
    show verbatim: the published solution must be the tested one."""
    text = solutions(notebook)
    return [code for code in codes if code not in text]


def printed(outputs: list[str]) -> str:
    """Everything the executed code cells printed, ANSI colours removed."""
    return re.sub(r"\x1b\[[0-9;]*m", "", "".join(outputs))


def run(
    notebook: str, workdir, edits: list[tuple[str, str]] = (), append: tuple[str, ...] = ()
) -> list[str]:
    """Execute ``notebook`` with each (old, new) replacement made in the one code cell that has it,
    and the cells of ``append`` added at its end; return the printed text of its code cells."""
    nb = nbformat.read(paths.ROOT / "notebooks" / notebook, as_version=4)
    nb.cells += [nbformat.v4.new_code_cell(source) for source in append]
    code = [c for c in nb.cells if c.cell_type == "code"]
    for old, new in edits:
        assert sum(old in c.source for c in code) == 1, (
            f"{notebook}: {old!r} is not in one code cell"
        )
        for cell in code:
            cell.source = cell.source.replace(old, new)
    execute_quick(nb, workdir)
    return [
        "".join(o.get("text", "") for o in c.get("outputs", []))
        for c in nb.cells
        if c.cell_type == "code"
    ]
