"""Export a trained checkpoint to TorchScript and ONNX, and check that both predict exactly like PyTorch.

The exported models take float32 images [N, 1, 28, 28] with pixel values in [0, 1] (uint8 / 255, bright digit on
black, as :func:`mnist_utils.predict.preprocess` makes them); the MNIST normalisation is built in. They return
log-probabilities [N, 10]. The batch size N is free.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from . import data, engine, paths, runs
from .augment import MNIST_MEAN, MNIST_STD, to_unit
from .predict import load_default

INPUT_NAME = "image"
OUTPUT_NAME = "log_probs"
TORCHSCRIPT_FILE = "model.pt"
ONNX_FILE = "model.onnx"
ATOL = 1e-4


class ExportError(RuntimeError):
    """An export step failed or a needed package is missing; the message says how to fix it."""


class Deployable(nn.Module):
    """A trained model with the MNIST normalisation in front: [N, 1, 28, 28] in [0, 1] → log-probabilities [N, 10]."""

    def __init__(self, model: nn.Module, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> None:
        super().__init__()
        self.model = model
        self.mean = mean
        self.std = std

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model((image - self.mean) / self.std)


def deployable(model: nn.Module) -> Deployable:
    """A CPU, eval-mode, contiguous-memory copy of ``model`` wrapped with its input normalisation."""
    model = copy.deepcopy(model).cpu().eval().to(memory_format=torch.contiguous_format)
    return Deployable(model).eval()


def example_input(batch: int = 2) -> torch.Tensor:
    """A dummy batch of the exported input shape."""
    return torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0))


@contextlib.contextmanager
def _quiet_torchscript() -> Iterator[None]:
    """Silence torch's deprecation notices for TorchScript, which this export asks for on purpose."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def export_torchscript(model: nn.Module, path: Path | str) -> Path:
    """Write ``model`` (with normalisation) as a scripted TorchScript file; load it with ``torch.jit.load``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_torchscript():
        scripted = torch.jit.script(deployable(model))
        torch.jit.save(scripted, str(path))
    return path


def _require_onnx() -> None:
    """Raise :class:`ExportError` when the ``onnx`` package (needed by ``torch.onnx.export``) is missing."""
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        raise ExportError(
            "ONNX export needs the 'onnx' and 'onnxscript' packages, which are not installed in this environment; "
            "install them with `make venv` (they are in requirements.txt) or `pip install onnx onnxscript onnxruntime`."
        ) from exc


def _export_dynamo(wrapped: nn.Module, path: Path) -> None:
    """torch.onnx's default (torch.export-based) exporter, one self-contained file, free batch size."""
    batch = torch.export.Dim("batch", min=1)
    torch.onnx.export(wrapped, (example_input(),), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                      dynamic_shapes={"image": {0: batch}}, external_data=False, verbose=False)


def _export_legacy(wrapped: nn.Module, path: Path) -> None:
    """The TorchScript-based exporter (``dynamo=False``), free batch size."""
    torch.onnx.export(wrapped, (example_input(),), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                      dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, dynamo=False)


def export_onnx(model: nn.Module, path: Path | str) -> str:
    """Write ``model`` (with normalisation) as ONNX; return which exporter worked ("dynamo" or "legacy")."""
    _require_onnx()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapped = deployable(model)
    try:
        _export_dynamo(wrapped, path)
        return "dynamo"
    except Exception as first:  # noqa: BLE001 - the new exporter fails in many ways; the legacy one is the fallback
        try:
            with _quiet_torchscript():
                _export_legacy(wrapped, path)
        except Exception as second:  # noqa: BLE001
            raise ExportError(
                f"ONNX export to {path} failed with both exporters: default ({type(first).__name__}: {first}); "
                f"dynamo=False ({type(second).__name__}: {second})."
            ) from second
        return "legacy"


def run_torchscript(path: Path | str, images: torch.Tensor) -> torch.Tensor:
    """Log-probabilities from a TorchScript file for float images [N, 1, 28, 28] in [0, 1]."""
    with _quiet_torchscript():
        module = torch.jit.load(str(path), map_location="cpu").eval()
    with torch.inference_mode():
        return module(images)


def run_onnx(path: Path | str, images: torch.Tensor) -> torch.Tensor:
    """Log-probabilities from an ONNX file via onnxruntime (CPU) for float images [N, 1, 28, 28] in [0, 1]."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ExportError("checking the ONNX file needs 'onnxruntime'; install it with `make venv`.") from exc
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})
    return torch.from_numpy(out)


def compare(name: str, reference: torch.Tensor, candidate: torch.Tensor, atol: float = ATOL) -> dict:
    """Agreement of one exported model with PyTorch: same argmax everywhere and log-probs within ``atol``."""
    max_diff = (reference - candidate).abs().max().item()
    same_argmax = bool(torch.equal(reference.argmax(1), candidate.argmax(1)))
    return {"format": name, "images": len(reference), "same_argmax": same_argmax, "max_abs_diff": max_diff,
            "ok": same_argmax and max_diff <= atol}


def verify(model: nn.Module, images_u8: torch.Tensor, torchscript: Path | None, onnx_path: Path | None) -> list[dict]:
    """Compare the exported files with the PyTorch model on uint8 images [N, 28, 28]."""
    reference = engine.predict_log_probs(model, images_u8)
    x = to_unit(images_u8)
    results = []
    if torchscript is not None:
        results.append(compare("TorchScript", reference, run_torchscript(torchscript, x)))
    if onnx_path is not None:
        results.append(compare("ONNX", reference, run_onnx(onnx_path, x)))
    return results


def write_verified(model: nn.Module, images_u8: torch.Tensor, path: Path) -> dict:
    """Export ``model`` to ``path`` (``.onnx``: ONNX, else TorchScript) under a temporary name and compare it with PyTorch
    on ``images_u8``; it is moved into place only when it agrees, and an older file at ``path`` is removed when not."""
    onnx, result = path.suffix == ".onnx", {}

    def write(tmp: Path) -> None:
        if onnx:
            result["exporter"] = {"dynamo": "default exporter", "legacy": "dynamo=False exporter"}[export_onnx(model, tmp)]
        else:
            export_torchscript(model, tmp)
            result["exporter"] = "torch.jit.script"
        result.update(verify(model, images_u8, None if onnx else tmp, tmp if onnx else None)[0])
        if not result["ok"]:
            raise ExportError(f"{path} disagrees with PyTorch")

    try:
        paths.atomic_write(path, write)
    except ExportError:
        if "ok" not in result:  # the export itself failed, not its check
            raise
        path.unlink(missing_ok=True)
    return result


def _parser() -> argparse.ArgumentParser:
    """Command-line options of `python -m mnist_utils export`."""
    parser = argparse.ArgumentParser(prog="python -m mnist_utils export",
                                     description="Export a checkpoint to TorchScript (model.pt) and ONNX (model.onnx).")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint to export (default: the one `predict` uses, named in the output)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output folder (default: {paths.artifacts_dir() / 'export'})")
    parser.add_argument("--check-images", type=int, default=256, metavar="N",
                        help="real test images to verify on (default 256)")
    return parser


def _test_images(n: int) -> torch.Tensor:
    """The first ``n`` real MNIST test images; raises :class:`ExportError` when the data is not prepared."""
    try:
        return data.load_split(False).images[:n]
    except data.MnistDataError as exc:
        raise ExportError(f"cannot verify the exports on real test images: {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    """`python -m mnist_utils export [--checkpoint PATH] [--out DIR]`; exit 0 ok, 1 export/check failed, 2 bad checkpoint."""
    args = _parser().parse_args(argv)
    out = args.out or paths.artifacts_dir() / "export"
    try:
        model, described = load_default(args.checkpoint)
    except (engine.CheckpointError, runs.ArtifactError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(described)
    results = []
    try:
        images = _test_images(args.check_images)
        for name in (TORCHSCRIPT_FILE, ONNX_FILE):
            results.append(r := write_verified(model, images, out / name))
            done = f"wrote {out / name}" if r["ok"] else f"NOT written: no file at {out / name}"
            print(f"{r['format']}: {'OK' if r['ok'] else 'MISMATCH'} on {r['images']} test images (same argmax: "
                  f"{r['same_argmax']}, max |Δ log-prob| = {r['max_abs_diff']:.2e}, tolerance {ATOL:g}); {done} "
                  f"({r['exporter']})")
    except (ExportError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"input: float32 [N, 1, 28, 28] in [0, 1] named {INPUT_NAME!r} (normalisation built in); "
          f"output: log-probabilities [N, 10] named {OUTPUT_NAME!r}")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
