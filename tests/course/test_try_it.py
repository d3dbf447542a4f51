"""Every "Try it" prompt does what it promises: each test edits a notebook as its prompt says, runs
it in the quick profile (nbclient, a private artifacts folder) and checks the promised effect."""

from __future__ import annotations

import ast
import json
import re

import pytest
from notebook_edits import prompts, run

pytestmark = pytest.mark.slow


def reference_run(workdir) -> tuple[list[dict], str]:
    """The history and fingerprint of the quick profile's ``reference`` folder."""
    folder = workdir / "artifacts" / "runs" / "quick" / "reference"
    return json.loads((folder / "history.json").read_text()), json.loads(
        (folder / "lesson.json").read_text()
    )["digest"]


def test_04_a_new_learning_rate_trains_afresh_keeps_the_reference_and_undoing_it_brings_it_back(
    tmp_path,
):
    assert "`lr=cfg.lr` to `lr=3e-3`" in prompts("04_training.ipynb")
    run("04_training.ipynb", tmp_path)
    first, digest = reference_run(tmp_path)
    checkpoint = (tmp_path / "artifacts/runs/quick/reference/checkpoint.pt").read_bytes()

    printed = "".join(run("04_training.ipynb", tmp_path, [("lr=cfg.lr, fused", "lr=3e-3, fused")]))
    edited, edited_digest = reference_run(tmp_path)
    assert "0/1 epochs" in printed and edited_digest != digest, "the edited run trains afresh"
    assert [row["lr"] for row in edited] == [3e-3], (
        "the history records the rate the optimizer used"
    )
    kept = tmp_path / f"artifacts/runs/quick/reference@{digest}"
    assert (kept / "checkpoint.pt").read_bytes() == checkpoint, (
        "the reference run is kept, byte for byte"
    )

    printed = "".join(run("04_training.ipynb", tmp_path))
    assert "1/1 epochs" in printed and reference_run(tmp_path) == (first, digest), (
        "undone: reused, not retrained"
    )
    assert (tmp_path / f"artifacts/runs/quick/reference@{edited_digest}/checkpoint.pt").is_file()


def test_04_without_augmentation_the_training_loss_falls_below_the_augmented_runs(tmp_path):
    call = "x = augment.augment_batch(augment.to_unit(images[idx].to(device)), g)"
    assert "Remove the `augment.augment_batch(...)` call" in prompts("04_training.ipynb")
    run("04_training.ipynb", tmp_path)
    augmented, _ = reference_run(tmp_path)
    printed = "".join(
        run("04_training.ipynb", tmp_path, [(call, "x = augment.to_unit(images[idx].to(device))")])
    )
    plain, _ = reference_run(tmp_path)
    assert re.search(r"0/1 epochs", printed), "trained afresh, not resumed"
    assert plain[-1]["train_loss"] < augmented[-1]["train_loss"]


def off_by(printed: str, dtype: str) -> float:
    """How far the streaming mean computed with ``dtype`` sums is from the exact one (notebook 1's
    dtypes cell)."""
    return float(re.search(rf"torch\.{dtype} +mean \S+ \(off by (\S+)\)", printed)[1])


def test_01_bfloat16_sums_miss_the_mean_in_the_second_decimal_and_the_test_set_looks_alike(
    tmp_path,
):
    text = prompts("01_data_exploration.ipynb")
    assert (
        "Add `torch.bfloat16` to `dtypes`" in text
        and "Add `print(streaming_mean_std(test_ds))`" in text
    )
    dtypes = "dtypes = [torch.float64, torch.float32]"
    # the end of the dtypes loop
    last = '        f"std {s:.6f} (off by {abs(s - exact_std):.0e})"\n    )'
    printed = next(
        out
        for out in run(
            "01_data_exploration.ipynb",
            tmp_path,
            [
                (dtypes, "dtypes = [torch.float64, torch.float32, torch.bfloat16]"),
                (last, last + "\nprint(streaming_mean_std(test_ds))"),
            ],
        )
        if "off by" in out
    )
    assert off_by(printed, "float64") < 1e-6 and off_by(printed, "float32") < 1e-6
    assert 1e-3 < off_by(printed, "bfloat16") < 1e-2, "wrong in the second decimal, not the first"
    # the printed tuple
    test_mean, test_std, test_n = ast.literal_eval(printed.strip().splitlines()[-1])
    assert (
        test_n == 10_000 * 28 * 28
        and abs(test_mean - 0.1307) < 0.005
        and abs(test_std - 0.3081) < 0.005
    )


def test_02_a_wider_angle_range_draws_angles_beyond_ten_degrees(tmp_path):
    assert "augment.AugmentSpec(degrees=45)" in prompts("02_augmentation.ipynb")
    draw = "p = augment.sample_params(len(x), g)\n    angles.append"
    wide = (
        "p = augment.sample_params(len(x), g, augment.AugmentSpec(degrees=45))\n    angles.append"
    )
    largest = [
        float(m[1])
        for out in run("02_augmentation.ipynb", tmp_path, [(draw, wide)])
        if (m := re.search(r"largest \|angle\| drawn: (\S+)°", out))
    ]
    assert len(largest) == 1 and 10 < largest[0] <= 45


def test_03_no_padding_and_stride_2_shrink_the_edge_map_to_13(tmp_path):
    assert "`padding, stride = 0, 2`" in prompts("03_model.ipynb")
    printed = "".join(
        run("03_model.ipynb", tmp_path, [("padding, stride = 1, 1", "padding, stride = 0, 2")])
    )
    assert "(1, 1, 28, 28) -> (1, 1, 13, 13): (28 + 2·0 − 3) // 2 + 1 = 13" in printed


def test_05_every_confused_pair_is_listed_without_the_slice(tmp_path):
    assert "Delete `[:6]`" in prompts("05_analysis.ipynb")
    run("04_training.ipynb", tmp_path)
    counts = [
        int(m[1])
        for out in run("05_analysis.ipynb", tmp_path)
        if (m := re.search(r"lists (\d+) of", out))
    ]
    edited = [
        int(m[1])
        for out in run("05_analysis.ipynb", tmp_path, [("[:6]\npd.DataFrame", "\npd.DataFrame")])
        if (m := re.search(r"lists (\d+) of", out))
    ]
    assert counts == [6] and 6 < edited[0] <= 45


def test_08_a_small_seven_in_a_corner_reads_alike_with_a_thicker_stroke(tmp_path):
    assert (
        "`pad.clear()` and `small = pad.draw([(180, 170),\n  (260, 170), (210, 270)])`"
        in prompts("08_draw_a_digit.ipynb")
    )
    last = "fig = plots.pen_to_prediction(image, ink, fitted, seven_reading)"
    look = (
        "\nfrom scipy import ndimage\nfor r in (seven_reading, small):\n"
        '    centre = [float(c) for c in ndimage.center_of_mass(r["input"].numpy())]\n'
        '    print("seen", r["top3"][0][0], int((r["input"] > 128).sum()), centre)'
    )
    run("04_training.ipynb", tmp_path)
    printed = "".join(
        run(
            "08_draw_a_digit.ipynb",
            tmp_path,
            [
                (
                    last,
                    last
                    + "\npad.clear()\nsmall = pad.draw([(180, 170), (260, 170), (210, 270)])"
                    + look,
                )
            ],
        )
    )
    (big_digit, big_ink, big_centre), (small_digit, small_ink, small_centre) = [
        (int(m[1]), int(m[2]), ast.literal_eval(m[3]))
        for m in re.finditer(r"seen (\d) (\d+) (\[.*\])", printed)
    ]
    assert big_digit == small_digit == 7, "the same answer"
    assert small_ink > big_ink, "a thicker stroke"
    assert all(abs(c - 14) < 1.5 for c in (*big_centre, *small_centre)), (
        "the same place: centred by mass"
    )


def test_06_a_variant_of_your_own_trains_alone_and_gets_its_row(tmp_path):
    text = prompts("06_experiments.ipynb")
    mine = (
        'variants.append(experiments.Variant("lr_5e-4", "improvement", '
        '"Adam at lr 5e-4", {"lr": 5e-4}))'
    )
    assert mine in text and "`alpha=0.05` in `verdict` to 0.01" in text
    results = "results = {v.name: experiments.run_variant("
    run("04_training.ipynb", tmp_path)
    run(
        "06_experiments.ipynb",
        tmp_path,
        [(results, mine + "\n" + results), ("alpha=0.05", "alpha=0.01")],
    )
    study = json.loads((tmp_path / "artifacts/runs/quick/experiments.json").read_text())
    row = next(r for r in study["rows"] if r["variant"] == "lr_5e-4")
    assert row["group"] == "improvement" and row["seeds"] == len(study["seeds"])
    metrics = json.loads((tmp_path / "artifacts/runs/quick/metrics.json").read_text())
    assert metrics["lr_5e-4-seed0"]["config"]["lr"] == 5e-4, "trained with the rate it names"
    assert all(r["verdict"] not in ("better", "worse") or r["p_holm"] < 0.01 for r in study["rows"])


def test_07_five_bins_change_the_ece_and_nothing_else(tmp_path, monkeypatch):
    assert "`n_bins = 15` to `n_bins = 5`" in prompts("07_calibration_robustness.ipynb")
    for notebook in ("04_training.ipynb", "05_analysis.ipynb"):
        run(notebook, tmp_path)
    run("07_calibration_robustness.ipynb", tmp_path, [("n_bins = 15", "n_bins = 5")])
    five = json.loads((tmp_path / "artifacts/runs/quick/calibration.json").read_text())
    assert five["n_bins"] == 5
    from conftest import lesson_namespace

    from mnist_utils import calibration, checkpoints, config, engine, runs

    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    model, cfg, _ = checkpoints.load_model(
        tmp_path / "artifacts/runs/quick/reference/checkpoint.pt"
    )
    fit, evaluate, _ = calibration.calibration_splits(
        cfg, runs.test_split_for(config.for_profile(cfg, "quick"))
    )
    log_probs = engine.predict_log_probs(model, evaluate.images)
    lesson = lesson_namespace("07_calibration_robustness.ipynb")
    reference = five["models"]["reference"]
    for bins in (5, 15):  # the notebook's numbers are the lesson's at 5 bins, and differ at 15
        ece = lesson["expected_calibration_error"](log_probs.exp(), evaluate.labels, bins)
        assert (ece == reference["ece_before"]) == (bins == 5)
    temperature = lesson["fit_temperature"](engine.predict_log_probs(model, fit.images), fit.labels)
    assert temperature == pytest.approx(reference["temperature"], rel=1e-9), (
        "no bins in the temperature"
    )
