"""Run one course notebook with papermill: one line on success, one naming the failure otherwise.

``python -m mnist_utils.run_notebook notebooks/04_training.ipynb executed/ --profile default`` is
what ``make nb/04_training`` runs. The kernel is started with CurveZMQ keys, so its traffic is
encrypted and ipykernel has no "running over TCP without encryption" warning to print.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager

from .config import PROFILES


class EncryptedKernelManager(AsyncKernelManager):
    """A kernel manager that gives every kernel CurveZMQ keys (ipykernel's spec declares curve
    support)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("transport_encryption", "auto")
        super().__init__(**kwargs)


def last_error_line(exc: BaseException) -> str:
    """The line of a failed cell's traceback that says what went wrong (``ename: evalue``),
    uncoloured."""
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    text = re.sub(r"\x1b\[[0-9;]*m", "", f"{ename}: {evalue}")
    return " ".join(text.split())


def execute(notebook: Path, out_dir: Path, profile: str, kernel: str = "python3") -> Path:
    """Run ``notebook`` with parameter ``profile`` into ``out_dir``/same name; return that copy."""
    import papermill

    out = out_dir / notebook.name
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ["MNIST_PROFILE"] = profile
    # an executed copy gets each long cell's summary, not its bars
    os.environ.setdefault("MNIST_PROGRESS", "0")
    papermill.execute_notebook(
        str(notebook),
        str(out),
        parameters={"profile": profile},
        kernel_name=kernel,
        cwd=str(notebook.parent),
        progress_bar=False,
        kernel_manager_class=EncryptedKernelManager,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    """Run one notebook; print ``name (profile): N s`` or one ``FAILED`` line; exit 0 / 1 / 2."""
    parser = argparse.ArgumentParser(
        prog="python -m mnist_utils.run_notebook", description=__doc__.splitlines()[0]
    )
    parser.add_argument("notebook", type=Path)
    parser.add_argument("out_dir", type=Path, help="folder for the executed copy")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--kernel", default="python3")
    args = parser.parse_args(argv)
    if args.profile not in PROFILES:
        print(
            f"error: PROFILE={args.profile!r} is not one of {', '.join(PROFILES)} "
            f"(e.g. make run-all PROFILE=quick)",
            file=sys.stderr,
        )
        return 2
    if not args.notebook.is_file():
        print(
            f"error: no notebook {args.notebook} (the course is notebooks/NN_*.ipynb)",
            file=sys.stderr,
        )
        return 2
    logging.getLogger("papermill").setLevel(logging.ERROR)
    start = time.perf_counter()
    try:
        execute(args.notebook, args.out_dir, args.profile, args.kernel)
    # a failed cell: its error line, and where the executed copy with it is
    except Exception as exc:
        print(
            f"FAILED in {args.notebook.name} (profile {args.profile}): {last_error_line(exc)} "
            f"(the whole traceback: {args.out_dir / args.notebook.name})",
            file=sys.stderr,
        )
        return 1
    print(
        f"{args.notebook.stem:<28} profile {args.profile:<8} {time.perf_counter() - start:6.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
