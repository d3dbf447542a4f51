"""TorchScript and ONNX exports of a small trained model predict exactly like PyTorch on real test
digits."""

from __future__ import annotations

import warnings

import pytest
import torch

from mnist_tools import export
from mnist_tools.__main__ import main as cli_main
from mnist_utils import checkpoints, engine


@pytest.fixture(scope="module")
def tiny_run(tiny_checkpoint):
    """(trained model, checkpoint path) of the shared tiny reference CNN."""
    model, _, _ = checkpoints.load_model(tiny_checkpoint)  # channels_last, as users get it
    return model, tiny_checkpoint


def _inputs(test_split, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 [n, 28, 28], float [n, 1, 28, 28] in [0, 1]) real test images."""
    images = test_split.images[:n]
    return images, images.unsqueeze(1).float() / 255.0


@pytest.mark.slow
def test_torchscript_and_onnx_match_pytorch(tmp_path, tiny_run, test_split):
    onnxruntime = pytest.importorskip("onnxruntime")
    model, _ = tiny_run
    images, x = _inputs(test_split)
    reference = engine.predict_log_probs(model, images)
    export.export_torchscript(model, tmp_path / "model.pt")
    assert export.export_onnx(model, tmp_path / "model.onnx") in ("dynamo", "legacy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.load(str(tmp_path / "model.pt"))
    with torch.inference_mode():
        ts_out = scripted(x)
    session = onnxruntime.InferenceSession(
        str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    (onnx_out,) = session.run(None, {export.INPUT_NAME: x.numpy()})
    for out in (ts_out, torch.from_numpy(onnx_out)):
        assert out.shape == (64, 10)
        assert torch.equal(out.argmax(1), reference.argmax(1))
        assert torch.allclose(out, reference, atol=1e-4)
    (one,) = session.run(None, {export.INPUT_NAME: x[:1].numpy()})  # the batch dimension is free
    assert one.shape == (1, 10)
    assert model.training is False and next(model.parameters()).is_contiguous(
        memory_format=torch.channels_last
    )


@pytest.mark.slow
def test_legacy_exporter_is_the_fallback(tmp_path, tiny_run, test_split, monkeypatch):
    pytest.importorskip("onnxruntime")
    model, _ = tiny_run

    real = torch.onnx.export

    def default_broken(*args, **kwargs):
        if kwargs.get("dynamo") is not False:
            raise RuntimeError("simulated failure of the default exporter")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", default_broken)
    assert export.export_onnx(model, tmp_path / "model.onnx") == "legacy"
    images, _ = _inputs(test_split, 32)
    result = export.write_verified(model, images, tmp_path / "checked.onnx")
    assert (
        result["ok"]
        and result["format"] == "ONNX"
        and result["exporter"] == "dynamo=False exporter"
    )


@pytest.mark.slow
def test_missing_onnx_package_gives_a_clear_error(tmp_path, tiny_run, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx":
            raise ImportError("No module named 'onnx'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(export.ExportError, match="'onnx'.*not installed"):
        export.export_onnx(tiny_run[0], tmp_path / "model.onnx")


@pytest.mark.slow
def test_export_cli_writes_and_verifies_both_files(tmp_path, tiny_run, capsys):
    pytest.importorskip("onnxruntime")
    _, checkpoint = tiny_run
    code = export.main(
        ["--checkpoint", str(checkpoint), "--out", str(tmp_path / "export"), "--check-images", "64"]
    )
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    assert (tmp_path / "export" / "model.pt").is_file() and (
        tmp_path / "export" / "model.onnx"
    ).is_file()
    assert "TorchScript: OK on 64" in stdout and "ONNX: OK on 64" in stdout


def test_export_cli_without_checkpoint_is_one_line_naming_the_fix(tmp_path, capsys):
    assert (
        cli_main(["export", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path)]) == 1
    )
    assert "make run-all" in capsys.readouterr().err


def test_files_that_fail_verification_are_never_left_behind(
    tmp_path, tiny_run, monkeypatch, capsys
):
    pytest.importorskip("onnxruntime")
    _, checkpoint = tiny_run
    out = tmp_path / "export"
    out.mkdir()
    (out / "model.pt").write_text("an older export of another checkpoint")
    real = export.run_torchscript
    # a TorchScript that disagrees
    monkeypatch.setattr(export, "run_torchscript", lambda path, x: real(path, x) + 0.5)
    code = export.main(["--checkpoint", str(checkpoint), "--out", str(out), "--check-images", "32"])
    stdout = capsys.readouterr().out
    assert code == 1
    assert stdout.startswith(f"model: {checkpoint} (run small")
    assert (
        "TorchScript: MISMATCH on 32 test images" in stdout
        and f"NOT written: no file at {out / 'model.pt'}" in stdout
    )
    assert "ONNX: OK on 32" in stdout
    # no mismatching file, no temporary file
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx"]


def test_checkpoint_with_nan_weights_is_refused_before_export(tmp_path, tiny_run, capsys):
    state = checkpoints.load(tiny_run[1])
    next(v for v in state["model"].values() if v.is_floating_point()).view(-1)[0] = float("nan")
    bad = tmp_path / "nan.pt"
    checkpoints.save(bad, state)
    assert cli_main(["export", "--checkpoint", str(bad), "--out", str(tmp_path / "export")]) == 1
    assert "non-finite weights" in capsys.readouterr().err and not (tmp_path / "export").exists()
