"""The report: what the built PDF says (pdftotext), that artifact strings print instead of running,
one-line errors."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import unicodedata
from pathlib import Path

import pytest

from mnist_tools import report
from mnist_tools.__main__ import main as cli_main
from mnist_utils import config, paths

ACCURACY = 0.987654

BENCH = {
    "epoch_s": {
        # sorted, as bench.json
        "compute, channels-last (engine)": {
            "min": 9.5,
            "median": 9.8,
            "max": 11.1,
        },
        "engine": {"min": 10.1, "median": 10.5, "max": 12.0},
        "stock, 0 workers": {"min": 50.2, "median": 60.1, "max": 70.3},
        "stock, 2 workers": {"min": 40.0, "median": 41.23, "max": 44.4},
    },
    "stock": "stock, 2 workers",
    "speedup_vs_stock": 3.93,
    "engine_over_compute": 1.071,
    "epoch_tflop": 1.5,
    "pipelines": [
        "stock, 0 workers",
        "stock, 2 workers",
        "engine",
        "compute, channels-last (engine)",
    ],
    "speedup_vs_stock_bfloat16": 5.12,
    "engine_over_compute_bfloat16": 1.186,
    "two_processes_throughput": 1.41,
    "sgemm_gflops": 330.0,
    "floor_epoch_s": 4.55,
    "engine_share_of_floor": 0.433,
    "time_to_99_s": {"min": 50.5, "median": 55.5, "max": 58.0},
    "time_to_99_accuracy": {"mean": 0.9912, "min": 0.9899, "reached": 4, "seeds": 5},
    "peer_s": {"min": 110.5, "median": 111.1, "max": 120.0},
    "peer_accuracy": {"mean": 0.9902, "min": 0.9888, "reached": 3, "seeds": 5},
    "racer_over_peer": 0.4995,
    "steps_per_measurement": 150,
    "rounds": 5,
    "threads": 2,
    "cpu_count": 2,
    "device": "cpu",
}


def _write(path: Path, obj) -> None:
    """Write ``obj`` as JSON (NaN as the JSON extension ``NaN``, as json.dumps writes it), creating
    folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _row(variant: str, group: str, seeds: int, mean: float, sd: float | None, **extra) -> dict:
    """One experiments.json row, accuracies in percent as experiments.summarise writes them."""
    return {
        "variant": variant,
        "group": group,
        "description": f"the {variant} variant",
        "profile": "default",
        "seeds": seeds,
        "epochs": 10,
        "test_accuracy_mean": mean,
        "test_accuracy_sd": sd,
        "val_accuracy_mean": mean - 0.1,
        "train_seconds_mean": 151.2,
        **extra,
    }


def _experiments() -> dict:
    """A small experiments.json: two ablations, two improvements, the final rows; one sd NaN and one
    null."""
    final = {
        "name": "improved_clean-ensemble-tta",
        "chosen": "improved_clean",
        "improved": _row("improved", "final", 3, 99.64, 0.03),
        "clean": _row("improved_clean", "final", 3, 99.66, 0.04),
        "ensemble": {
            "test_accuracy": 0.9976,
            "members": ["a", "b", "c"],
            "tta": True,
            "epochs": 12,
            "val_accuracy_plain": 0.9964,
            "val_accuracy_tta": 0.9966,
        },
    }
    rows = [
        _row("no_aug", "ablation", 3, 99.01, 0.23),
        _row("reference", "ablation", 3, 99.11, 0.10),
        _row("onecycle", "improvement", 3, 99.39, 0.06),
        _row("elastic", "improvement", 1, 98.80, math.nan),
        final["improved"],
        final["clean"],
        _row("improved_clean-ensemble-tta", "final", 3, 99.76, None),
    ]
    flips = {
        "reference": {"6->9": 0.0, "9->6": 0.0, "2->5": 0.0, "5->2": 0.0},
        "flips": {"6->9": 57.7, "9->6": 28.0, "2->5": 43.0, "5->2": 28.7},
    }
    return {
        "profile": "default",
        "seeds": [0, 1, 2],
        "epochs": 10,
        "improved_epochs": 10,
        "final_seeds": [0, 1, 2],
        "finetune_epochs": 2,
        "flip_confusion": flips,
        "val_images": 5000,
        "improved_from": ["batchnorm", "third_conv", "onecycle", "label_smoothing"],
        "final": final,
        "rows": rows,
        "full_profile_only": [],
        "precision": "bfloat16",
        "recipe": {"name": "search_short", "description": "shorter"},
        "search": [
            {"variant": "search_base", "epochs": 10, "val_accuracy": 99.61},
            {"variant": "search_short", "epochs": 7, "val_accuracy": 99.66},
        ],
    }


def _analysis(accuracy: float, profile: str) -> dict:
    """An analysis.json with a 10x10 matrix holding 7 mistakes, 4 of them between 3 and 5; digit 4
    scores worst."""
    cm = [[10 if i == j else 0 for j in range(10)] for i in range(10)]
    cm[3][5], cm[5][3], cm[2][7] = 3, 1, 3
    per_class = [
        {"class": c, "precision": 0.9, "recall": 0.95, "f1": 0.925 - (c == 4) * 0.5, "support": 10}
        for c in range(10)
    ]
    return {
        "run": "reference",
        "profile": profile,
        "test_accuracy": accuracy,
        "errors": 7,
        "confusion_matrix": cm,
        "most_confused_pairs": [
            {"a": 3, "b": 5, "count": 4, "a_as_b": 3, "b_as_a": 1},
            {"a": 2, "b": 7, "count": 3, "a_as_b": 3, "b_as_a": 0},
        ],
        "per_class": per_class,
    }


@pytest.fixture
def env(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """Synthetic artifacts of a default-profile run (no bench.json) and empty figure files, env vars
    pointing at them."""
    art, rep = tmp_path / "artifacts", tmp_path / "report"
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(art))
    monkeypatch.setenv("MNIST_REPORT_DIR", str(rep))
    _write(
        art / "runs" / "default" / "metrics.json",
        {
            "reference": {
                "test_accuracy": ACCURACY,
                "test_loss": 0.0412345,
                "epochs": 10,
                "seed": 7,
                "train_seconds": 1234.56,
                "profile": "default",
                "train_images": 60000,
                "test_images": 10000,
                "device": "cpu",
                "threads": 2,
                "config": {
                    "lr": 0.001,
                    "batch_size": 64,
                    "schedule": "constant",
                    "augment": ["rotate", "crop", "translate"],
                },
            }
        },
    )
    _write(
        art / "runs" / "default" / "reference" / "history.json",
        [
            {
                "epoch": e,
                "train_loss": 0.5 / e,
                "test_loss": 0.1 / e,
                "test_accuracy": 0.97 + e / 1000,
                "epoch_seconds": 100.0,
            }
            for e in range(1, 11)
        ],
    )
    run = art / "runs" / "default"
    _write(
        run / "data_stats.json",
        {
            "train_images": 60000,
            "test_images": 10000,
            "mean": 0.13066,
            "std": 0.30811,
            "train_counts": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
        },
    )
    layers = [
        ("Conv2d(1, 32, kernel_size=(3, 3))", [32, 28, 28], 320),
        ("ReLU()", [32, 28, 28], 0),
        ("Conv2d(32, 64, kernel_size=(3, 3))", [64, 14, 14], 18496),
        ("Flatten(start_dim=1)", [3136], 0),
        ("Linear(in_features=3136, out_features=128)", [128], 401536),
        ("Linear(128, 10)", [10], 1290),
    ]
    _write(
        art / "runs" / "default" / "model_table.json",
        {
            "total_parameters": 421642,
            "rows": [
                {"index": i, "layer": name, "output_shape": shape, "parameters": n}
                for i, (name, shape, n) in enumerate(layers)
            ],
        },
    )
    _write(art / "runs" / "default" / "analysis.json", _analysis(ACCURACY, "default"))
    _write(art / "runs" / "default" / "experiments.json", _experiments())
    fits = {
        "temperature": 1.151,
        "ece_before": 0.00163,
        "ece_after": 0.00133,
        "nll_before": 0.02594,
        "nll_after": 0.02556,
        "fit_split": "test half 1",
        "eval_split": "test half 2",
        "fit_images": 5000,
        "eval_images": 5000,
    }
    _write(
        run / "calibration.json",
        {"n_bins": 15, "models": {"reference": fits, "improved-seed0": fits}},
    )
    points = {
        kind: [{"level": lv, "accuracy": 0.99 - lv / 1000} for lv in (0, 30)]
        for kind in ("rotation", "noise")
    }
    _write(
        run / "robustness.json",
        {
            "test_images": 10000,
            "models": {"reference": points},
            "levels": {"rotation": [0, 30], "noise": [0, 30]},
        },
    )
    for names in report.FIGURES.values():
        for name in names:
            (rep / "figures" / "default").mkdir(parents=True, exist_ok=True)
            (rep / "figures" / "default" / f"{name}.pdf").write_bytes(b"")
    return art, rep


# ---------------------------------------------------------------------- the PDF (slow: latexmk)


def _skip_or_fail(reason: str) -> None:
    """Skip locally; under CI (env CI set) a missing prerequisite is a failure."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def figure_pdf(tmp_path_factory) -> Path:
    """One small real PDF figure (LaTeX cannot include the fixture's empty files)."""
    for tool in ("latexmk", "pdftotext"):
        if shutil.which(tool) is None:
            _skip_or_fail(
                f"{tool} is not installed, so the PDF cannot be built and read: "
                f"{report.LATEX_INSTALL} poppler-utils"
            )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = tmp_path_factory.mktemp("figure") / "figure.pdf"
    fig = plt.figure(figsize=(6, 3))
    fig.savefig(path)
    plt.close(fig)
    return path


def _pdf_text(rep: Path, figure: Path, strict: bool = True) -> str:
    """Build the report in ``rep`` (figures replaced by ``figure``) and return its text, one line
    per printed line."""
    for pdf in (rep / "figures").rglob("*.pdf"):
        shutil.copy(figure, pdf)
    pdf = report.build(strict=strict)
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    return "\n".join(
        " ".join(line.split()) for line in unicodedata.normalize("NFKC", text).splitlines()
    )


@pytest.mark.slow
def test_pdf_says_what_the_artifacts_say(env, figure_pdf):
    _, rep = env
    text = _pdf_text(rep, figure_pdf)
    flat = " ".join(text.split())
    assert "test accuracy of 98.77 %" in flat and "default profile" in flat
    assert "Of its 421,642 trainable parameters, 401,536 (95.2 %) sit in one Linear layer" in flat
    assert (
        "rarest training digit, 5, has 5,421 images" in flat
        and "most often confusing 3 and 5" in flat
    )
    # one table row
    assert re.search(r"onecycle: the onecycle variant 3 10 99\.39 ± 0\.06 99\.29 151", text)
    assert re.search(r"elastic: the elastic variant 1 10 98\.80 98\.70 151", text)  # NaN sd: no ±
    # null sd: no ± (_ prints as a rule)
    assert re.search(r"improved.clean-ensemble-tta: .* 99\.76 99\.66 151", text)
    assert (
        "99.76 % test accuracy, with test-time shifts" in flat
        and "6s predicted as 9 goes from 0.0 to 57.7" in flat
    )
    assert "beat the reference recipe by more than the seed-to-seed standard deviation" in flat
    assert "are: onecycle." in flat  # elastic, one seed, is below the reference
    assert "T = 1.151" in flat and "ECE from 0.16 % to 0.13 %" in flat
    for title in (
        "Introduction",
        "Data preparation and augmentation",
        "CNN architecture",
        "Training and evaluation",
        "Analysis",
        "Experiments",
        "How far to trust the model",
        "Conclusion",
    ):
        assert re.search(rf"^\d+ {title}$", text, re.MULTILINE), title
    assert "Training speed" not in flat and "make bench" not in flat and "not run" not in flat
    assert "??" not in flat


@pytest.mark.slow
def test_bench_json_and_verdicts_add_their_section_and_column(env, figure_pdf):
    art, rep = env
    _write(art / "bench.json", BENCH)
    experiments = _experiments()
    for row in experiments["rows"]:
        row |= {"verdict": "not distinguishable", "p_value": 0.21}
    experiments["rows"][2] |= {"verdict": "better", "p_value": 0.004}
    experiments["full_profile_only"] = [
        {"variant": "rotate_only", "description": "RandomRotation(10) alone"},
        {"variant": "elastic", "description": "elastic distortion"},
    ]
    _write(art / "runs" / "default" / "experiments.json", experiments)
    text = _pdf_text(rep, figure_pdf)
    flat = " ".join(text.split())
    assert (
        re.search(r"^\d+ Training speed$", text, re.MULTILINE)
        and "the training speed (Section 6)" in flat
    )
    assert (
        "is 3.93 times faster than the faster stock torchvision pipeline (stock, 2 workers)" in flat
    )
    assert (
        "(medians). With the bfloat16 forward pass of the study’s runs it is 5.12 times faster "
        "than that stock" in flat
    )
    assert (
        "pipeline, and within a factor of 1.186 of the same compute in bfloat16. The hardware"
        in flat
    )
    assert (
        "evaluation in 55.5 s (median; 50.5 to 58.0 s) over 5 seeds, with 99.12 % mean and 98.99 "
        "% minimum" in flat
    )
    assert (
        "Two 1-thread processes side by side, as the study’s Ray tasks train, give 1.41 times the "
        "throughput" in flat
    )
    assert "4 of 5 seeds at 99 %" in flat and "the engine runs at 43 %" in flat
    assert (
        "took 111.1 s (median; 110.5 to 120.0 s) with 99.02 % mean and 98.88 % minimum test "
        "accuracy (3 of 5 seeds at 99 % or more): the project’s recipe took 0.50 times its time."
        in flat
    )
    assert re.search(r"engine 10\.1 10\.5 12\.0", text) and re.search(
        r"hardware floor .* 4\.5", text
    )
    assert re.search(
        r"stock, 0 workers 50\.2 .*stock, 2 workers 40\.0 .*engine 10\.1 .*compute, channels-last",
        text,
        re.S,
    )
    assert (
        "Verdict" in text and re.search(r"onecycle: .* 151 better", text) and "(p = 0.004)" in flat
    )
    assert "(verdict “better” in Table 5) are: onecycle." in flat
    assert "(full profile only): rotate only (RandomRotation(10) alone), elastic (elastic" in flat


@pytest.mark.slow
def test_artifact_strings_are_printed_not_run(env, figure_pdf):
    art, rep = env
    # where LaTeX, run in the report folder, would \input it from
    (rep / "secret.tex").write_text("SECRETCONTENT\n")
    metrics = json.loads((art / "runs" / "default" / "metrics.json").read_text())
    metrics["reference"]["device"] = r"cpu \input{secret} _&%$#"
    _write(art / "runs" / "default" / "metrics.json", metrics)
    analysis = _analysis(ACCURACY, "default")
    analysis["most_confused_pairs"][0]["a"] = r"\input{secret}"
    _write(art / "runs" / "default" / "analysis.json", analysis)
    # the long strings overfill their cells
    flat = " ".join(_pdf_text(rep, figure_pdf, strict=False).split())
    # (_ prints as a rule, which pdftotext omits)
    assert r"on cpu \input{secret} &%$# with 2 threads" in flat
    assert r"most often confusing \input{secret} and 5" in flat
    assert "SECRETCONTENT" not in flat


@pytest.mark.slow
def test_pdf_from_this_environments_artifacts(tmp_path, monkeypatch):
    """Under `make test` the notebooks have just written quick-profile artifacts: the real ones
    build too."""
    profile = config.profile_from_env()
    missing = report.missing_inputs(profile)
    if missing:
        _skip_or_fail(
            "no artifacts to build the report from (run `make test` or `make run-all`): "
            f"{missing[0]} and {len(missing) - 1} more are missing"
        )
    for tool in ("latexmk", "pdftotext"):
        if shutil.which(tool) is None:
            _skip_or_fail(f"{tool} is not installed: {report.LATEX_INSTALL} poppler-utils")
    artifacts = paths.artifacts_dir()
    shutil.copytree(paths.figures_dir(profile), tmp_path / "figures" / profile)  # a private copy
    monkeypatch.setenv("MNIST_REPORT_DIR", str(tmp_path))
    pdf = report.build(profile)
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    flat = " ".join(unicodedata.normalize("NFKC", text).split())
    metrics = report.context(profile)["metrics"]
    assert f"test accuracy of {100 * metrics['test_accuracy']:.2f} %" in flat
    assert f"{profile} profile" in flat
    assert ("Training speed" in flat) == (artifacts / "bench.json").is_file()


# ---------------------------------------------------------------------- rendering and errors (fast)


def test_artifact_strings_are_escaped_in_the_latex(env):
    art, _ = env
    experiments = _experiments()
    experiments["rows"][0]["description"] = r"\input{/etc/hostname} \write18{ls} _&%$#^~"
    _write(art / "runs" / "default" / "experiments.json", experiments)
    tex = report.render()
    assert r"\input{/etc/hostname}" not in tex and r"\write18" not in tex
    assert r"\textbackslash{}input\{/etc/hostname\}" in tex and r"\_\&\%\$\#" in tex


def _copy_profile(art: Path, rep: Path, profile: str, accuracy: float) -> None:
    """Make ``profile``'s artifacts and figures a copy of default's, its run at ``accuracy``."""
    shutil.copytree(art / "runs" / "default", art / "runs" / profile)
    shutil.copytree(rep / "figures" / "default", rep / "figures" / profile)
    metrics = json.loads((art / "runs" / profile / "metrics.json").read_text())
    metrics["reference"] |= {"profile": profile, "test_accuracy": accuracy}
    _write(art / "runs" / profile / "metrics.json", metrics)
    _write(art / "runs" / profile / "analysis.json", _analysis(accuracy, profile))
    _write(art / "runs" / profile / "experiments.json", dict(_experiments(), profile=profile))


def test_each_profile_has_its_own_report_and_a_quick_run_never_changes_the_default_one(env):
    art, rep = env
    _copy_profile(art, rep, "quick", 0.7145)
    calibration = json.loads((art / "runs" / "default" / "calibration.json").read_text())
    calibration["models"]["reference"]["temperature"] = 2.222
    _write(art / "runs" / "quick" / "calibration.json", calibration)  # what 07 quick writes
    quick = report.render("quick")
    assert "71.45" in quick and "98.77" not in quick and "2.222" in quick
    assert r"\textbf{quick profile}" in quick
    default = report.render()
    assert "98.77" in default and "71.45" not in default and r"\textbf{default profile}" in default
    assert "1.151" in default  # the default calibration, not the quick one
    assert report.pdf_path("quick").name == "report-quick.pdf"
    assert report.pdf_path("default").name == "report.pdf"


def test_notebooks_write_their_json_and_figures_per_profile():
    """Every JSON and figure a notebook writes goes to its profile's folders (never default's)."""
    import json as json_

    for path in sorted((paths.ROOT / "notebooks").glob("0*.ipynb")):
        cells = json_.loads(path.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert not re.search(r"artifacts_dir\(\) / \"\w+\.json", code), path.name
        calls = re.findall(r"save_figure\(([^()]*)\)", code)
        assert all(call.rstrip().endswith(", profile") for call in calls), (path.name, calls)


@pytest.mark.parametrize(
    "where, content, expect",
    [
        ("metrics", "bad", r"metrics\.json: reference\.test_accuracy is 'bad', not a number"),
        ("metrics", math.nan, r"metrics\.json: reference\.test_accuracy is None, not a number"),
        (
            "analysis",
            ["default", "quick"],
            r"analysis\.json is from the \['default', 'quick'\] profile, not 'default'",
        ),
    ],
)
def test_a_wrong_type_in_an_artifact_is_one_line_naming_the_file(
    env, capsys, where, content, expect
):
    art, _ = env
    run = art / "runs" / "default"
    if where == "metrics":
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["reference"]["test_accuracy"] = content
        _write(run / "metrics.json", metrics)
    else:
        _write(run / "analysis.json", dict(_analysis(ACCURACY, "default"), profile=content))
    assert cli_main(["report", "generate", "--profile", "default"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(expect, err) and "make run-all" in err, err


@pytest.mark.parametrize(
    "rel, content",
    [
        ("runs/default/experiments.json", dict(_experiments(), rows="oops")),
        ("bench.json", {"epoch_s": 3}),
    ],
)
def test_a_malformed_artifact_is_named_not_only_the_template_line(env, rel, content):
    art, _ = env
    _write(art / rel, content)
    with pytest.raises(report.ReportError) as err:
        report.render()
    assert str(err.value).startswith(f"{art / rel} lacks what main.tex.j2 line"), str(err.value)


def test_an_overlong_artifact_string_is_refused_naming_the_file(env):
    art, _ = env
    analysis = dict(_analysis(ACCURACY, "default"), run="x" * 200_000)
    _write(art / "runs" / "default" / "analysis.json", analysis)
    with pytest.raises(report.ReportError, match=r"analysis\.json holds a string of 200,000 char"):
        report.render()


def test_every_missing_file_is_named_on_one_line_with_its_notebook(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("MNIST_REPORT_DIR", str(tmp_path / "r"))
    with pytest.raises(report.ReportError) as err:
        report.render()
    msg = str(err.value)
    assert "\n" not in msg and "make run-all" in msg
    for name, nb in [
        ("metrics.json", "04_training"),
        ("history.json", "04_training"),
        ("data_stats.json", "01_data"),
        ("model_table.json", "03_model"),
        ("analysis.json", "05_analysis"),
        ("experiments.json", "06_"),
        ("calibration.json", "07_"),
        ("robustness.json", "07_"),
        ("experiments.pdf", "06_"),
        *((f"{f}.pdf", nb) for nb, names in report.FIGURES.items() for f in names),
    ]:
        assert re.search(rf"{re.escape(name)} \(notebooks/{nb}", msg), name
    assert "bench.json" not in msg  # optional: the section is left out


def test_one_missing_file_is_named_alone(env):
    art, _ = env
    (art / "runs" / "default" / "calibration.json").unlink()
    with pytest.raises(
        report.ReportError, match=r"1 missing file\(s\): \S+calibration\.json \(notebooks/07_"
    ):
        report.render()


@pytest.mark.parametrize(
    "rel",
    [
        "runs/default/data_stats.json",
        "runs/default/experiments.json",
        "runs/default/reference/history.json",
    ],
)
def test_malformed_json_names_the_file(env, rel):
    art, _ = env
    (art / rel).write_text('{"truncated": ')
    with pytest.raises(
        report.ReportError, match=rf"{re.escape(str(art / rel))} is not readable JSON.*make run-all"
    ):
        report.render()


@pytest.mark.parametrize(
    "rel, content, names",
    [
        ("runs/default/data_stats.json", {"train_images": 1}, "data_stats"),
        ("runs/default/reference/history.json", [], "history"),
        (
            "runs/default/experiments.json",
            {k: v for k, v in _experiments().items() if k != "rows"},
            "rows",
        ),
    ],
)
def test_an_artifact_without_the_expected_keys_names_what_is_read(env, rel, content, names):
    art, _ = env
    _write(art / rel, content)
    with pytest.raises(report.ReportError) as err:
        report.render()
    msg = str(err.value)
    assert "\n" not in msg and names in msg and "main.tex.j2 line" in msg and "make run-all" in msg


def test_metrics_without_reference_entry(env):
    art, _ = env
    _write(art / "runs" / "default" / "metrics.json", {"other": {}})
    with pytest.raises(report.ReportError, match="no 'reference' entry.*04_training"):
        report.render()


def test_stale_analysis_is_refused(env):
    art, _ = env
    _write(art / "runs" / "default" / "analysis.json", _analysis(0.5, "default"))
    with pytest.raises(report.ReportError, match="does not match.*05_analysis"):
        report.render()


def test_cli_prints_one_line_without_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("MNIST_REPORT_DIR", str(tmp_path / "r"))
    assert cli_main(["report", "build"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "make run-all" in err


def test_missing_latexmk_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(report.shutil, "which", lambda name: None)
    with pytest.raises(
        report.ReportError, match="apt-get install -y --no-install-recommends texlive-latex-base"
    ):
        report.run_latexmk(tmp_path, tmp_path / "main.tex")


def test_latex_problems_finds_undefined_refs_and_wide_boxes():
    log = (
        "Overfull \\hbox (2.1pt too wide) in paragraph at lines 3--4\n"
        "Overfull \\hbox (12.5pt too wide) in paragraph at lines 9--10\n"
        "LaTeX Warning: Reference `fig:x' on page 2 undefined on input line 7.\n"
        "LaTeX Warning: There were undefined references.\n"
    )
    problems = report.latex_problems(log)
    assert len(problems) == 3 and not any("2.1pt" in p for p in problems)


def test_latex_error_is_found_after_text_on_its_line():
    log = "(./main.tex\nsome text (./main.tex! Unable to read an entire line.\nl.3 ...\n"
    assert report.latex_error(log) == "! Unable to read an entire line."
    first = "! Undefined control sequence."
    assert report.latex_error(f"{first}\nx ! Later.\n") == first


@pytest.mark.slow
def test_a_failed_build_keeps_the_previous_pdf(env, figure_pdf):
    art, rep = env
    good = Path(_pdf_text(rep, figure_pdf) and report.pdf_path("default")).read_bytes()
    metrics = json.loads((art / "runs" / "default" / "metrics.json").read_text())
    metrics["reference"]["device"] = "x" * 400  # an overfull box: the strict build fails
    _write(art / "runs" / "default" / "metrics.json", metrics)
    with pytest.raises(report.ReportError, match="Overfull.*previous PDF was kept"):
        report.build()
    assert report.pdf_path("default").read_bytes() == good


@pytest.mark.slow
def test_concurrent_builds_and_stale_latex_state_never_break_a_build(env, figure_pdf):
    from concurrent.futures import ThreadPoolExecutor

    _, rep = env
    for pdf in (rep / "figures").rglob("*.pdf"):
        shutil.copy(figure_pdf, pdf)
    (rep / "report.aux").write_text("\\newlabel{sec:analysis}{{1}{1}\n")  # an interrupted build's
    (rep / "report.fdb_latexmk").write_text("garbage\n")
    with ThreadPoolExecutor(2) as pool:
        built = list(pool.map(lambda _: report.build(), range(2)))
    assert built == [report.pdf_path("default")] * 2 and report.build().read_bytes()[:5] == b"%PDF-"
    assert not list(rep.glob(".build-*"))  # no private build folder is left behind
