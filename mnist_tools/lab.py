"""`python -m mnist_tools lab --nb 04_training`: JupyterLab on one course notebook, on the loopback
interface, with a fresh token; the URL is printed first."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from mnist_utils import errors, paths
from mnist_utils.config import ALLOCATOR, PROFILES


def course_notebook(name: str) -> Path:
    """The course notebook ``name`` (``04_training`` or ``04_training.ipynb``), which must exist."""
    stem = name.removesuffix(".ipynb")
    notebook = paths.ROOT / "notebooks" / f"{stem}.ipynb"
    if not notebook.is_file() or "/" in stem:
        names = ", ".join(p.stem for p in sorted((paths.ROOT / "notebooks").glob("[0-9]*.ipynb")))
        raise errors.MnistError(
            f"no course notebook {name!r}; `make lab NB=` takes one of: {names}"
        )
    return notebook


def main(argv: list[str] | None = None) -> int:
    """Replace this process by JupyterLab (it never returns unless the start fails)."""
    parser = argparse.ArgumentParser(prog="python -m mnist_tools lab", description=__doc__)
    parser.add_argument("--nb", default="01_data_exploration", help="the notebook to open")
    parser.add_argument("--profile", default="default", choices=PROFILES)
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    args = parser.parse_args(argv)
    notebook = course_notebook(args.nb)
    token = secrets.token_urlsafe(24)
    url = f"http://{args.ip}:{args.port}/lab/tree/{notebook.name}?token={token}"
    print(f"JupyterLab (profile {args.profile}): {url}  (Ctrl-C stops it)", flush=True)
    env = os.environ | {
        "MNIST_PROFILE": args.profile,
        "JUPYTER_TOKEN": token,
        "GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES") or ALLOCATOR,
    }
    command = [
        str(Path(sys.executable).parent / "jupyter"),
        "lab",
        f"--notebook-dir={notebook.parent}",
        f"--ip={args.ip}",
        f"--port={args.port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.default_url=/lab/tree/{notebook.name}",
        "--no-browser",
    ] + (["--allow-root"] if os.geteuid() == 0 else [])
    os.execve(command[0], command, env)
    return 1
