"""Issue 33, what a hostile but realistic user does: one line per error, nothing of theirs lost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from mnist_tools import __main__ as cli
from mnist_tools import export, predict, train
from mnist_tools import notebook as notebook_runner
from mnist_utils import checkpoints, experiments, paths, study
from mnist_utils.config import RunConfig

ROOT = paths.ROOT


@pytest.fixture
def digit(tmp_path, test_split) -> Path:
    """One real test digit as a PNG."""
    path = tmp_path / "digit.png"
    Image.fromarray(test_split.images[0].numpy()).save(path)
    return path


def _predict_json(digit: Path, checkpoint: Path, out: Path) -> int:
    return predict.main([str(digit), "--checkpoint", str(checkpoint), "--json", str(out)])


# ------------------------------------------------------------ 1: --json writes into, never replaces


def test_json_through_a_symlink_updates_its_target_and_keeps_the_link(
    tmp_path, digit, tiny_checkpoint
):
    target, link = tmp_path / "target.json", tmp_path / "link.json"
    target.write_text("[]\n")  # an earlier result
    link.symlink_to(target)
    _predict_json(digit, tiny_checkpoint, link)
    assert link.is_symlink() and json.loads(target.read_text())[0]["file"] == str(digit)


def test_json_into_a_fifo_is_written_into_not_replaced(tmp_path, digit, tiny_checkpoint):
    fifo, got = tmp_path / "pipe", []
    os.mkfifo(fifo)
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    _predict_json(digit, tiny_checkpoint, fifo)
    reader.join(timeout=10)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode), "the FIFO was replaced by a regular file"
    assert got and json.loads(got[0])[0]["file"] == str(digit)


def test_write_user_file_refuses_a_folder_and_writes_a_device(tmp_path):
    with pytest.raises(IsADirectoryError):
        predict.write_user_file(tmp_path, "x")
    predict.write_user_file(Path("/dev/null"), "x")  # written into (a no-op), never replaced
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


# --------------------------------------------------------------------------- 4, 5, 9: studies


def test_scratch_folders_belong_to_the_checkout(tmp_path, monkeypatch):
    config = RunConfig(name="reference")
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path / "clone1" / "artifacts"))
    one = study.scratch_dir(study.checkout_id(), "quick", config)
    assert one == study.scratch_dir(study.checkout_id(), "quick", config)  # a retry resumes there
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path / "clone2" / "artifacts"))
    assert study.scratch_dir(study.checkout_id(), "quick", config) != one


@pytest.mark.slow
def test_an_unreachable_ray_address_fails_fast_in_one_line_naming_it(tmp_path):
    env = dict(os.environ, RAY_ADDRESS="127.0.0.1:1", MNIST_ARTIFACTS_DIR=str(tmp_path))
    command = [sys.executable, "-m", "mnist_tools", "train", "reference", "--profile", "quick"]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "RAY_ADDRESS=127.0.0.1:1" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("reply", [b"", b"HTTP/1.1 400 Bad Request\r\n\r\n"])
def test_a_ray_address_that_answers_but_is_not_ray_fails_in_one_line(reply):
    """A port that accepts and stays silent (or speaks HTTP/1) made ``ray.init`` wait for
    minutes."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def answer():
            conn, _ = server.accept()
            with conn:
                conn.recv(64)
                conn.sendall(reply)
                time.sleep(3)

        threading.Thread(target=answer, daemon=True).start()
        start = time.monotonic()
        with pytest.raises(study.StudyError, match="does not answer as Ray") as err:
            study.check_reachable(f"127.0.0.1:{port}", timeout=2)
    assert time.monotonic() - start < 10 and "\n" not in str(err.value)
    assert f"RAY_ADDRESS=127.0.0.1:{port}" in str(err.value)


def test_an_artifacts_dir_that_is_a_file_fails_before_ray_starts(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "artifacts"
    blocker.write_text("not a folder\n")
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(blocker))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(study, "start_ray", lambda: pytest.fail("Ray started"))
    assert cli.main(["train", "reference", "--profile", "quick"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(blocker) in err and "MNIST_ARTIFACTS_DIR" in err


def test_sigterm_stops_the_study_like_ctrl_c():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), train.sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        threading.Event().wait(5)
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back


# ------------------------------------------------------------ 7: make predict IMG=...


@pytest.fixture
def fake_python(tmp_path) -> Path:
    """A stand-in for the venv's python that prints the arguments it gets, one a line."""
    path = tmp_path / "fake-python"
    path.write_text('#!/bin/sh\nfor a in "$@"; do printf \'%s\\n\' "$a"; done\n')
    path.chmod(0o755)
    return path


def _make_predict(img: str, fake_python: Path) -> list[str]:
    command = ["make", "-s", "-o", ".venv/.installed", "predict", f"PY={fake_python}"]
    proc = subprocess.run(
        command, cwd=ROOT, env=dict(os.environ, IMG=img), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()[proc.stdout.splitlines().index("--") + 1 :]


def test_make_predict_takes_one_name_a_line_and_expands_globs(tmp_path, fake_python):
    names = [tmp_path / "a.png", tmp_path / "b c.png", tmp_path / "d.png"]
    for name in names:
        name.write_bytes(b"")
    listing = "\n".join(map(str, names))  # what IMG="$(ls dir/*.png)" gives
    assert _make_predict(listing, fake_python) == list(map(str, names))
    assert _make_predict(f"{tmp_path}/*.png", fake_python) == sorted(map(str, names))
    assert _make_predict(str(names[1]), fake_python) == [str(names[1])]
    none = f"{tmp_path}/none*.png"  # no match: passed on as it is, for predict to name
    assert _make_predict(f"{names[0]} {none}", fake_python) == [str(names[0]), none]


# ------------------------------------------------------------ 8, 9: one line, nothing deleted


def test_a_repeated_seed_counts_once(monkeypatch):
    plan = experiments.PLANS["quick"]
    assert experiments.study_jobs(plan, (experiments.VARIANTS["reference"],), (0, 0)) == [
        (experiments.VARIANTS["reference"], 0)
    ]
    seen = []
    summary = {"trained": 0, "skipped": 1, "failed": {}, "runs": 1}
    monkeypatch.setattr(
        train, "train_plan", lambda plan, variants, seeds: seen.append(seeds) or summary
    )
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # no device check: train_plan is the stand-in
    assert train.main(["reference", "--seeds", "0", "0", "--profile", "quick"]) == 0
    assert seen == [(0,)]


def test_export_with_zero_check_images_is_one_line(tmp_path, tiny_checkpoint, capsys):
    with pytest.raises(SystemExit) as usage:
        export.main(
            ["--checkpoint", str(tiny_checkpoint), "--check-images", "0", "--out", str(tmp_path)]
        )
    err = capsys.readouterr().err
    assert usage.value.code == 2 and err.splitlines()[-1].endswith("at least 1 test image")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "name, content", [("model.onnx", b"\x08\x07\x12\x07pytorch"), ("photo.png", None)]
)
def test_a_file_that_is_no_checkpoint_is_never_advised_to_be_deleted(
    tmp_path, digit, capsys, name, content
):
    path = tmp_path / name
    path.write_bytes(content) if content else shutil.copy(digit, path)
    assert cli.main(["predict", str(digit), "--checkpoint", str(path)]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and "rm " not in err and "left as it is" in err and path.is_file()


@pytest.mark.parametrize(
    "run, fix",
    [
        ("reference", "make nb/04_training PROFILE=quick"),
        ("flips-seed0", "make experiments PROFILE=quick"),
    ],
)
def test_a_missing_checkpoint_names_the_command_of_its_profile_and_run(
    tmp_path, monkeypatch, run, fix
):
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path))
    with pytest.raises(checkpoints.CheckpointError, match=f"`{fix}`"):
        checkpoints.load_model(paths.run_dir(run, "quick") / paths.CHECKPOINT)


# ------------------------------------------------------------ 6: make clean-report, make clean


def test_clean_report_cleans_the_report_alone_and_clean_keeps_the_trained_models(tmp_path):
    keep = [
        tmp_path / f
        for f in ("artifacts/runs/default/reference/checkpoint.pt", "report/main.tex.j2")
    ]
    gone = [
        tmp_path / f
        for f in (
            "report/report.pdf",
            "report/report.aux",
            "report/report.fdb_latexmk",
            "report/figures/default/x.pdf",
            "report/generated/default/main.tex",
        )
    ]
    for path in keep + gone + [tmp_path / "executed/01.ipynb"]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")

    def make(target: str) -> None:
        subprocess.run(
            ["make", "-s", "-f", str(ROOT / "Makefile"), target],
            cwd=tmp_path,
            check=True,
            capture_output=True,
            timeout=60,
        )

    make("clean-report")
    assert all(p.exists() for p in keep) and not any(p.exists() for p in gone)
    assert (tmp_path / "executed/01.ipynb").exists()
    make("clean")
    assert all(p.exists() for p in keep) and not (tmp_path / "executed").exists()


def test_the_reaper_ends_what_a_killed_study_started(tmp_path):
    import psutil

    from mnist_utils import reaper

    code = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    driver = subprocess.Popen([sys.executable, "-c", code])
    watcher = reaper.start(driver.pid)
    deadline = time.monotonic() + 10
    while not (children := psutil.Process(driver.pid).children()) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2 * reaper.POLL_S)  # the reaper has seen the child
    driver.kill()  # as a killed kernel: no clean-up of its own
    driver.wait()
    watcher.wait(timeout=10)
    running = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert children and not running


@pytest.mark.slow
def test_a_grpc_server_that_is_not_ray_fails_the_study_within_half_a_minute(tmp_path):
    """An HTTP/2 server that answers the preface with a SETTINGS frame passes the socket check;
    ``ray.init`` then waited for minutes on it. The study joins from a child process first."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def serve():
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                conn.recv(1024)
                conn.sendall(bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))  # an empty SETTINGS frame
                threading.Thread(
                    target=lambda c=conn: c.recv(65536) and time.sleep(60), daemon=True
                ).start()

        threading.Thread(target=serve, daemon=True).start()
        env = dict(os.environ, RAY_ADDRESS=f"127.0.0.1:{port}", MNIST_ARTIFACTS_DIR=str(tmp_path))
        command = [sys.executable, "-m", "mnist_tools", "train", "reference", "--profile", "quick"]
        start = time.monotonic()
        proc = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=90, cwd=ROOT
        )
    assert time.monotonic() - start < 30 + 15  # the probe's 20 s, and the start of two processes
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "no Ray cluster let a driver join" in proc.stderr


@pytest.mark.slow
def test_a_study_killed_while_ray_starts_leaves_no_ray_process(tmp_path, data_root):
    """The reaper starts before the local Ray: a driver killed inside ``ray.init`` takes its servers
    and agents with it."""
    import psutil

    env = {**os.environ, "MNIST_ARTIFACTS_DIR": str(tmp_path), "RAY_ADDRESS": ""}
    command = [sys.executable, "-m", "mnist_tools", "train", "reference", "--profile", "quick"]
    driver = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until Ray's first servers are up below the driver
        below = psutil.Process(driver.pid).children(recursive=True)
        if any("gcs_server" in " ".join(p.cmdline()) for p in below if p.is_running()):
            break
        time.sleep(0.2)
    seen = [p for p in psutil.Process(driver.pid).children(recursive=True)]
    driver.kill()
    driver.wait(10)
    gone, alive = psutil.wait_procs(seen, timeout=15)
    assert not alive, [p.cmdline()[:2] for p in alive]


@pytest.mark.slow
def test_ctrl_c_while_a_notebook_runs_is_one_line_and_leaves_no_kernel(tmp_path, data_root):
    """Ctrl-C in a terminal sends SIGINT to the whole foreground group: the runner `make nb/...`
    calls, and the kernel it started. One line, no traceback, and no kernel left running."""
    import psutil

    env = {**os.environ, "MNIST_ARTIFACTS_DIR": str(tmp_path / "artifacts")}
    notebook = ROOT / "notebooks" / "01_data_exploration.ipynb"
    command = [sys.executable, "-m", "mnist_tools", "notebook", str(notebook), "--profile"]
    runner = subprocess.Popen(
        [*command, "quick", "--out", str(tmp_path / "executed")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group, as a terminal's foreground job has
    )
    deadline, kernels = time.monotonic() + 60, []
    while time.monotonic() < deadline and not kernels:  # until the kernel runs the notebook
        below = psutil.Process(runner.pid).children(recursive=True)
        kernels = [p for p in below if "ipykernel" in " ".join(p.cmdline())]
        time.sleep(0.2)
    assert kernels, "no kernel started within a minute"
    time.sleep(3)  # inside a cell
    os.killpg(runner.pid, signal.SIGINT)
    out, err = runner.communicate(timeout=60)
    assert runner.returncode != 0 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    gone, alive = psutil.wait_procs(kernels, timeout=15)
    assert not alive, [p.cmdline()[:3] for p in alive]


def test_each_profile_keeps_its_own_executed_copies(tmp_path):
    """`make nb/04_training PROFILE=quick` never overwrites the default run's executed copy."""
    page = ROOT / "notebooks" / "04_training.ipynb"
    copy = notebook_runner.executed_copy
    quick, default = (copy(page, profile, tmp_path) for profile in ("quick", "default"))
    assert quick == tmp_path / "quick" / page.name and default == tmp_path / "default" / page.name
