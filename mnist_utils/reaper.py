"""A watcher process: when the study's driver ends, or the watcher gets SIGTERM, it ends every
process the driver had started (a local Ray's servers and agents), so none outlives the study."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

POLL_S = 0.5
GRACE_S = 2.0  # SIGTERM first, SIGKILL for what is still there after this


def descendants(pid: int) -> dict[int, psutil.Process]:
    """Every process below ``pid`` now, by pid (empty when ``pid`` is gone)."""
    try:
        return {p.pid: p for p in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return {}


def end(processes: list[psutil.Process]) -> None:
    """SIGTERM each process that still runs (psutil checks it is the same one), then SIGKILL."""
    for p in processes:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(processes, timeout=GRACE_S)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass


def watch(pid: int) -> None:
    """Note the processes below ``pid`` until it ends or SIGTERM comes; then end those left."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the study's: it shuts Ray down
    seen: dict[int, psutil.Process] = {}
    driver = psutil.Process(pid)
    while not stop and driver.is_running() and driver.status() != psutil.STATUS_ZOMBIE:
        seen.update(descendants(pid))
        time.sleep(POLL_S)
    seen.pop(os.getpid(), None)
    end([p for p in seen.values() if p.is_running()])


def start(pid: int | None = None) -> subprocess.Popen:
    """A reaper watching ``pid`` (this process), in a session of its own: it outlives a kill."""
    code = f"from mnist_utils import reaper; reaper.watch({pid or os.getpid()})"
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(reaper: subprocess.Popen, timeout: float = 10.0) -> None:
    """Let ``reaper`` end what is left of the study's processes, and wait for it."""
    reaper.terminate()
    try:
        reaper.wait(timeout)
    except subprocess.TimeoutExpired:
        reaper.kill()
