"""This machine and checkout: measured arithmetic rates, the CPU's name and the commit, which
every timing and result stands beside."""

from __future__ import annotations

import multiprocessing
import platform
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from mnist_utils import paths

if TYPE_CHECKING:  # torch is imported where a rate is measured: the notebook runner starts fast
    import torch


def gemm_gflops(dtype: torch.dtype | None = None, n: int = 1024, repeats: int = 20) -> float:
    """The measured rate (GFLOP/s) of an n×n matrix product in ``dtype`` (float32, the classic
    sgemm figure, by default) with the threads PyTorch uses."""
    import torch

    dtype = dtype or torch.float32
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    for _ in range(3):  # warm-up: kernels chosen, caches filled
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def sgemm_gflops() -> float:
    """The float32 matrix-multiply rate (GFLOP/s)."""
    return gemm_gflops()


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the platform's processor string."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def commit() -> str:
    """The checkout's commit (short hash), with ``+changes`` when the code differs from it."""

    def git(*args: str) -> str:
        run = subprocess.run(["git", *args], cwd=paths.ROOT, capture_output=True, text=True)
        return run.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    code = ("notebooks", "mnist_utils", "mnist_tools", "report")
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", *code)
    return head + ("+changes" if dirty else "")


def in_two_processes(fn: Callable, *args) -> list:
    """``fn(*args)`` in two fresh processes at once (both started before either runs): what two
    workers of the study measure side by side."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(abs, range(2)))  # both workers up (spawned, torch imported) first
        return [f.result() for f in [pool.submit(fn, *args) for _ in range(2)]]
