"""Run bookkeeping: artifacts/metrics.json stays whole when several training processes write to it."""
from __future__ import annotations

import multiprocessing

from mnist_utils import runs


def _write_entries(worker: int, count: int) -> None:
    for i in range(count):
        runs.record_metrics(f"w{worker}-run{i}", {"test_accuracy": i / count, "worker": worker, "profile": "quick"})


def test_parallel_workers_never_drop_each_others_entries(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path))
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_write_entries, args=(w, 40)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=60)
        assert p.exitcode == 0
    metrics = runs.read_metrics("quick")
    assert len(metrics) == 4 * 40
    assert metrics["w3-run39"] == {"test_accuracy": 39 / 40, "worker": 3, "profile": "quick"}
