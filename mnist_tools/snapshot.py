"""`python -m mnist_tools snapshot`: copy a finished default run's executed notebooks and report
into ``snapshot/``.

The copy is stamped. The snapshot is what a reader sees on GitHub without running anything. It is
refreshed only from a complete ``make run-all`` (default profile) and ``make report`` of the code
that is in ``notebooks/`` now: ``tests/test_snapshot.py`` fails when a notebook's code differs from
its snapshot's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
from datetime import UTC, datetime
from pathlib import Path

from mnist_utils import errors, paths

from .machine import commit, cpu_name, sgemm_gflops
from .notebook import EXECUTED as EXECUTED_ROOT

SNAPSHOT = paths.ROOT / "snapshot"
MAX_BYTES = 8 * 2**20
"""The snapshot's size limit: what a reader's browser and the repository's history carry
comfortably."""
PROFILE = "default"


class SnapshotError(errors.MnistError):
    """The executed run cannot be snapshotted (missing, stale, failed or of another profile)."""


def code_cells(notebook: Path) -> list[str]:
    """The sources of a notebook's code cells, without the cell papermill injects for its
    parameters."""
    cells = json.loads(notebook.read_text())["cells"]
    return [
        "".join(c["source"])
        for c in cells
        if c["cell_type"] == "code"
        and "injected-parameters" not in c.get("metadata", {}).get("tags", [])
    ]


def course() -> list[Path]:
    """The course's notebooks, in order."""
    return sorted((paths.ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def run_of(copy: Path) -> dict:
    """What an executed copy says of its run: profile, whether a cell failed, the commit."""
    meta = json.loads(copy.read_text())["metadata"]
    papermill = meta.get("papermill", {})
    return {
        "profile": papermill.get("parameters", {}).get("profile"),
        "failed": bool(papermill.get("exception")),
        "commit": meta.get("mnist", {}).get("commit", "unknown"),
    }


def check_executed(executed: Path) -> list[Path]:
    """Executed copies of every course notebook, each from the default profile, finished without
    an error, and of today's code."""
    found = []
    for notebook in course():
        copy = executed / notebook.name
        if not copy.is_file():
            raise SnapshotError(f"{copy} is missing: run `{errors.run_all()}` first")
        run = run_of(copy)
        if run["profile"] != PROFILE:
            raise SnapshotError(
                f"{copy} ran with profile {run['profile']!r}, not {PROFILE!r}: run "
                f"`{errors.run_all()}` first"
            )
        if run["failed"]:
            raise SnapshotError(f"{copy} stopped at an error: fix it and run `{errors.run_all()}`")
        if code_cells(copy) != code_cells(notebook):
            raise SnapshotError(
                f"{copy} ran older code than {notebook.relative_to(paths.ROOT)}: "
                f"run `{errors.notebook(notebook.stem)}` (or `{errors.run_all()}`) first"
            )
        found.append(copy)
    return found


def stamp(sgemm_gflops: float, notebooks: list[Path]) -> dict:
    """Where and when the snapshot was taken, and the commit each executed notebook ran at."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_name(),
        "cores": len(os.sched_getaffinity(0)),
        "sgemm_gflops": round(sgemm_gflops),
        "commit": commit(),
        "profile": PROFILE,
        "notebooks": {nb.name: run_of(nb)["commit"] for nb in notebooks},
    }


def index(info: dict, notebooks: list[Path]) -> str:
    """``snapshot/README.md``: the stamp and a link to each notebook (with the commit it ran at)
    and the PDF."""
    lines = [
        "# The course, executed",
        "",
        f"Outputs of `make run-all` and `make report` (profile `{info['profile']}`), copied here "
        f"{info['date']} at commit `{info['commit']}` on {info['cores']} cores of an "
        f"{info['cpu']} (sgemm {info['sgemm_gflops']} GFLOP/s). `make snapshot` refreshes this "
        "folder; the report's front page names the commit and CPU of its runs.",
        "",
        "- [The report (PDF)](report.pdf)",
    ]
    ran = info.get("notebooks", {})
    lines += [f"- [{nb.stem}]({nb.name}), run at `{ran.get(nb.name, '?')}`" for nb in notebooks]
    return "\n".join(lines) + "\n"


def make_snapshot(
    executed: Path = EXECUTED_ROOT / PROFILE, pdf: Path | None = None, out: Path = SNAPSHOT
) -> Path:
    """Replace ``out`` by the executed notebooks, PDF and stamp; refuse a stale or partial run."""
    pdf = pdf or paths.report_dir() / "report.pdf"
    notebooks = check_executed(executed)
    if not pdf.is_file():
        raise SnapshotError(f"{pdf} is missing: run `{errors.REPORT}` first")
    size = sum(p.stat().st_size for p in [*notebooks, pdf])
    if size > MAX_BYTES:
        raise SnapshotError(
            f"the snapshot would be {size / 2**20:.1f} MB, over {MAX_BYTES / 2**20:.0f} MB: "
            f"make the figures smaller"
        )
    sgemm = statistics.median(sgemm_gflops() for _ in range(3))  # as make bench does
    info = stamp(sgemm, notebooks)
    staging = out.with_name(out.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for path in [*notebooks, pdf]:
        shutil.copy2(path, staging / path.name)
    (staging / "stamp.json").write_text(json.dumps(info, indent=1) + "\n")
    (staging / "README.md").write_text(index(info, notebooks))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return out


def main(argv: list[str] | None = None) -> int:
    """Write ``snapshot/``."""
    argparse.ArgumentParser(prog="python -m mnist_tools snapshot", description=__doc__).parse_args(
        argv
    )
    out = make_snapshot()
    size = sum(p.stat().st_size for p in out.iterdir())
    notebooks = len(list(out.glob("*.ipynb")))
    print(f"snapshot/ written: {notebooks} notebooks and the PDF, {size / 2**20:.1f} MB")
    return 0
