"""Notebook 08 in a real browser: JupyterLab + Chromium, digits drawn on the pad with mouse events,
predictions read."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnist_utils import config, paths, runs

CHROMIUM = Path("/usr/bin/chromium")
NOTEBOOK = paths.ROOT / "notebooks" / "08_draw_a_digit.ipynb"
SHOTS = paths.ROOT / ".test-output"
PAD = 280  # the pad's size in pad pixels (drawpad.PAD_SIZE)
# each digit is drawn this often: every reading must be right, and the latency has a few samples
REPEATS = 3
STROKES = {  # pad pixels (x, y); one list per stroke
    "1": [[(140, 40), (140, 240)]],
    "7": [[(70, 50), (210, 50), (120, 240)]],
}

pytestmark = pytest.mark.slow
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -r requirements.txt)"
)
if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, data_root) -> Path:
    """A private artifacts folder holding the quick profile's reference model (the one `make test`
    trains, ~2 s)."""
    folder = tmp_path_factory.mktemp("drawpad_artifacts")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MNIST_ARTIFACTS_DIR", str(folder))
        runs.train_run(
            config.for_profile(config.RunConfig(), "quick"), "quick", device="cpu", progress=False
        )
    return folder


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyter_lab(
    notebooks: list[Path], artifacts: Path, tmp_path_factory
) -> Iterator[tuple[str, str]]:
    """JupyterLab on a free loopback port with a random token, serving copies of ``notebooks``:
    (base URL, token)."""
    root, state = tmp_path_factory.mktemp("lab"), tmp_path_factory.mktemp("lab_state")
    for notebook in notebooks:
        shutil.copy(notebook, root)
    port, token = free_port(), secrets.token_hex(16)
    env = os.environ | {
        "MNIST_ARTIFACTS_DIR": str(artifacts),
        "MNIST_PROFILE": "quick",
        "MNIST_PROGRESS": "0",
        "PYTHONPATH": str(paths.ROOT),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
    }
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={state / 'workspaces'}",
    ] + (["--allow-root"] if os.geteuid() == 0 else [])
    log = (state / "lab.log").open("w")
    server = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
                break
            except OSError:
                assert server.poll() is None, (state / "lab.log").read_text()
                time.sleep(0.25)
        else:
            raise TimeoutError(
                f"JupyterLab did not answer on {base} within 60 s:\n"
                f"{(state / 'lab.log').read_text()}"
            )
        yield base, token
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the kernel it started
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def lab_url(artifacts, tmp_path_factory):
    """JupyterLab serving a copy of notebook 08 (never the original), its URL with the token."""
    with jupyter_lab([NOTEBOOK], artifacts, tmp_path_factory) as (base, token):
        yield f"{base}/lab/tree/{NOTEBOOK.name}?token={token}"


def wait_for_kernel(url: str, timeout: float = 60) -> None:
    """Block until the server has started the kernel of the notebook in ``url`` and it is idle."""
    base, token = url.split("/lab/")[0], url.split("token=")[1]
    name = url.split("/tree/")[1].split("?")[0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sessions = json.load(
            urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=5)
        )
        if any(
            s["path"].endswith(name) and s["kernel"]["execution_state"] == "idle" for s in sessions
        ):
            return
        time.sleep(0.2)
    raise TimeoutError(f"no idle kernel after {timeout} s")


def draw(page, canvas, strokes) -> None:
    """Real mouse events along each stroke, pad pixels mapped onto the canvas's box on screen."""
    box = canvas.bounding_box()
    scale = box["width"] / PAD
    for points in strokes:
        (x, y), *rest = [(box["x"] + x * scale, box["y"] + y * scale) for x, y in points]
        page.mouse.move(x, y)
        page.mouse.down()
        for x, y in rest:
            page.mouse.move(x, y, steps=12)
        page.mouse.up()


VISIBLE = (
    ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook in the active tab (others may be open)
)
STDERR = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
RAN_OR_FAILED = """([visible, stderr]) => { const panel = document.querySelector(visible);
  return panel.querySelector(stderr) || [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
    .every(p => /\\[\\d+\\]/.test(p.textContent)); }"""
LATENCY_PROBE = """([canvas, result]) => {
  window.readings = []; let up = null;
  canvas.addEventListener('mouseup', () => { up = performance.now(); }, true);
  new MutationObserver(() => {
    if (up !== null) { window.readings.push(performance.now() - up); up = null; }
  })
    .observe(result, {subtree: true, childList: true, characterData: true});
}"""


def run_all_cells(page, url: str, timeout_ms: int = 60_000) -> None:
    """Open the notebook at ``url``, wait for its kernel, Run All Cells; assert no cell failed."""
    page.goto(url)
    page.locator(".jp-Notebook").wait_for(timeout=30_000)
    wait_for_kernel(url)  # the page shows "idle" before a kernel exists, so ask the server
    page.wait_for_function(
        "document.querySelector('.jp-Notebook-ExecutionIndicator')"  # connected
        "?.getAttribute('data-status') === 'idle'",
        timeout=30_000,
    )
    page.locator("#jp-MainMenu").get_by_text("Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    page.wait_for_function(RAN_OR_FAILED, arg=[VISIBLE, STDERR], timeout=timeout_ms)
    errors = page.locator(f"{VISIBLE} {STDERR}")
    assert errors.count() == 0, "a cell failed: " + " ".join(errors.all_inner_texts())


def test_drawing_a_1_and_a_7_on_the_pad_in_jupyterlab(lab_url):
    SHOTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            run_all_cells(page, lab_url)
            canvas, guess = (
                page.locator(".jp-OutputArea canvas").first,
                page.locator(".drawpad-guess").first,
            )
            canvas.scroll_into_view_if_needed()
            sync_api.expect(guess).to_have_text("draw a digit")
            page.evaluate(
                LATENCY_PROBE,
                [canvas.element_handle(), page.locator(".drawpad-result").first.element_handle()],
            )
            clear = page.get_by_role("button", name="Clear")
            # a stroke that leaves the pad: read, not a crash
            draw(page, canvas, [[(200, 140), (PAD + 60, 150)]])
            sync_api.expect(guess).not_to_have_text("draw a digit")
            clear.click()
            sync_api.expect(guess).to_have_text("draw a digit")
            for digit, strokes in [item for item in STROKES.items() for _ in range(REPEATS)]:
                draw(page, canvas, strokes)
                sync_api.expect(guess).not_to_have_text("draw a digit")
                assert guess.inner_text() == digit, (
                    f"drew a {digit}, the pad says {guess.inner_text()}"
                )
                page.locator(".jp-OutputArea-output:has(canvas)").screenshot(
                    path=SHOTS / f"drawpad_{digit}.png"
                )
                clear.click()
                sync_api.expect(guess).to_have_text("draw a digit")
            assert (
                page.get_by_text("Jupyter news").count() == 0
            ), (  # the course's settings override
                "JupyterLab asks about news: jupyter/overrides.json is not in "
                ".venv/share/jupyter/lab/settings (make venv)"
            )
            # the stroke released off the pad had no mouse-up on it
            latencies = page.evaluate("window.readings")
            assert len(latencies) == REPEATS * len(STROKES)
            (SHOTS / "drawpad_latency.json").write_text(
                json.dumps({"mouse_up_to_answer_ms": latencies})
            )
            print(
                "\n"
                "mouse-up -> updated answer in the browser (ms): "
                f"{', '.join(f'{t:.0f}' for t in latencies)}"
            )
        except Exception:
            page.screenshot(path=SHOTS / "drawpad_failure.png", full_page=True)
            raise
        finally:
            browser.close()
