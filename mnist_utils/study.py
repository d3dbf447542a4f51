"""The study's runs as Ray tasks, on this machine or a cluster: each task trains in a folder of its
own node and returns its results; the driver alone writes artifacts/, one run at a time. Ray is
imported only when a study starts."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch
from tqdm import tqdm

from . import checkpoints, engine, errors, paths, reaper, runs
from .config import ALLOCATOR, RunConfig
from .data import load_split

CONNECT_TIMEOUT_S = 10.0
"""Seconds a study waits for the host:port of ``$RAY_ADDRESS`` to accept a connection."""

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
"""What a gRPC client sends first: the HTTP/2 preface and an empty SETTINGS frame."""

PROBE_S = 20.0
"""Seconds a child process may take to join the cluster at ``$RAY_ADDRESS`` before the study gives
up on it."""

MAX_RETRIES = 3
"""How often Ray reruns a task whose worker process died (a real error in a run is not retried)."""


class StudyError(errors.MnistError):
    """The study cannot start (e.g. the Ray cluster is unreachable)."""


def checkout_id() -> str:
    """Who runs the study: this machine and its artifacts folder (two clones never share one)."""
    return f"{socket.gethostname()}:{paths.artifacts_dir()}"


def scratch_dir(checkout: str, profile: str, config: RunConfig) -> Path:
    """The node-local folder a task of ``config`` trains in: the same for a retry of the task,
    different for every checkout (:func:`checkout_id`), profile and config."""
    key = hashlib.sha256(repr((checkout, profile, config)).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir(), "mnist_utils-study", key)


def train_task(
    config: RunConfig,
    profile: str,
    data_dir: str,
    resume: dict | None,
    parent: dict | None,
    checkout: str,
) -> dict:
    """One run in a Ray task with one thread, in a node-local folder (a retry on the same node
    resumes there), from ``resume`` or the ``parent`` result's weights: its entry, history and
    checkpoint."""
    import ray

    torch.set_num_threads(1)
    start, root = time.perf_counter(), scratch_dir(checkout, profile, config)
    run_dir = root / config.name
    data_root = Path(data_dir) if Path(data_dir).is_dir() else None  # else this node's own copy
    try:  # a killed worker never reaches the rmtree: its retry resumes
        if resume is not None and not (run_dir / paths.CHECKPOINT).is_file():
            checkpoints.save(run_dir / paths.CHECKPOINT, resume)
        fresh = not (run_dir / paths.CHECKPOINT).is_file()
        init = parent["checkpoint"]["model"] if parent is not None and fresh else None
        data = runs.load_run_data(config, load_split(True, data_root), load_split(False, data_root))
        result = runs.fit_run(config, data, run_dir, init, progress=False)
        entry = runs.score(config, profile, result.model, result.history, data)
        state = checkpoints.load(run_dir / paths.CHECKPOINT)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if not math.isfinite(entry["test_loss"]):
        raise FloatingPointError(
            f"{config.name}: the loss is {entry['test_loss']} (training diverged); lower its lr"
        )
    return {
        "entry": entry,
        "history": result.history,
        "checkpoint": state,
        "node": ray.get_runtime_context().get_node_id(),
        "task_seconds": time.perf_counter() - start,
    }


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse, in one line, a ``$RAY_ADDRESS`` (``host:port``, ``ray://host:port``) that is
    malformed, accepts no connection within ``timeout`` s, or does not answer a gRPC handshake as
    Ray's servers do (``auto`` and ``local`` are Ray's own)."""
    if address in ("auto", "local"):
        return
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    fix = "start the cluster (`ray start --head`) or unset RAY_ADDRESS to train on this machine"
    if not sep or not host or not port.isdigit():
        raise StudyError(f"RAY_ADDRESS={address} is not host:port (e.g. 10.0.0.5:6379); {fix}.")
    try:
        conn = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    except (OSError, UnicodeError) as exc:
        raise StudyError(
            f"cannot reach the Ray cluster at RAY_ADDRESS={address} within {timeout:g} s "
            f"({getattr(exc, 'strerror', None) or exc}); {fix}."
        ) from exc
    with conn:
        try:
            conn.sendall(HTTP2_PREFACE)
            reply = conn.recv(9, socket.MSG_WAITALL)  # the frame header, however it arrives
        except OSError:  # silent, or closed on us
            reply = b""
    if len(reply) < 9 or reply[3] != 4:  # a gRPC server answers with an HTTP/2 SETTINGS frame
        raise StudyError(
            f"RAY_ADDRESS={address} accepts connections but does not answer as Ray does (no gRPC "
            f"reply within {timeout:g} s); point it at the cluster's head (`ray status` there "
            "prints its address) or unset RAY_ADDRESS to train on this machine."
        )


def probe_ray(address: str, timeout: float = PROBE_S) -> None:
    """Join the cluster from a child process first: ``ray.init`` waits for minutes on a gRPC server
    that is not Ray's, and only a process can be stopped."""
    code = f"import ray; ray.init(address={address!r}, logging_level='ERROR'); ray.shutdown()"
    fix = "point it at the cluster's head (`ray status` there prints its address) or unset it"
    try:
        subprocess.run(
            [sys.executable, "-c", code], timeout=timeout, capture_output=True, check=True
        )
    except subprocess.TimeoutExpired:
        raise StudyError(
            f"RAY_ADDRESS={address} answers, but no Ray cluster let a driver join within "
            f"{timeout:g} s; {fix}."
        ) from None
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        raise StudyError(f"RAY_ADDRESS={address}: Ray could not join it ({last}); {fix}.") from None


def start_ray(address: str) -> ModuleType:
    """Connect to the Ray cluster at ``address`` (checked to answer first), or start a local Ray
    on the loopback only; its tasks run this very code with :data:`ALLOCATOR`."""
    if address:
        check_reachable(address)
        probe_ray(address)
    else:  # read when ray is first imported
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    # Ray 2.60 turns token authentication on for a local instance and says so at every start
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR
    )
    local = {} if address else {"include_dashboard": False, "_node_ip_address": "127.0.0.1"}
    env = {"GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES") or ALLOCATOR}
    ray.init(
        address=address or "local",
        runtime_env={"py_modules": [str(Path(__file__).parent)], "env_vars": env},
        logging_level="WARNING",
        **local,
    )
    return ray


class Study:
    """The driver's state while a study runs: the runs waiting, in flight, failed and recorded.

    ``more`` is asked before the start and after each recorded run for runs to add: they go ahead
    of the runs still waiting."""

    def __init__(self, profile: str, more: Callable[[], list[RunConfig]]):
        self.profile, self.more = profile, more
        self.configs: list[RunConfig] = []
        self.queue: list[RunConfig] = []
        self.resume: dict[str, dict | None] = {}
        self.pending: dict = {}  # Ray object ref -> its run's config
        self.failed: dict[str, str] = {}
        self.results: list[dict] = []

    def add(self, configs: list[RunConfig]) -> None:
        """Queue the runs of ``configs`` not finished in artifacts/, ahead of those waiting, each
        with its own checkpoint to resume from (None: a fresh start)."""
        self.configs += configs
        metrics, added = runs.read_metrics(self.profile), []
        for c in (c for c in configs if not runs.finished(c, self.profile, metrics)):
            if c.init_from in self.failed:
                self.failed[c.name] = f"its parent {c.init_from} failed"
                continue
            try:
                self.resume[c.name] = runs.own_checkpoint(c, self.profile)
            except checkpoints.CheckpointError as exc:
                self.failed[c.name] = str(exc)
                continue
            added.append(c)
        self.queue[:0] = added

    def parent_of(self, c: RunConfig) -> object:
        """What a fine-tune starts from: its parent's task while it runs, else its weights."""
        running = next((ref for ref, p in self.pending.items() if p.name == c.init_from), None)
        if running is not None or not c.init_from:
            return running
        return {"checkpoint": checkpoints.load(paths.checkpoint_path(c.init_from, self.profile))}

    def submit(self, task, slots: int, data_dir: str, checkout: str) -> None:
        """Start queued runs while fewer than ``slots`` are in flight."""
        while self.queue and len(self.pending) < slots:
            c = self.queue.pop(0)
            if c.init_from in self.failed:
                self.failed[c.name] = f"its parent {c.init_from} failed"
                continue
            try:
                parent = self.parent_of(c)
            except checkpoints.CheckpointError as exc:
                self.failed[c.name] = str(exc)
                continue
            resume = self.resume.pop(c.name)
            self.pending[task.remote(c, self.profile, data_dir, resume, parent, checkout)] = c

    def collect(self, ray: ModuleType, ref, show: bool) -> None:
        """Record the run of a finished task (the driver writes artifacts/), or its failure."""
        c = self.pending.pop(ref)
        try:
            result = ray.get(ref)
        except ray.exceptions.RayError as exc:
            cause = getattr(exc, "cause", None) or exc
            why = f"{type(cause).__name__}: {cause}"
            self.failed[c.name] = (
                f"its parent {c.init_from} failed" if c.init_from in self.failed else why
            )
            tqdm.write(f"{c.name}: FAILED, {self.failed[c.name]}", file=sys.stderr)
            return
        runs.save_run(c, self.profile, result["checkpoint"], result["history"], result["entry"])
        self.results.append({k: v for k, v in result.items() if k not in ("checkpoint", "history")})
        if show:  # a line per run beside the bar; without a bar, the summary alone
            e = result["entry"]
            val = 100 * e.get("val_accuracy", math.nan)
            tqdm.write(f"{c.name}: val {val:.2f} %, {e['train_seconds']:.0f} s")
        self.add(self.more())

    def summary(self, **fields) -> dict:
        """How many runs were trained, reused and failed, and ``fields``."""
        trained, failed = len(self.results), len(self.failed)
        skipped = len(self.configs) - trained - failed
        return dict(
            runs=len(self.configs), skipped=skipped, failed=self.failed, trained=trained, **fields
        )


def drive(ray: ModuleType, study: Study) -> None:
    """Keep one task per CPU of the cluster in flight until every queued run is recorded."""
    cpus = max(ray.cluster_resources().get("CPU", 0), 1)
    gpus = 1 if ray.cluster_resources().get("GPU") else 0
    task = ray.remote(train_task).options(
        num_cpus=1, num_gpus=gpus, max_retries=MAX_RETRIES, scheduling_strategy="SPREAD"
    )
    args = (task, cpus, str(paths.data_dir()), checkout_id())
    study.submit(*args)
    bar = tqdm(
        total=len(study.queue) + len(study.pending),
        unit="run",
        desc="study",
        disable=not engine.show_progress(),
        file=sys.stderr,
    )
    with bar:
        while study.pending:
            ready, _ = ray.wait(list(study.pending), num_returns=1, timeout=1.0)
            for ref in ready:
                bar.update()
                study.collect(ray, ref, not bar.disable)
            if ready:  # the bar changes only when a run ends (a notebook keeps every redraw)
                study.submit(*args)
                bar.total = bar.n + len(study.pending) + len(study.queue)


def run_on_ray(study: Study, address: str) -> dict:
    """Start (or join) Ray, drive the study, and shut Ray down whatever happens; the summary with
    its times and the runs per node."""
    start = time.perf_counter()
    ray = start_ray(address)
    try:
        startup = time.perf_counter() - start
        drive(ray, study)
        ips = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes()}
        cpus = ray.cluster_resources().get("CPU", 0)
    except KeyboardInterrupt:
        for ref in study.pending:  # force=True kills the worker, which crashed Ray once
            ray.cancel(ref)
        print(
            f"\ninterrupted: runs recorded this time: {len(study.results)}, each whole; the others "
            "left nothing in artifacts/. Run the same command again to go on.",
            file=sys.stderr,
        )
        raise
    finally:
        ray.shutdown()
    wall, done = time.perf_counter() - start, study.results
    train = sum(r["entry"]["train_seconds"] for r in done)
    nodes = Counter(f"{ips.get(r['node'], '?')} {r['node'][:8]}" for r in done)
    return study.summary(
        startup_seconds=startup,
        wall_seconds=wall,
        train_seconds=train,
        speedup=train / wall,
        task_seconds=sum(r["task_seconds"] for r in done),
        cpus=cpus,
        nodes=dict(nodes),
    )


def run_study(
    configs: list[RunConfig], profile: str, more: Callable[[], list[RunConfig]] | None = None
) -> dict:
    """Train each run of ``configs`` not finished in artifacts/ as one Ray task, in their order (a
    fine-tune after its parent), on the cluster at ``$RAY_ADDRESS``, else on a local Ray with this
    machine's CPUs; the study's summary."""
    study = Study(profile, more or list)
    study.add(study.more() + configs)
    if not study.queue:
        return study.summary()
    runs.check_writable(paths.profile_dir(profile))  # an unusable folder fails before Ray starts
    address = os.environ.get("RAY_ADDRESS", "").strip()
    watcher = None if address else reaper.start()  # in place before a local Ray starts
    try:
        return run_on_ray(study, address)
    finally:
        if watcher is not None:
            reaper.stop(watcher)
