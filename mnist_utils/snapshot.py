"""`make snapshot`: copy a finished default run's executed notebooks and report into ``snapshot/``.

The copy is stamped. The snapshot is what a reader sees on GitHub without running anything. It is
refreshed only from a complete ``make run-all`` (default profile) and ``make report`` of the code
that is in ``notebooks/`` now: ``tests/test_snapshot.py`` fails when a notebook's code differs from
its snapshot's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from . import paths

SNAPSHOT = paths.ROOT / "snapshot"
EXECUTED = paths.ROOT / "executed"
MAX_BYTES = 8 * 2**20
"""The snapshot's size limit: what a reader's browser and the repository's history carry
comfortably."""
PROFILE = "default"


class SnapshotError(RuntimeError):
    """The executed run cannot be snapshotted; the message says why and what to run."""


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


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the platform's processor string."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def commit() -> str:
    """The checkout's commit (short hash), with ``+changes`` if the working tree differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=paths.ROOT, capture_output=True, text=True
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git(
        "status", "--porcelain", "--untracked-files=no", "--", "notebooks", "mnist_utils", "report"
    )
    return head + ("+changes" if dirty else "")


def check_executed(executed: Path) -> list[Path]:
    """Executed copies of every course notebook, each from the default profile and today's code."""
    found = []
    for notebook in course():
        copy = executed / notebook.name
        if not copy.is_file():
            raise SnapshotError(f"{copy} is missing: run `make run-all` first")
        params = json.loads(copy.read_text())["metadata"].get("papermill", {}).get("parameters", {})
        if params.get("profile") != PROFILE:
            raise SnapshotError(
                f"{copy} ran with profile {params.get('profile')!r}, not {PROFILE!r}: "
                f"run `make run-all` (default profile) first"
            )
        if code_cells(copy) != code_cells(notebook):
            raise SnapshotError(
                f"{copy} ran older code than {notebook.relative_to(paths.ROOT)}: "
                f"run `make nb/{notebook.stem}` (or `make run-all`) first"
            )
        found.append(copy)
    return found


def stamp(sgemm_gflops: float) -> dict:
    """Where and when the snapshot's outputs were made."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_name(),
        "cores": len(os.sched_getaffinity(0)),
        "sgemm_gflops": round(sgemm_gflops),
        "commit": commit(),
        "profile": PROFILE,
    }


def index(info: dict, notebooks: list[Path]) -> str:
    """``snapshot/README.md``: the stamp and a link to each notebook and the PDF."""
    lines = [
        "# The course, executed",
        "",
        f"Outputs of `make run-all` and `make report` (profile `{info['profile']}`), made "
        f"{info['date']} at commit `{info['commit']}` on {info['cores']} cores of an {info['cpu']} "
        f"(sgemm {info['sgemm_gflops']} GFLOP/s). `make snapshot` refreshes this folder.",
        "",
        "- [The report (PDF)](report.pdf)",
    ]
    lines += [f"- [{nb.stem}]({nb.name})" for nb in notebooks]
    return "\n".join(lines) + "\n"


def make_snapshot(executed: Path = EXECUTED, pdf: Path | None = None, out: Path = SNAPSHOT) -> Path:
    """Replace ``out`` by the executed notebooks, PDF and stamp; refuse a stale or partial run."""
    from .bench import sgemm_gflops

    pdf = pdf or paths.report_dir() / "report.pdf"
    notebooks = check_executed(executed)
    if not pdf.is_file():
        raise SnapshotError(f"{pdf} is missing: run `make report` first")
    size = sum(p.stat().st_size for p in [*notebooks, pdf])
    if size > MAX_BYTES:
        raise SnapshotError(
            f"the snapshot would be {size / 2**20:.1f} MB, over {MAX_BYTES / 2**20:.0f} MB: "
            f"make the figures smaller"
        )
    info = stamp(statistics.median(sgemm_gflops() for _ in range(3)))  # as make bench does
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
    """Write ``snapshot/``; one line naming the problem (exit 1) when the run is stale or
    incomplete."""
    argparse.ArgumentParser(
        prog="python -m mnist_utils.snapshot", description=__doc__.splitlines()[0]
    ).parse_args(argv)
    try:
        out = make_snapshot()
    except SnapshotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in out.iterdir())
    print(
        f"snapshot/ written: {len(list(out.glob('*.ipynb')))} notebooks and the PDF, "
        f"{size / 2**20:.1f} MB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
