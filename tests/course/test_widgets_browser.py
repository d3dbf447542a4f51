"""Notebooks 02, 03, 05 and 07 in JupyterLab + Chromium: widgets driven by real keys and mouse."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import lesson_namespace
from pages import shown_images
from test_drawpad_browser import SHOTS, artifacts, jupyter_lab, run_all_cells, sync_api  # noqa: F401

from mnist_utils import checkpoints, data, engine, paths, runs

pytestmark = pytest.mark.slow
NAMES = ("02_augmentation", "05_analysis", "03_model", "07_calibration_robustness")
NOTEBOOKS = [paths.ROOT / "notebooks" / f"{name}.ipynb" for name in NAMES]  # 07 reads what 05 wrote
PRESSES = 4  # arrow-key presses on the angle slider, button clicks, confusion cells: each one timed
CELLS = [(4, 9), (7, 2), (3, 5), (9, 4)]
PROBE = """([target, key, events]) => {
  window.latencies = window.latencies || {}; window.latencies[key] = []; let start = null;
  const mark = () => { start = performance.now(); };
  for (const name of events) document.addEventListener(name, mark, true);
  new MutationObserver(() => {
    if (start !== null) { window.latencies[key].push(performance.now() - start); start = null; }
  }).observe(target, {subtree: true, childList: true, characterData: true});
}"""
"""Time each event (capturing on the document) to the next change of the widget's output."""


@pytest.fixture(scope="module")
def lab(artifacts, tmp_path_factory):  # noqa: F811 (the fixture imported above)
    """JupyterLab serving copies of the four notebooks: (base URL, token)."""
    with jupyter_lab(NOTEBOOKS, artifacts, tmp_path_factory) as server:
        yield server


@pytest.fixture(scope="module")
def page():
    """A Chromium page for the module (a test that fails screenshots it into .test-output/)."""
    SHOTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        yield browser.new_page(viewport={"width": 1500, "height": 1100})
        browser.close()


def url(lab: tuple[str, str], k: int) -> str:
    """Notebook k in a workspace of its own, so JupyterLab opens no other notebook beside it."""
    (base, token), name = lab, NOTEBOOKS[k].name
    return f"{base}/lab/workspaces/{NOTEBOOKS[k].stem}/tree/{name}?token={token}"


def shown_matrix(page) -> np.ndarray:
    """The 3×3 matrix as the page shows it."""
    return np.array(page.locator(".affine-matrix").inner_text().split(), dtype=float).reshape(3, 3)


def readout(page, label: str) -> float:
    """The value a slider's readout shows."""
    text = page.locator(".widget-slider", has_text=label).locator(".widget-readout").inner_text()
    return float(text.replace("\u2212", "-"))  # a typographic minus


def report(page, name: str) -> dict[str, list[float]]:
    """The recorded event → output latencies, printed and written to .test-output/."""
    latencies = page.evaluate("window.latencies")
    (SHOTS / f"widgets_{name}_latency.json").write_text(json.dumps(latencies))
    for key, values in latencies.items():
        times = ", ".join(f"{t:.0f}" for t in values)
        print(f"\n{name}: {key} -> updated output in the browser (ms): {times}")
    return latencies


def test_affine_sliders_and_random_draw_in_jupyterlab(lab, page):
    try:
        run_all_cells(page, url(lab, 0), timeout_ms=120_000)
        matrix, gallery = (
            page.locator(".affine-output").first,
            page.locator(".affine-gallery").first,
        )
        matrix.scroll_into_view_if_needed()
        handle = page.locator(".widget-slider", has_text="angle").locator(".noUi-handle").first
        page.evaluate(PROBE, [gallery.element_handle(), "click on 'new random draw'", ["click"]])
        lesson = lesson_namespace("02_augmentation.ipynb")
        start = readout(page, "angle")  # where the notebook's own check left it
        handle.scroll_into_view_if_needed()  # the mouse can only drag what is on the screen
        box = handle.bounding_box()  # a drag with the mouse: the handle 60 px to the left
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 2 - 60, box["y"] + box["height"] / 2, steps=10)
        page.mouse.up()
        dragged = readout(page, "angle")
        assert dragged < start, (start, dragged)
        page.wait_for_timeout(1500)  # let the drag's last update arrive before timing the keys
        page.evaluate(
            PROBE, [matrix.element_handle(), "arrow key on the angle slider", ["keydown"]]
        )
        for _ in range(PRESSES):  # then the keyboard, one step (0.5°) per press
            before = page.locator(".affine-matrix").inner_text()
            handle.press("ArrowRight")
            sync_api.expect(page.locator(".affine-matrix")).not_to_have_text(before)
        values = {
            name: readout(page, name)
            for name in ("angle", "crop scale", "aspect ratio", "shift x", "shift y")
        }
        assert abs(values["angle"] - (dragged + 0.5 * PRESSES)) < 1e-9, values
        crop = torch.tensor([lesson["centred_crop"](values["crop scale"], values["aspect ratio"])])
        expected = lesson["compose_affine"](
            torch.tensor([values["angle"]], dtype=torch.float64),
            crop.double(),
            torch.tensor([[values["shift x"], values["shift y"]]], dtype=torch.float64),
        )[0].numpy()
        assert np.allclose(shown_matrix(page)[:2], expected, atol=6e-4), (
            "the matrix for the values the page shows"
        )
        page.locator(".affine-output").first.screenshot(path=SHOTS / "widgets_02_affine.png")
        draws = page.locator(".affine-gallery img.affine-draw")
        for _ in range(
            PRESSES
        ):  # the notebook's own check drew once already: each click must draw afresh
            before = gallery.inner_html()
            page.get_by_role("button", name="new random draw").click()
            page.wait_for_function(
                "([el, before]) => el.innerHTML !== before", arg=[gallery.element_handle(), before]
            )
            sync_api.expect(draws).to_have_count(8)
        gallery.screenshot(path=SHOTS / "widgets_02_draws.png")
        latencies = report(page, "02")
        assert all(len(v) == PRESSES for v in latencies.values()), latencies
    except Exception:
        page.screenshot(path=SHOTS / "widgets_02_failure.png", full_page=True)
        raise


def confusion_matrix(folder: Path) -> torch.Tensor:
    """The quick reference model's confusion matrix, computed here, apart from the notebook."""
    checkpoint = with_artifacts(
        folder, lambda: paths.run_dir("reference", "quick") / paths.CHECKPOINT
    )
    model, cfg, _ = checkpoints.load_model(checkpoint)
    test = runs.test_split_for(cfg)
    pred = engine.predict_log_probs(model, test.images).argmax(1)
    return torch.bincount(test.labels * 10 + pred, minlength=100).view(10, 10)


def test_confusion_cells_clicked_and_picked_in_jupyterlab(lab, page, artifacts):  # noqa: F811
    cm = confusion_matrix(artifacts)
    try:
        run_all_cells(page, url(lab, 1), timeout_ms=120_000)
        output = page.locator(".confusion-output").first
        output.scroll_into_view_if_needed()
        page.evaluate(PROBE, [output.element_handle(), "click on a matrix cell", ["click"]])
        images, title = output.locator("img.cell-image"), output.locator(".cell-title")
        first = tuple(
            map(int, re.search(r"true (\d), predicted (\d)", title.inner_text()).groups())
        )
        # re-clicking the shown cell changes nothing
        changes = sum(a != b for a, b in zip([first, *CELLS], CELLS))
        for t, p in CELLS:
            page.locator(f"button.cm-{t}-{p}").click()
            sync_api.expect(title).to_contain_text(
                f"true {t}, predicted {p}: {int(cm[t, p])} test images"
            )
            sync_api.expect(images).to_have_count(min(int(cm[t, p]), 24))
            assert page.locator(f"button.cm-{t}-{p}").inner_text() == str(int(cm[t, p])), (
                "the cell's count"
            )
        page.locator(".confusion-output").first.screenshot(path=SHOTS / "widgets_05_cell.png")
        page.evaluate(PROBE, [output.element_handle(), "pick from the menus", ["change"]])
        page.locator(".confusion-true select").select_option(label="7")
        # the last click's column
        sync_api.expect(title).to_contain_text(f"true 7, predicted {CELLS[-1][1]}")
        page.locator(".confusion-predicted select").select_option(label="7")
        sync_api.expect(title).to_contain_text(f"true 7, predicted 7: {int(cm[7, 7])} test images")
        sync_api.expect(images).to_have_count(min(int(cm[7, 7]), 24))
        page.locator(".jp-OutputArea-output:has(.confusion-output)").first.screenshot(
            path=SHOTS / "widgets_05_confusion.png"
        )
        latencies = report(page, "05")
        assert len(latencies["click on a matrix cell"]) == changes, latencies
        assert len(latencies["pick from the menus"]) == 2, latencies
    except Exception:
        page.screenshot(path=SHOTS / "widgets_05_failure.png", full_page=True)
        raise


def with_artifacts(folder: Path, read):
    """``read()`` with MNIST_ARTIFACTS_DIR pointing at ``folder``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MNIST_ARTIFACTS_DIR", str(folder))
        return read()


def test_feature_maps_follow_the_index_slider_in_jupyterlab(lab, page):
    try:
        run_all_cells(page, url(lab, 2), timeout_ms=120_000)
        output = page.locator(".features-output").first
        output.scroll_into_view_if_needed()
        page.evaluate(
            PROBE, [output.element_handle(), "arrow key on the index slider", ["keydown"]]
        )
        handle = page.locator(".widget-slider", has_text="test digit").locator(".noUi-handle").first
        start = int(readout(page, "test digit"))  # where the notebook's own check left it
        labels = data.load_split(train=False).labels
        for k in range(1, PRESSES + 1):
            handle.press("ArrowRight")
            i = start + k
            sync_api.expect(output).to_contain_text(f"test digit {i} (a {int(labels[i])})")
        digit = shown_images(output.inner_html(), "digit")[0]
        assert (digit == data.load_split(train=False).images[start + PRESSES].numpy()).all()
        assert len(shown_images(output.inner_html(), "block2")) == 1
        output.screenshot(path=SHOTS / "widgets_03_features.png")
        assert len(report(page, "03")["arrow key on the index slider"]) == PRESSES
    except Exception:
        page.screenshot(path=SHOTS / "widgets_03_failure.png", full_page=True)
        raise


def test_perturbation_level_and_its_accuracy_in_jupyterlab(lab, page, artifacts):  # noqa: F811
    try:
        run_all_cells(page, url(lab, 3), timeout_ms=300_000)
        output = page.locator(".perturb-output").first
        output.scroll_into_view_if_needed()
        page.evaluate(
            PROBE, [output.element_handle(), "a menu pick or arrow key", ["change", "keydown"]]
        )
        page.locator(".perturb-kind select").select_option(label="noise")
        sync_api.expect(output.locator(".perturb-title")).to_contain_text("noise 0:")
        handle = page.locator(".widget-slider", has_text="level").locator(".noUi-handle").first
        for k in range(1, 7):  # 0.05 per press, up to σ = 0.3
            handle.press("ArrowRight")
            sync_api.expect(output.locator(".perturb-title")).to_contain_text(
                f"noise {0.05 * k:g}:"
            )
        curves = with_artifacts(
            artifacts, lambda: runs.read_json(paths.profile_dir("quick") / "robustness.json", {})
        )["models"]["reference"]["noise"]
        point = next(r["accuracy"] for r in curves if abs(r["level"] - 0.3) < 1e-9)
        sync_api.expect(output.locator(".accuracy")).to_have_text(f"{100 * point:.1f} %")
        sync_api.expect(output.locator("img.perturbed")).to_have_count(8)
        output.screenshot(path=SHOTS / "widgets_07_perturb.png")
        assert len(report(page, "07")["a menu pick or arrow key"]) == 7
    except Exception:
        page.screenshot(path=SHOTS / "widgets_07_failure.png", full_page=True)
        raise
