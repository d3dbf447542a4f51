"""`python -m mnist_tools train`: a profile's study runs as Ray tasks, ahead of notebook 06."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
from collections.abc import Iterator

from mnist_utils.config import PROFILES
from mnist_utils.engine import select_device
from mnist_utils.experiments import PLANS, VARIANTS, train_plan


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the study runs, SIGTERM stops it like Ctrl-C: Ray is shut down, no process is left."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def describe(s: dict) -> str:
    """The summary printed at the end of a study (``s`` from ``study.run_study``)."""
    lines = [
        f"study: runs trained {s['trained']}, already finished {s['skipped']}, failed "
        f"{len(s['failed'])}"
    ]
    if "wall_seconds" in s:
        lines.append(
            f"  wall {s['wall_seconds']:.0f} s (Ray start-up {s['startup_seconds']:.1f} s) on "
            f"{s['cpus']:.0f} CPUs; summed train time {s['train_seconds']:.0f} s (in tasks "
            f"{s['task_seconds']:.0f} s): {s['speedup']:.2f}x one 1-thread process"
        )
        nodes = sorted(s["nodes"].items())
        lines.append("  runs per node: " + ", ".join(f"{node}: {n}" for node, n in nodes))
    return "\n".join(lines + [f"  FAILED {name}: {why}" for name, why in s["failed"].items()])


def main(argv: list[str] | None = None) -> int:
    """Train (or resume) the plan's runs; the summary; exit 1 when a run failed."""
    parser = argparse.ArgumentParser(
        prog="python -m mnist_tools train",
        description="Train (or resume) the runs of notebook 06 under a profile's plan, one Ray "
        "task per run: on the cluster at $RAY_ADDRESS when set, else on a local Ray with this "
        "machine's CPUs. Finished runs are skipped; the notebook then reuses every one.",
    )
    parser.add_argument(
        "variants",
        nargs="*",
        metavar="VARIANT",
        help=f"any of: {', '.join(VARIANTS)} (a fine-tune trains its parent first); "
        "default: all of the plan",
    )
    parser.add_argument("--profile", default="full", choices=PROFILES)
    parser.add_argument("--seeds", type=int, nargs="+", help="default: the plan's seeds")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if not os.environ.get("RAY_ADDRESS", "").strip():
        select_device()  # a wrong MNIST_DEVICE fails here, in one line, before Ray starts
    variants = tuple(VARIANTS[name] for name in args.variants) or None
    seeds = tuple(dict.fromkeys(args.seeds or ())) or None  # a repeated seed counts once
    try:
        with sigterm_as_interrupt():  # `kill` stops it like Ctrl-C: only whole runs are kept
            summary = train_plan(PLANS[args.profile], variants, seeds)
    except KeyboardInterrupt:
        return 130  # the study has said what it kept
    print(describe(summary), flush=True)
    return 1 if summary["failed"] else 0
