"""`python -m mnist_tools data [--repair]`: copy and verify the MNIST files, print where."""

from __future__ import annotations

import argparse
import time

from mnist_utils.data import prepare


def main(argv: list[str] | None = None) -> int:
    """Prepare and verify the data; one line saying where it is."""
    parser = argparse.ArgumentParser(
        prog="python -m mnist_tools data", description="Copy and verify the MNIST files."
    )
    parser.add_argument(
        "--repair", action="store_true", help="move damaged files aside (*.bad) and restore them"
    )
    parser.add_argument("--no-download", action="store_true", help="never try a download")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    root = prepare(repair=args.repair, allow_download=not args.no_download)
    print(f"MNIST verified in {root / 'MNIST' / 'raw'} ({time.perf_counter() - start:.1f} s)")
    return 0
