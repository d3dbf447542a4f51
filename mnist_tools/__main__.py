"""`python -m mnist_tools VERB [options]`: the one command line of the tools that `make` runs.

Exit codes: 0 done; 1 an error the message says how to fix; 2 a usage error; 130 interrupted.
"""

from __future__ import annotations

import importlib
import sys

VERBS = {
    "data": ("prepare", "copy and verify the MNIST files (--repair restores damaged ones)"),
    "notebook": ("notebook", "execute one course notebook with papermill into executed/"),
    "lab": ("lab", "start JupyterLab on one course notebook"),
    "train": ("train", "train the study's runs as Ray tasks ahead of notebook 06"),
    "bench": ("bench", "training speed against the hardware floor, and the race to 99 %"),
    "report": ("report", "fill the report's template from artifacts/ and build its PDF"),
    "snapshot": ("snapshot", "copy the executed notebooks and the PDF into snapshot/"),
    "predict": ("predict", "read the digit in your own images"),
    "export": ("export", "export a checkpoint to TorchScript and ONNX, both verified"),
}
"""Verb → (module of mnist_tools with a ``main(argv) -> int``, one-line help)."""


def usage() -> str:
    """The list of verbs."""
    lines = ["usage: python -m mnist_tools VERB [options]", "", "verbs:"]
    lines += [f"  {name:<9} {help_}" for name, (_, help_) in VERBS.items()]
    return "\n".join(lines + ["", "`python -m mnist_tools VERB --help` shows a verb's options."])


def main(argv: list[str] | None = None) -> int:
    """Run one verb; every error a user can fix is caught here once and printed as one line."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if not argv or argv[0] not in VERBS:
        if argv:
            print(f"error: unknown verb {argv[0]!r}", file=sys.stderr)
        print(usage(), file=sys.stderr)
        return 2
    from mnist_utils.errors import MnistError  # imported here: usage needs no torch

    module = importlib.import_module(f"mnist_tools.{VERBS[argv[0]][0]}")
    try:
        return module.main(argv[1:])
    except (MnistError, OSError) as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
