"""`python -m mnist_tools predict IMAGE...`: read the digit in each image with a trained model."""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from pathlib import Path

import torch

from mnist_utils import digits, errors, paths

from .choice import checkpoint_argument, load_default, sanity_warning
from .images import ImageError, load_image
from .photo import preprocess


def shown(name: str) -> str:
    """A file name as one line of text: control characters (a newline, say) escaped."""
    return "".join(
        c.encode("unicode_escape").decode() if unicodedata.category(c)[0] == "C" else c
        for c in name
    )


def check_json_target(path: Path, images: list[str]) -> None:
    """Refuse a ``--json`` path that names one of the input images, or a file that holds something
    other than JSON: results never replace a user's file."""
    target = path.resolve() if path.is_symlink() else path
    if target.is_dir():
        raise errors.MnistError(f"--json {shown(str(path))}: it is a folder; name a file.")
    if any(Path(image).exists() and target.exists() and target.samefile(image) for image in images):
        raise errors.MnistError(
            f"--json {shown(str(path))} is one of the images to read; name a new file, e.g. "
            "--json results.json."
        )
    if target.is_file() and target.stat().st_size:
        try:
            json.loads(target.read_bytes())
        except ValueError:
            raise errors.MnistError(
                f"--json {shown(str(path))} exists and is not a JSON file; it was left as it is. "
                "Name a new file, e.g. --json results.json."
            ) from None


def write_user_file(path: Path, text: str) -> Path:
    """Write ``text`` to a path the user named, never replacing what is there: a regular file (or a
    new name) atomically, a symlink's target the same way, a device or FIFO directly."""
    path = Path(path)
    target = path.resolve() if path.is_symlink() else path
    if target.is_dir():
        raise IsADirectoryError(21, "it is a folder; name a file", str(path))
    if target.exists() and not target.is_file():  # /dev/null, a FIFO: written into, not replaced
        with open(target, "w") as out:
            out.write(text)
        return path
    paths.atomic_write(target, lambda tmp: tmp.write_text(text))
    return path


def read(name: str) -> tuple[torch.Tensor | None, dict]:
    """One image's 28×28 input (None when it cannot be read) and its result so far."""
    result: dict = {"file": name}
    try:
        image = load_image(name)
        x = preprocess(image)
    except ImageError as exc:  # load_image names the file itself
        result["error"] = str(exc).removeprefix(f"{name}: ")
        return None, result
    except Exception as exc:  # noqa: BLE001 - one image that breaks the clean-up must not stop the batch
        result["error"] = f"could not be processed ({type(exc).__name__}: {exc}); please report it"
        return None, result
    if "frame" in image.info:
        result["frame"] = image.info["frame"]
        print(
            f"note: {shown(name)}: read {image.info['frame']}, the one with the most contrast",
            file=sys.stderr,
        )
    return x, result


def report(results: list[dict]) -> None:
    """One line per image: its digit and top 3 on stdout, or its error on stderr."""
    for r in results:
        if "error" in r:
            print(f"error: {shown(r['file'])}: {r['error']}", file=sys.stderr)
        else:
            top = " ".join(f"{d}:{p:.3f}" for d, p in r["top3"])
            print(f"{shown(r['file'])}: {r['prediction']}  (top-3 {top})")


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line's arguments."""
    parser = argparse.ArgumentParser(
        prog="python -m mnist_tools predict",
        description="Read the digit in each image with a trained checkpoint.",
    )
    parser.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="image files, one digit each (any colours, any size); put `--` before names "
        "starting with '-'",
    )
    checkpoint_argument(parser)
    parser.add_argument(
        "--json", type=Path, default=None, metavar="OUT.json", help="also write the results as JSON"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Read every image; exit 0 when all were read, 1 when one could not be, 130 on Ctrl-C (the
    images read so far are reported and written)."""
    args = parse(argv)
    if args.json is not None:
        check_json_target(args.json, args.images)
    model, described = load_default(args.checkpoint)
    print(described, file=sys.stderr)
    if (warning := sanity_warning(model)) is not None:
        print(f"warning: {warning}", file=sys.stderr)
    inputs, results, interrupted = [], [], False
    try:
        for name in args.images:
            x, result = read(name)
            results.append(result)
            inputs.append(x)
    except KeyboardInterrupt:
        interrupted = True
    good = [i for i, x in enumerate(inputs) if x is not None]
    if good:
        probs = digits.predict_images(model, torch.stack([inputs[i] for i in good]))
        for i, row in zip(good, probs):
            top = digits.top_k(row)
            results[i].update(prediction=top[0][0], top3=top)
    report(results)
    if args.json is not None:
        write_user_file(args.json, json.dumps(results, indent=2) + "\n")
    if interrupted:
        print(f"interrupted after {len(results)} of {len(args.images)} images", file=sys.stderr)
        return 130
    return 1 if any("error" in r for r in results) else 0
