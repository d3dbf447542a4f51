"""`python -m mnist_tools notebook NOTEBOOK`: run one course notebook with papermill into
``executed/<profile>/``; one line on success, one naming the failure otherwise.

The kernel is started with CurveZMQ keys, so its traffic is encrypted and ipykernel has no "running
over TCP without encryption" warning to print.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import IO

from jupyter_client.manager import AsyncKernelManager

from mnist_utils import paths
from mnist_utils.config import ALLOCATOR, PROFILES

from .machine import commit, cpu_name

EXECUTED = paths.ROOT / "executed"


class EncryptedKernelManager(AsyncKernelManager):
    """A kernel manager that gives every kernel CurveZMQ keys, the environment ``kernel_env`` on
    top of this process's own (which is left unchanged), and ``kernel_log`` as its stderr: the
    kernel's own log lines (a traceback when Ctrl-C stops it mid-reply) stay off the terminal."""

    kernel_env: dict[str, str] = {}
    kernel_log: IO | None = None

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("transport_encryption", "auto")
        super().__init__(**kwargs)

    async def _async_pre_start_kernel(self, **kw):
        kw["env"] = {**os.environ, **kw.get("env", {}), **self.kernel_env}
        if self.kernel_log is not None:
            kw.setdefault("stderr", self.kernel_log)
        return await super()._async_pre_start_kernel(**kw)


def kernel_env(profile: str) -> dict[str, str]:
    """What a course notebook's kernel runs with: the profile, no progress bars (an executed copy
    keeps each long cell's summary), and the training processes' allocator setting."""
    return {
        "MNIST_PROFILE": profile,
        "MNIST_PROGRESS": os.environ.get("MNIST_PROGRESS", "0"),
        "GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES") or ALLOCATOR,
    }


def executed_copy(notebook: Path, profile: str, out_dir: Path = EXECUTED) -> Path:
    """Where ``notebook``'s executed copy for ``profile`` goes: each profile has its own."""
    return out_dir / profile / notebook.name


def execute(
    notebook: Path, profile: str, kernel: str = "python3", out_dir: Path = EXECUTED
) -> Path:
    """Run ``notebook`` with parameter ``profile``; return its executed copy."""
    import papermill

    out = executed_copy(notebook, profile, out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    code, log_path = commit(), kernel_log_path(out)
    with log_path.open("w") as log:
        settings = {"kernel_env": kernel_env(profile), "kernel_log": log}
        manager = type("KernelManager", (EncryptedKernelManager,), settings)
        try:
            papermill.execute_notebook(
                str(notebook),
                str(out),
                parameters={"profile": profile},
                kernel_name=kernel,
                cwd=str(notebook.parent),
                progress_bar=False,
                kernel_manager_class=manager,
            )
        finally:
            stamp(out, code)
            if log_path.stat().st_size == 0:  # a quiet kernel leaves no log
                log_path.unlink()
    return out


def kernel_log_path(copy: Path) -> Path:
    """Where the kernel that runs an executed copy writes its own log (its stderr)."""
    return copy.with_suffix(".kernel.log")


def stamp(copy: Path, code: str) -> None:
    """Record in an executed copy the commit of the code that ran it."""
    if copy.is_file():
        nb = json.loads(copy.read_text())
        nb["metadata"]["mnist"] = {"commit": code}
        paths.atomic_write(copy, lambda tmp: tmp.write_text(json.dumps(nb, indent=1) + "\n"))


def record_provenance(notebook: Path, profile: str, code: str, seconds: float) -> None:
    """Note in ``artifacts/runs/<profile>/provenance.json`` which commit ran ``notebook``, when, on
    which CPU, and how long it took: the report names the source of every number."""
    from datetime import UTC, datetime

    from mnist_utils.runs import read_json, write_json

    path = paths.profile_dir(profile) / "provenance.json"
    entry = {
        "commit": code,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_name(),
        "cores": len(os.sched_getaffinity(0)),
        "seconds": round(seconds),
    }
    write_json(path, read_json(path, {}) | {notebook.stem: entry})


def last_error_line(exc: BaseException) -> str:
    """The line of a failed cell's traceback that says what went wrong (``ename: evalue``),
    uncoloured."""
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    text = re.sub(r"\x1b\[[0-9;]*m", "", f"{ename}: {evalue}")
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Run one notebook; print ``name profile N s`` or one ``FAILED`` line (exit 1)."""
    parser = argparse.ArgumentParser(prog="python -m mnist_tools notebook", description=__doc__)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--out", type=Path, default=EXECUTED, help="folder of executed copies")
    parser.add_argument("--profile", default="default", choices=PROFILES)
    parser.add_argument("--kernel", default="python3")
    args = parser.parse_args(argv)
    if not args.notebook.is_file():
        parser.error(f"no notebook {args.notebook} (the course is notebooks/NN_*.ipynb)")
    logging.getLogger("papermill").setLevel(logging.ERROR)
    start = time.perf_counter()
    try:
        execute(args.notebook, args.profile, args.kernel, args.out)
    except Exception as exc:  # a failed cell: its error line, and where its traceback is
        copy = executed_copy(args.notebook, args.profile, args.out)
        log = kernel_log_path(copy)
        where = f" (the whole traceback: {copy})" if copy.is_file() else ""
        if not where and log.is_file() and log.stat().st_size:
            where = f" (the kernel's log: {log})"
        print(
            f"FAILED in {args.notebook.name} (profile {args.profile}): "
            f"{last_error_line(exc)}{where}",
            file=sys.stderr,
        )
        return 1
    seconds = time.perf_counter() - start
    record_provenance(args.notebook, args.profile, commit(), seconds)
    print(f"{args.notebook.stem:<28} profile {args.profile:<8} {seconds:6.0f} s")
    return 0
