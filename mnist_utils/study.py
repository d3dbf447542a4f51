"""The study's runs as Ray tasks, on this machine or a cluster: each task trains in a folder of its
own node and returns its results; the driver alone writes artifacts/, one run at a time. Ray is
imported only when a study starts."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from unittest import mock

import torch
from tqdm import tqdm

from . import engine, paths, reaper, runs
from .config import RunConfig
from .data import load_split
from .engine import CHECKPOINT, load_checkpoint, save_checkpoint

CONNECT_TIMEOUT_S = 10.0
"""Seconds a study waits for the host:port of ``$RAY_ADDRESS`` to accept a connection."""

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
"""What a gRPC client sends first: the HTTP/2 connection preface and an empty SETTINGS frame. Ray's
GCS (and its client server) answer with a SETTINGS frame of their own; a port that is not Ray's does
not, and ``ray.init`` would wait on it for minutes."""

MAX_RETRIES = 3
"""How often Ray reruns a task whose worker process died (a real error in a run is not retried)."""

ALLOCATOR = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"
"""``GLIBC_TUNABLES`` of the task processes: glibc keeps freed blocks of up to 32 MB in its heap and
never hands the heap back, so every training step reuses pages already mapped. By default each
step's large activations are mapped afresh: the deep model took 3,700 page faults per step in a
1-thread task (190 with this setting), and its steps took 19 % less time with it (9-10 % with two
tasks side by side). The driver's own ``GLIBC_TUNABLES``, when set, is passed on instead; `make`
starts its notebook kernels, the study and the benchmark with the same setting (the Makefile's
``ALLOCATOR``)."""


class StudyError(RuntimeError):
    """The study cannot start (e.g. the Ray cluster is unreachable); the message names the fix."""


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
    """One run, in a Ray task with one thread: train under a node-local folder of the driver's
    checkout (a retry on the same node resumes there) from ``resume`` or the ``parent`` result's
    weights; return its entry, history and checkpoint."""
    import ray

    torch.set_num_threads(1)
    start, root = time.perf_counter(), scratch_dir(checkout, profile, config)
    with mock.patch.dict(
        os.environ, {"MNIST_ARTIFACTS_DIR": str(root)}
    ):  # a killed worker never reaches the rmtree
        for name, state in (
            (config.name, resume),
            (config.init_from, parent and parent["checkpoint"]),
        ):
            if state is not None and not (paths.run_dir(name, profile) / CHECKPOINT).is_file():
                save_checkpoint(paths.run_dir(name, profile) / CHECKPOINT, state)
        # else this node's own copy from the package
        data_root = Path(data_dir) if Path(data_dir).is_dir() else None
        try:
            entry = runs.train_run(
                config,
                profile,
                runs.load_run_data(
                    config, load_split(True, data_root), load_split(False, data_root)
                ),
                progress=False,
            )
            run_dir = paths.run_dir(config.name, profile)
            result = {
                "entry": entry,
                "history": runs.read_json(run_dir / "history.json", []),
                "checkpoint": load_checkpoint(run_dir / CHECKPOINT),
            }
        finally:
            shutil.rmtree(root, ignore_errors=True)
    if not math.isfinite(entry["test_loss"]):
        raise FloatingPointError(
            f"{config.name}: the loss is {entry['test_loss']} (training diverged); lower its lr"
        )
    return dict(
        result,
        node=ray.get_runtime_context().get_node_id(),
        task_seconds=time.perf_counter() - start,
    )


def _prepare(configs: list[RunConfig], profile: str, failed: dict) -> tuple[list[RunConfig], dict]:
    """The runs of ``configs`` not finished in artifacts/ and each one's own checkpoint to resume
    from (None: a fresh start); a run that cannot start goes to ``failed`` with the reason."""
    metrics, resume = runs.read_metrics(profile), {}
    for c in (c for c in configs if not runs.finished(c, profile, metrics)):
        if c.init_from in failed:
            failed[c.name] = f"its parent {c.init_from} failed"
            continue
        try:
            resume[c.name] = runs.own_checkpoint(c, profile)
        except (runs.RunConflictError, engine.CheckpointError) as exc:
            failed[c.name] = str(exc)
    return [c for c in configs if c.name in resume], resume


def _why(exc: Exception) -> str:
    """A task's error in one line: the run's own exception when there is one."""
    cause = getattr(exc, "cause", None) or exc
    return f"{type(cause).__name__}: {cause}"


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse, in one line, a ``$RAY_ADDRESS`` (``host:port``, ``ray://host:port``) that is
    malformed, whose port accepts no connection within ``timeout`` s, or whose server does not
    answer a gRPC handshake; ``auto``, ``local``: Ray's."""
    if address in ("auto", "local"):
        return
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    fix = "start the cluster (`ray start --head`) or unset RAY_ADDRESS to train on this machine"
    if not sep or not host or not port.isdigit():
        raise StudyError(f"RAY_ADDRESS={address} is not host:port (e.g. 10.0.0.5:6379); {fix}.")
    try:
        conn = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    except OSError as exc:
        raise StudyError(
            f"cannot reach the Ray cluster at RAY_ADDRESS={address} within "
            f"{timeout:g} s "
            f"({exc.strerror or exc}); {fix}."
        ) from exc
    with conn:
        try:
            conn.sendall(HTTP2_PREFACE)
            reply = conn.recv(9, socket.MSG_WAITALL)  # the frame header, however it arrives
        except OSError:  # silent, or closed on us
            reply = b""
    if len(reply) < 9 or reply[3] != 4:  # a gRPC server answers with an HTTP/2 SETTINGS frame
        raise StudyError(
            f"RAY_ADDRESS={address} accepts connections but does not answer as Ray does (no "
            f"gRPC reply within {timeout:g} s); point it at the cluster's head (`ray status` there "
            "prints its address) or unset RAY_ADDRESS to train on this machine."
        )


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the study runs, SIGTERM stops it like Ctrl-C: Ray is shut down, no process is left."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: signals stay as they are
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def start_ray() -> ModuleType:
    """Connect to the Ray cluster at ``$RAY_ADDRESS`` (checked to answer first), or start a local
    Ray listening on the loopback only; its tasks run this very code (``py_modules``) with
    :data:`ALLOCATOR`. The ``ray`` module."""
    address = os.environ.get("RAY_ADDRESS", "").strip()
    if address:
        check_reachable(address)
    else:  # read when ray is first imported
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    # Ray 2.60 turns token authentication on for a local instance and says so at every start: keep
    # it on, unsaid
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR
    )
    local = {} if address else {"include_dashboard": False, "_node_ip_address": "127.0.0.1"}
    # read by glibc when a worker starts
    env = {"GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES") or ALLOCATOR}
    ray.init(
        address=address or "local",
        runtime_env={"py_modules": [str(Path(__file__).parent)], "env_vars": env},
        logging_level="WARNING",
        **local,
    )
    return ray


def run_study(
    configs: list[RunConfig], profile: str, more: Callable[[], list[RunConfig]] | None = None
) -> dict:
    """Train each run of ``configs`` not finished in artifacts/ as one Ray task, in their order (a
    fine-tune after its parent), on the cluster at ``$RAY_ADDRESS`` or else a local Ray with this
    machine's CPUs; a summary of the study.

    The driver keeps one task per CPU in flight. ``more`` is asked before the start and after each
    recorded run for runs to add: they go ahead of the runs still waiting."""
    more = more or list
    configs, failed, results = [*more(), *configs], {}, []
    queue, resume = _prepare(configs, profile, failed)

    def summary(**fields) -> dict:
        return dict(
            runs=len(configs),
            skipped=len(configs) - len(results) - len(failed),
            failed=failed,
            trained=len(results),
            **fields,
        )

    if not queue:
        return summary()
    runs.check_writable(paths.profile_dir(profile))  # an unusable folder fails before Ray starts
    start = time.perf_counter()
    ray = start_ray()
    local = not os.environ.get("RAY_ADDRESS", "").strip()
    watcher = reaper.start() if local else None  # a local Ray ends with this process
    startup, pending, checkout = time.perf_counter() - start, {}, checkout_id()
    try:
        cpus = ray.cluster_resources().get("CPU", 0)
        # every node works
        task = ray.remote(train_task).options(
            num_cpus=1,
            num_gpus=1 if ray.cluster_resources().get("GPU") else 0,
            max_retries=MAX_RETRIES,
            scheduling_strategy="SPREAD",
        )

        def submit() -> None:
            """Start queued runs while a CPU is free: a fine-tune gets its running parent's result,
            or its weights."""
            while queue and len(pending) < max(cpus, 1):
                c = queue.pop(0)
                if c.init_from in failed:
                    failed[c.name] = f"its parent {c.init_from} failed"
                    continue
                # still training
                parent = next((ref for ref, p in pending.items() if p.name == c.init_from), None)
                try:
                    if (
                        parent is None and c.init_from
                    ):  # finished before: its weights go with the task
                        parent = {
                            "checkpoint": load_checkpoint(
                                paths.run_dir(c.init_from, profile) / CHECKPOINT
                            )
                        }
                except engine.CheckpointError as exc:
                    failed[c.name] = str(exc)
                    continue
                ref = task.remote(
                    c, profile, str(paths.data_dir()), resume.pop(c.name), parent, checkout
                )
                pending[ref] = c

        submit()
        with tqdm(
            total=len(queue) + len(pending),
            unit="run",
            desc="study",
            disable=not engine.show_progress(),
            file=sys.stderr,
            postfix=f"running {len(pending)}, queued {len(queue)}",
        ) as bar:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    c = pending.pop(ref)
                    bar.update()
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        failed[c.name] = (
                            f"its parent {c.init_from} failed"
                            if c.init_from in failed
                            else _why(exc)
                        )
                        tqdm.write(f"{c.name}: FAILED, {failed[c.name]}", file=sys.stderr)
                        continue
                    runs.save_run(
                        c, profile, result["checkpoint"], result["history"], result["entry"]
                    )
                    results.append(
                        {k: v for k, v in result.items() if k not in ("checkpoint", "history")}
                    )
                    e = result["entry"]
                    if (
                        not bar.disable
                    ):  # a line per run beside the bar; without a bar, the summary alone
                        tqdm.write(
                            f"{c.name}: val {100 * e.get('val_accuracy', math.nan):.2f} %, "
                            f"{e['train_seconds']:.0f} s"
                        )
                    new = more()
                    configs += new
                    added, added_resume = _prepare(new, profile, failed)
                    queue[:0] = added
                    resume.update(added_resume)
                # the bar changes only when a run ends (a notebook keeps every redraw as an output)
                if ready:
                    submit()
                    bar.total = bar.n + len(pending) + len(queue)
                    bar.set_postfix_str(f"running {len(pending)}, queued {len(queue)}")
        ips = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes()}
    except KeyboardInterrupt:
        for ref in (
            pending
        ):  # a KeyboardInterrupt in each task: force=True, which kills the worker, crashed Ray once
            ray.cancel(ref)  # (a check in its TaskManager) when a task was replying at that moment
        print(
            "\n"
            f"interrupted: runs recorded this time: {len(results)}, each whole; the others left "
            "nothing in artifacts/. Run the same command again to go on.",
            file=sys.stderr,
        )
        raise
    finally:
        ray.shutdown()
        if watcher is not None:
            reaper.stop(watcher)
    wall, train = time.perf_counter() - start, sum(r["entry"]["train_seconds"] for r in results)
    return summary(
        startup_seconds=startup,
        wall_seconds=wall,
        train_seconds=train,
        speedup=train / wall,
        task_seconds=sum(r["task_seconds"] for r in results),
        cpus=cpus,
        nodes=dict(Counter(f"{ips.get(r['node'], '?')} {r['node'][:8]}" for r in results)),
    )


def describe(s: dict) -> str:
    """The summary printed at the end of a study (``s`` from :func:`run_study`)."""
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
        lines.append(
            "  runs per node: "
            + ", ".join(f"{node}: {n}" for node, n in sorted(s["nodes"].items()))
        )
    return "\n".join(lines + [f"  FAILED {name}: {why}" for name, why in s["failed"].items()])
