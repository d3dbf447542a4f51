"""The study on Ray: a real two-node cluster on this machine (loopback only), a killed worker,
Ctrl-C, and one process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest
import torch

from mnist_tools import notebook
from mnist_utils import checkpoints, paths, runs, study
from mnist_utils import experiments as ex
from mnist_utils.config import RunConfig

PLAN = ex.PLANS["quick"]
CONFIGS = [ex.config_for(v, s, PLAN) for v, s in ex.study_jobs(PLAN, (ex.CLEAN,), (0, 1))]
"""The quick study's final models, improved and its fine-tune (which gets its parent's weights) for
seeds 0 and 1."""


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes of one CPU each on this machine, both on 127.0.0.1 and nothing else;
    RAY_ADDRESS names it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        from ray._private import ray_constants
        from ray.cluster_utils import Cluster

        assert not ray_constants.ENABLE_RAY_CLUSTER, "ray was imported before the loopback setting"
        nodes = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 1,
                "node_ip_address": "127.0.0.1",
                "include_dashboard": False,
            },
        )
        nodes.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        mp.setenv("RAY_ADDRESS", nodes.address)
        yield nodes
        nodes.shutdown()


def _kill_one_task(killed: list[int]) -> None:
    """SIGKILL our first worker process seen running a study task for half a second (mid-run)."""
    deadline = time.monotonic() + 120
    while not killed and time.monotonic() < deadline:
        for p in psutil.Process().children(recursive=True):
            try:
                if p.cmdline()[:1] == ["ray::train_task"]:
                    time.sleep(0.5)
                    p.kill()
                    killed.append(p.pid)
                    return
            except psutil.Error:
                continue
        time.sleep(0.1)


@pytest.mark.slow
def test_two_node_study_survives_a_killed_worker_and_equals_one_process(
    cluster, tmp_path, monkeypatch, data_root
):
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path / "ray"))
    bad = CONFIGS[-1].replace(name="bad-seed0", schedule="bogus")
    diverging = RunConfig(name="nan-seed0", epochs=1, train_size=128, test_size=200, lr=1e12)
    killed: list[int] = []
    killer = threading.Thread(target=_kill_one_task, args=(killed,), daemon=True)
    killer.start()
    # added after the first recorded run: ahead of the runs waiting, their parents running or done
    fine_tunes = [CONFIGS[2:]]
    summary = study.run_study(
        [*CONFIGS[:2], bad, diverging],
        "quick",
        more=lambda: fine_tunes.pop() if fine_tunes and runs.read_metrics("quick") else [],
    )
    killer.join()
    assert killed, "no task worker was seen to kill"
    # real errors, by name; the other runs complete
    assert set(summary["failed"]) == {
        "bad-seed0",
        "nan-seed0",
    }
    assert (
        "unknown schedule" in summary["failed"]["bad-seed0"]
        and "diverged" in summary["failed"]["nan-seed0"]
    )
    assert summary["trained"] == len(CONFIGS)  # (which node ran them depends on the kill's timing)
    on_ray = runs.read_metrics("quick")
    assert set(on_ray) == {c.name for c in CONFIGS}
    for c in CONFIGS:
        assert {"checkpoint.pt", "history.json"} <= {
            f.name for f in paths.run_dir(c.name, "quick").iterdir()
        }
    assert not list((tmp_path / "ray").rglob("*.part"))
    # finished runs are not resubmitted
    assert study.run_study(CONFIGS, "quick")["skipped"] == len(CONFIGS)
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path / "spread"))
    both = study.run_study(
        [c.replace(name=f"spread-{i}") for i, c in enumerate(CONFIGS[:2])], "quick"
    )
    # two runs at once on two 1-CPU nodes: one on each
    assert both["trained"] == 2 and len(both["nodes"]) == 2

    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path / "one"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for c in CONFIGS:  # parents come first in CONFIGS
            one = runs.train_run(c, "quick", progress=False)
            assert {
                k: on_ray[c.name][k]
                for k in ("test_accuracy", "test_loss", "val_accuracy", "train_images")
            } == {
                k: one[k] for k in ("test_accuracy", "test_loss", "val_accuracy", "train_images")
            }, c.name
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_study_tasks_start_with_the_allocator_setting_or_the_users_own(cluster, monkeypatch):
    def tunables_in_a_task() -> str | None:
        ray = study.start_ray("")
        try:
            return ray.get(
                ray.remote(num_cpus=1)(lambda: os.environ.get("GLIBC_TUNABLES")).remote()
            )
        finally:
            ray.shutdown()

    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert tunables_in_a_task() == study.ALLOCATOR
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    assert tunables_in_a_task() == "glibc.malloc.arena_max=2"


def test_notebook_kernels_train_with_the_allocator_setting_or_the_users_own(monkeypatch):
    """The one copy of the setting is ``study.ALLOCATOR``: `make nb/...` gives it (or the user's
    own) to every notebook kernel, which trains; the runner's own environment is left as it is."""
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    before = dict(os.environ)
    assert notebook.kernel_env("quick")["GLIBC_TUNABLES"] == study.ALLOCATOR
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    assert notebook.kernel_env("quick")["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2"
    assert notebook.kernel_env("full")["MNIST_PROFILE"] == "full"
    monkeypatch.delenv("GLIBC_TUNABLES")
    assert dict(os.environ) == before


@pytest.mark.slow
def test_ctrl_c_stops_the_study_leaving_only_whole_runs(cluster, tmp_path, data_root):
    env = {**os.environ, "MNIST_ARTIFACTS_DIR": str(tmp_path), "PYTHONPATH": str(paths.ROOT)}
    driver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mnist_tools",
            "train",
            "reference",
            "no_aug",
            "--profile",
            "quick",
            "--seeds",
            "0",
            "1",
            "2",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = paths.metrics_path("quick").relative_to(paths.artifacts_dir())
    while not (tmp_path / metrics).is_file() and driver.poll() is None:
        time.sleep(0.2)
    driver.send_signal(signal.SIGINT)
    err = driver.communicate(timeout=60)[1]
    assert driver.returncode == 130 and "interrupted" in err, err
    recorded = json.loads((tmp_path / metrics).read_text())
    assert 1 <= len(recorded) < 6 and not list(tmp_path.rglob("*.part"))
    for name in recorded:
        assert (tmp_path / metrics).parent.joinpath(name, "checkpoint.pt").is_file()


@pytest.mark.slow
def test_modules_import_without_fcntl_and_without_starting_ray():
    code = (
        "import sys; sys.modules['fcntl'] = None; import mnist_utils.runs, mnist_utils.study, "
        "mnist_utils.experiments; assert 'ray' not in sys.modules, 'ray imported'"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=paths.ROOT
    )
    assert proc.returncode == 0, proc.stderr


def test_a_run_name_holding_another_config_is_named_and_kept_before_ray_starts(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path))
    parent, child = CONFIGS[0], CONFIGS[2]  # improved-seed0 and its fine-tune
    ckpt = paths.run_dir(parent.name, "quick") / "checkpoint.pt"
    checkpoints.save(ckpt, {"config": parent.replace(lr=1.0).to_dict(), "model": {}})
    before = ckpt.read_bytes()
    summary = study.run_study([parent, child], "quick")
    # nothing left to train: no Ray
    assert "startup_seconds" not in summary and summary["trained"] == 0
    assert (
        "of another config" in summary["failed"][parent.name]
        and "parent" in summary["failed"][child.name]
    )
    assert ckpt.read_bytes() == before
