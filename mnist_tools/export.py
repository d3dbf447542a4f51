"""Export a trained checkpoint to TorchScript and ONNX, and check that both predict exactly like
PyTorch.

The exported models take float32 images [N, 1, 28, 28] with pixel values in [0, 1] (uint8 / 255,
bright digit on black, as :func:`mnist_utils.predict.preprocess` makes them); the MNIST
normalisation is built in. They return log-probabilities [N, 10]. The batch size N is free.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from mnist_utils import data, errors, paths
from mnist_utils.augment import normalize, to_unit
from mnist_utils.engine import predict_log_probs

from .choice import checkpoint_argument, load_default, sanity_warning

INPUT_NAME = "image"
OUTPUT_NAME = "log_probs"
ATOL = 1e-4


class ExportError(errors.MnistError):
    """An export step failed, or a package it needs is missing."""


class Deployable(nn.Module):
    """A CPU, eval-mode, contiguous-memory copy of a trained model with the MNIST normalisation in
    front: [N, 1, 28, 28] in [0, 1] → log-probabilities [N, 10]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).cpu().eval().to(memory_format=torch.contiguous_format)
        self.eval()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(normalize(image))


@contextlib.contextmanager
def _quiet_torchscript() -> Iterator[None]:
    """Silence torch's deprecation notices for TorchScript, which this export uses on purpose."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def export_torchscript(model: nn.Module, path: Path | str) -> Path:
    """Write ``model`` (with normalisation) as a scripted TorchScript file; load it with
    ``torch.jit.load``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_torchscript():
        torch.jit.save(torch.jit.script(Deployable(model)), str(path))
    return path


def export_onnx(model: nn.Module, path: Path | str) -> str:
    """Write ``model`` (with normalisation) as ONNX, free batch size; return which exporter worked
    ("dynamo" or "legacy")."""
    try:
        import onnx  # noqa: F401 - torch.onnx.export needs it
    except ImportError as exc:
        raise ExportError(
            "ONNX export needs the 'onnx' and 'onnxscript' packages, which are not installed "
            f"here; install them with `{errors.VENV}` (they are in requirements.txt)."
        ) from exc
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapped, names = Deployable(model), {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME]}
    example = (torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)),)
    try:  # torch.onnx's default (torch.export-based) exporter, one self-contained file
        torch.onnx.export(
            wrapped,
            example,
            str(path),
            **names,
            dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("batch", min=1)}},
            external_data=False,
            verbose=False,
        )
        return "dynamo"
    except Exception as first:  # noqa: BLE001 - the new exporter fails in many ways; the TorchScript-based one is the fallback
        try:
            with _quiet_torchscript():
                torch.onnx.export(
                    wrapped,
                    example,
                    str(path),
                    **names,
                    dynamo=False,
                    dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                )
        except Exception as second:  # noqa: BLE001
            raise ExportError(
                f"ONNX export to {path} failed with both exporters: default "
                f"({type(first).__name__}: {first}); dynamo=False ({type(second).__name__}: "
                f"{second})."
            ) from second
        return "legacy"


def run_torchscript(path: Path | str, images: torch.Tensor) -> torch.Tensor:
    """Log-probabilities from a TorchScript file for float images [N, 1, 28, 28] in [0, 1]."""
    with _quiet_torchscript():
        module = torch.jit.load(str(path), map_location="cpu").eval()
    with torch.inference_mode():
        return module(images)


def run_onnx(path: Path | str, images: torch.Tensor) -> torch.Tensor:
    """Log-probabilities from an ONNX file via onnxruntime (CPU) for float images [N, 1, 28, 28] in
    [0, 1]."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ExportError(
            f"checking the ONNX file needs 'onnxruntime'; install it with `{errors.VENV}`."
        ) from exc
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})
    return torch.from_numpy(out)


def write_verified(model: nn.Module, images_u8: torch.Tensor, path: Path) -> dict:
    """Export ``model`` to ``path`` (``.onnx``: ONNX, else TorchScript) under a temporary name and
    compare it with PyTorch on uint8 images [N, 28, 28] (same argmax everywhere, log-probs within
    ATOL); it is moved into place only when it agrees, and an older file at ``path`` is removed when
    not."""
    onnx = path.suffix == ".onnx"
    result = {"format": "ONNX" if onnx else "TorchScript", "images": len(images_u8)}
    reference = predict_log_probs(model, images_u8)

    def write(tmp: Path) -> None:
        if onnx:
            result["exporter"] = {"dynamo": "default exporter", "legacy": "dynamo=False exporter"}[
                export_onnx(model, tmp)
            ]
        else:
            export_torchscript(model, tmp)
            result["exporter"] = "torch.jit.script"
        candidate = (run_onnx if onnx else run_torchscript)(tmp, to_unit(images_u8))
        same_argmax = bool(torch.equal(reference.argmax(1), candidate.argmax(1)))
        max_diff = (reference - candidate).abs().max().item()
        result.update(
            same_argmax=same_argmax, max_abs_diff=max_diff, ok=same_argmax and max_diff <= ATOL
        )
        if not result["ok"]:
            raise ExportError(f"{path} disagrees with PyTorch")

    try:
        paths.atomic_write(path, write)
    except ExportError:
        if "ok" not in result:  # the export itself failed, not its check
            raise
        path.unlink(missing_ok=True)
    return result


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line's arguments."""
    parser = argparse.ArgumentParser(
        prog="python -m mnist_tools export",
        description="Export a checkpoint to TorchScript (model.pt) and ONNX (model.onnx).",
    )
    checkpoint_argument(parser)
    parser.add_argument(
        "--out", type=Path, default=None, help=f"output folder (default: {paths.artifacts_dir()})"
    )
    parser.add_argument(
        "--check-images", type=int, default=256, metavar="N", help="test images to verify on"
    )
    args = parser.parse_args(argv)
    if args.check_images < 1:
        parser.error(f"--check-images {args.check_images}: verify on at least 1 test image")
    return args


def main(argv: list[str] | None = None) -> int:
    """Export both files, each verified against PyTorch; exit 1 when either disagrees."""
    args = parse(argv)
    out = args.out or paths.artifacts_dir() / "export"
    model, described = load_default(args.checkpoint)
    print(described)
    if (warning := sanity_warning(model)) is not None:
        raise ExportError(f"not exported: {warning}")
    images = data.load_split(False).images[: args.check_images]
    results = []
    for name in ("model.pt", "model.onnx"):
        results.append(r := write_verified(model, images, out / name))
        done = f"wrote {out / name}" if r["ok"] else f"NOT written: no file at {out / name}"
        print(
            f"{r['format']}: {'OK' if r['ok'] else 'MISMATCH'} on {r['images']} test images "
            f"(same argmax: {r['same_argmax']}, max |Δ log-prob| = {r['max_abs_diff']:.2e}, "
            f"tolerance {ATOL:g}); {done} ({r['exporter']})"
        )
    print(
        f"input: float32 [N, 1, 28, 28] in [0, 1] named {INPUT_NAME!r} (normalisation built in); "
        f"output: log-probabilities [N, 10] named {OUTPUT_NAME!r}"
    )
    return 0 if all(r["ok"] for r in results) else 1
