"""`python -m mnist_utils COMMAND ...`: the package's CLI tools (add a command to COMMANDS)."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "predict": ("mnist_utils.predict", "predict the digit in your own images"),
    "export": ("mnist_utils.export", "export a checkpoint to TorchScript and ONNX and verify both"),
    "data": (
        "mnist_utils.data",
        "prepare and verify the MNIST files (--repair restores damaged ones)",
    ),
    "train": (
        "mnist_utils.experiments",
        "train study runs ahead of the experiments notebook (Ray tasks, local or $RAY_ADDRESS)",
    ),
    "bench": (
        "mnist_utils.bench",
        "stock vs project training speed and time to 99 % (writes artifacts/bench.json)",
    ),
    "report": (
        "mnist_utils.report",
        "generate the report's LaTeX from artifacts/ and build report/report.pdf",
    ),
}
"""Command name → (module with a ``main(argv) -> int``, one-line help)."""


def usage() -> str:
    """The list of commands."""
    lines = ["usage: python -m mnist_utils COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`python -m mnist_utils COMMAND --help` shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the command's ``main``; usage and exit 2 for a missing or unknown command, exit 1
    for a user error."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if not argv or argv[0] not in COMMANDS:
        if argv:
            print(f"error: unknown command {argv[0]!r}", file=sys.stderr)
        print(usage(), file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    from .data import MnistDataError  # imported here: `--help` and usage need no torch
    from .engine import CheckpointError, DeviceError
    from .runs import ArtifactError

    try:
        return module.main(argv[1:])
    except (
        MnistDataError,
        CheckpointError,
        DeviceError,
        ArtifactError,
        OSError,
    ) as exc:  # a user's error: one line, no traceback
        # one line, even when torch's message has several
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
