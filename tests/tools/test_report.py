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

from mnist_tools import latex, report
from mnist_tools.__main__ import main as cli_main
from mnist_utils import config, paths

ACCURACY = 0.987654

BENCH = {  # the schema of mnist_tools.bench.measure
    "epoch_s": {
        "stock, 0 workers": {"min": 50.2, "median": 60.1, "max": 70.3},
        "stock, 2 workers": {"min": 40.0, "median": 41.23, "max": 44.4},
        "engine, float32 (notebook 04)": {"min": 10.1, "median": 10.5, "max": 12.0},
        "engine, bfloat16": {"min": 8.1, "median": 8.4, "max": 9.0},
        "study: engine, bfloat16, two 1-thread processes": {"min": 6.0, "median": 6.2, "max": 6.9},
        "compute, float32": {"min": 9.5, "median": 9.8, "max": 11.1},
        "compute, bfloat16": {"min": 7.0, "median": 7.2, "max": 7.9},
        "augmentation alone": {"min": 0.5, "median": 0.6, "max": 0.7},
    },
    "epoch_s_all": {},
    "stock": "stock, 2 workers",
    "epoch_tflop": 1.5,
    "sgemm_gflops": 330.0,
    "bf16_gflops": 610.0,
    "study_bf16_gflops": 540.0,
    "floor_epoch_s": 4.55,
    "bf16_floor_epoch_s": 2.78,
    "engine_vs_stock": 3.93,
    "engine_share_of_floor": 0.433,
    "study_share_of_bf16_floor": 0.448,
    "profile": {
        "ms": {"convolutions": 3.25, "max-pooling": 1.5, "other": 1.75, "Adam": 0.25},
        "total_ms": 5.0,
        "floor_ms": 2.1,
        "steps": 20,
    },
    "racer": {
        "seconds": {"min": 3.1, "median": 3.4, "max": 3.9},
        "mean": 0.9921,
        "min": 0.9903,
        "reached": 5,
        "seeds": 5,
    },
    "peer": {
        "seconds": {"min": 9.1, "median": 9.8, "max": 11.0},
        "mean": 0.9902,
        "min": 0.9888,
        "reached": 3,
        "seeds": 5,
    },
    "race_all": {"racer": [], "peer": []},
    "peer_recipe": "https://github.com/tuomaso/train_mnist_fast",
    "racer_over_peer": 0.347,
    "steps": 150,
    "rounds": 5,
    "cpu_count": 2,
}


def _write(path: Path, obj) -> None:
    """Write ``obj`` as JSON (NaN as the JSON extension ``NaN``, as json.dumps writes it), creating
    folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _row(variant: str, group: str, seeds: int, mean: float, sd: float | None, **extra) -> dict:
    """One experiments.json row, accuracies in percent as notebook 06's summarise writes them."""
    return {
        "variant": variant,
        "group": group,
        "control": "reference",
        "description": f"the {variant} variant",
        "profile": "default",
        "seeds": seeds,
        "epochs": 6,
        "test_accuracy_mean": mean,
        "test_accuracy_sd": sd,
        "val_accuracy_mean": mean - 0.1,
        "train_seconds_mean": 151.2,
        "difference": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "p_value": math.nan,
        "p_holm": math.nan,
        "verdict": "cannot tell: needs 2 seeds or more",
        **extra,
    }


def _verdict(verdict: str, difference: float, low: float, high: float, p: float) -> dict:
    """The comparison fields of a row: its verdict, difference, 95 % interval and Holm p."""
    return {
        "verdict": verdict,
        "difference": difference,
        "ci_low": low,
        "ci_high": high,
        "p_value": p / 2,
        "p_holm": p,
    }


SEED_REPORT = [
    {
        "claim": "98.93 % test accuracy with the recipe",
        "measured": "reference arm: 99.11 % [98.86, 99.36], 3 seeds, 6 epochs",
        "finding": "cannot tell: the interval holds it",
    },
    {
        "claim": "the most confused pairs are 2↔7, 4↔9 and 6↔5",
        "measured": "top 3 here: 3↔5 (4), 2↔7 (3)",
        "finding": "cannot tell: 1 of 3 agree, but one model's 7 errors cannot rank the pairs",
    },
    {
        "claim": "a third convolutional layer would help",
        "measured": "third_conv − reference: +0.21 points [+0.05, +0.37]",
        "finding": "supports",
    },
    {
        "claim": "better augmentation would help: wider ranges of the same three transforms",
        "measured": "strong_aug − reference: −0.31 points [−0.52, −0.10]",
        "finding": "contradicts",
    },
]


def _experiments() -> dict:
    """A small experiments.json of the default profile's shape: the reference arm, four single
    changes (one against lr_3e-3, one of one seed), the final rows; one sd NaN and one null."""
    final = {
        "name": "improved_clean-ensemble-tta",
        "chosen": "improved_clean",
        "improved": _row(
            "improved", "final", 3, 99.34, 0.03, **_verdict("better", 0.23, 0.1, 0.36, 0.01)
        ),
        "clean": _row(
            "improved_clean", "final", 3, 99.46, 0.04, **_verdict("better", 0.35, 0.2, 0.5, 0.004)
        ),
        "ensemble": {
            "test_accuracy": 0.9952,
            "members": ["a", "b", "c"],
            "tta": True,
            "epochs": 3,
            "val_accuracy_plain": 0.9964,
            "val_accuracy_tta": 0.9968,
        },
    }
    final["improved"]["epochs"], final["clean"]["epochs"] = 2, 3
    rows = [
        _row("reference", "ablation", 3, 99.11, 0.10, verdict="(the baseline)", difference=0.0),
        _row(
            "lr_3e-3",
            "improvement",
            3,
            99.0,
            0.05,
            **_verdict("no difference shown", -0.11, -0.35, 0.13, 0.4),
        ),
        _row(
            "onecycle",
            "improvement",
            3,
            99.39,
            0.06,
            control="lr_3e-3",
            **_verdict("better", 0.39, 0.2, 0.58, 0.004),
        ),
        _row(
            "strong_aug",
            "improvement",
            3,
            98.80,
            0.07,
            **_verdict("worse", -0.31, -0.52, -0.1, 0.02),
        ),
        _row("elastic", "improvement", 1, 98.70, math.nan),
        final["improved"],
        final["clean"],
        _row("improved_clean-ensemble-tta", "final", 3, 99.52, None, verdict="", epochs=3),
    ]
    flips = {
        "reference": {"6->9": 0.0, "9->6": 0.0, "2->5": 0.0, "5->2": 0.0},
        "flips": {"6->9": 57.7, "9->6": 28.0, "2->5": 43.0, "5->2": 28.7},
    }
    return {
        "profile": "default",
        "seeds": [0, 1, 2],
        "epochs": 6,
        "improved_epochs": 2,
        "final_seeds": [0, 1, 2],
        "finetune_epochs": 1,
        "flip_confusion": flips,
        "val_images": 5000,
        "improved_from": ["batchnorm", "third_conv", "onecycle", "label_smoothing"],
        "final": final,
        "rows": rows,
        "full_profile_only": [],
        "precision": "bfloat16",
        "recipe": {"name": "search_base", "description": "the base recipe"},
        "search": [],
        "seed_report": SEED_REPORT,
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


def _provenance(*commits: str) -> dict:
    """A provenance.json: notebooks 01–09 run on one CPU, at ``commits`` in turn (one each)."""
    stems = ["01_data_exploration", "04_training", "06_experiments", "09_speed"]
    return {
        stem: {
            "commit": commits[min(i, len(commits) - 1)],
            "date": f"2026-12-06 1{i}:00 UTC",
            "cpu": "AMD EPYC 9R14",
            "cores": 2,
            "seconds": 60,
        }
        for i, stem in enumerate(stems)
    }


SPEED = {
    "profile": "default",
    "threads": 2,
    "sgemm_gflops": 152.9,
    "bf16_gflops": 398.3,
    "steps_per_measurement": 25,
    "rounds": 3,
    "changes": [
        {
            "change": "images in memory",
            "before (s/epoch)": 44.33,
            "after (s/epoch)": 30.1,
            "speed-up": 1.47,
            "from stock": 1.47,
        },
        {
            "change": "bfloat16",
            "before (s/epoch)": 30.1,
            "after (s/epoch)": 15.05,
            "speed-up": 2.0,
            "from stock": 2.95,
        },
    ],
    "racer": {"images": 60000, "seconds": 3.46, "accuracy": 0.9917, "seed": 0},
}


@pytest.fixture
def env(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """Synthetic artifacts of a default-profile run (no bench.json) and empty figure files, env vars
    pointing at them."""
    art, rep = tmp_path / "artifacts", tmp_path / "report"
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(art))
    monkeypatch.setenv("MNIST_REPORT_DIR", str(rep))
    run = art / "runs" / "default"
    config_ = {
        "lr": 0.001,
        "batch_size": 64,
        "schedule": "constant",
        "augment": ["rotate", "crop", "translate"],
        "precision": "float32",
    }
    _write(
        run / "metrics.json",
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
                "config": config_,
            },
            "reference-seed0": {"train_images": 55000, "test_images": 10000, "profile": "default"},
        },
    )
    _write(
        run / "reference" / "history.json",
        [
            {
                "epoch": e,
                "train_loss": 0.5 / e,
                "test_loss": 0.1 / e,
                "test_accuracy": 0.97 + e / 1000 + (e == 10) * 0.007654,
                "train_accuracy": 0.975 + e / 1000,
                "epoch_seconds": 100.0,
            }
            for e in range(1, 11)
        ],
    )
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
        ("Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))", [32, 28, 28], 320),
        (
            "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)",
            [32, 14, 14],
            0,
        ),
        ("Conv2d(32, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))", [64, 14, 14], 18496),
        ("Linear(in_features=3136, out_features=128, bias=True)", [128], 401536),
        ("Dropout(p=0.0, inplace=False)", [128], 0),
        ("Linear(in_features=128, out_features=10, bias=True)", [10], 1290),
    ]
    _write(
        run / "model_table.json",
        {
            "total_parameters": 421642,
            "rows": [
                {"index": i, "layer": name, "output_shape": shape, "parameters": n}
                for i, (name, shape, n) in enumerate(layers)
            ],
        },
    )
    _write(
        run / "baselines.json",
        {
            "profile": "default",
            "epochs": 10,
            "rows": [
                {
                    "model": "softmax regression",
                    "parameters": 7850,
                    "train accuracy (%)": 92.61,
                    "test accuracy (%)": 92.54,
                    "seconds": 20.5,
                },
                {
                    "model": "the reference CNN (above)",
                    "parameters": 421642,
                    "train accuracy (%)": 99.31,
                    "test accuracy (%)": 98.71,
                    "seconds": 1234.56,
                },
            ],
        },
    )
    _write(run / "analysis.json", _analysis(ACCURACY, "default"))
    _write(run / "experiments.json", _experiments())
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
    improved = fits | {"temperature": 0.8123, "ece_before": 0.0412, "ece_after": 0.0041}
    _write(
        run / "calibration.json",
        {"n_bins": 15, "models": {"reference": fits, "improved_clean-seed0": improved}},
    )
    _write(run / "robustness.json", _robustness(ACCURACY))
    _write(run / "speed.json", SPEED)
    _write(run / "provenance.json", _provenance("0fb1d0f"))
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


def _after_the_conclusion(text: str) -> str:
    """The text of the PDF from the Conclusion's heading on."""
    return text[re.search(r"^\d+ Conclusion$", text, re.MULTILINE).start() :]


@pytest.mark.slow
def test_pdf_says_what_the_artifacts_say(env, figure_pdf):
    _, rep = env
    text = _pdf_text(rep, figure_pdf)
    flat = " ".join(text.split())
    assert "test accuracy of 98.77 %" in flat and "default profile" in flat
    assert "code at commit 0fb1d0f" in flat and "AMD EPYC 9R14 (2 cores)" in flat
    assert "Of its 421,642 trainable parameters, 401,536 (95.2 %) sit in one Linear layer" in flat
    assert re.search(
        r"^1 Conv2d\(1, 32, kernel.size=\(3, 3\), padding=\(1, 1\)\) 32 × 28 × 28 320$", text, re.M
    )
    assert (
        "Dropout(p=0.0" not in flat and "rate to 0" in flat
    )  # an idle layer: explained, not listed
    assert (
        "rarest training digit, 5, has 5,421 images" in flat
        and "3 and 5 are confused 4 times" in flat
    )
    assert "a gap of −0.27 points" in flat  # a real minus sign
    assert re.search(r"softmax regression 7,850 92\.61 92\.54 20\.5", text)
    # the arms: one row each, the control named where it is not the reference arm
    assert re.search(r"onecycle: the onecycle variant 3 6 99\.39 ± 0\.06 99\.29 151 better", text)
    assert re.search(r"^\(against lr.3e-3\) [Δ∆] = \+0\.39\n\[\+0\.20, \+0\.58\]$", text, re.M)
    assert re.search(
        r"elastic: the elastic variant 1 6 98\.70 98\.60 151 cannot tell", text
    )  # no ±
    assert re.search(r"improved.clean-ensemble-tta: .* 99\.52 99\.42 151", text)
    assert re.search(r"[Δ∆] = −0\.31 \[−0\.52, −0\.10\]", flat) and "pHolm = 0.02" in flat
    assert (
        "verdicts are stated only where the reference arm’s mean test accuracy reaches the seed "
        "report’s own 98.93 %" in flat
    )
    assert "kept, on a validation margin of 2 images of 5,000" in flat
    assert "6s predicted as 9 goes from 0.0 to 57.7" in flat
    assert "σ ∼ U (0, 0.3)" in flat
    assert "T = 0.81: it is under-confident" in flat and "ECE from 0.16 % to 0.13 %" in flat
    assert "supports 1, contradicts 1 and cannot tell 2" in flat
    assert re.search(r"Keep onecycle, which beat its control\. Drop strong.aug", flat)
    assert "Gradient-based learning applied to document recognition" in flat  # the bibliography
    for title in (
        "Introduction",
        "Data preparation and augmentation",
        "CNN architecture",
        "Training and evaluation",
        "Analysis",
        "Training speed",
        "Experiments",
        "How far to trust the model",
        "Limitations",
        "Conclusion",
    ):
        assert re.search(rf"^\d+ {title}$", text, re.MULTILINE), title
    assert not re.search(r"^(Figure|Table) \d+:", _after_the_conclusion(text), re.MULTILINE)
    assert "The benchmark" not in flat and "make bench" not in flat
    assert "??" not in flat and "nan" not in flat and not re.search(r"[a-z]\(s\)", flat)
    info = subprocess.run(
        ["pdfinfo", str(report.pdf_path("default"))], capture_output=True, text=True, check=True
    ).stdout
    assert re.search(r"^Title:\s+A convolutional network for MNIST digits", info, re.M)
    assert re.search(r"^Author:\s+Reproducible MNIST CNN project", info, re.M)


@pytest.mark.slow
def test_bench_json_adds_its_subsection(env, figure_pdf):
    art, rep = env
    _write(art / "bench.json", BENCH)
    experiments = _experiments()
    experiments["full_profile_only"] = [
        {"variant": "rotate_only", "description": "RandomRotation(10) alone"},
        {"variant": "elastic", "description": "elastic distortion"},
    ]
    _write(art / "runs" / "default" / "experiments.json", experiments)
    text = _pdf_text(rep, figure_pdf)
    flat = " ".join(text.split())
    assert re.search(r"^6\.1 The benchmark$", text, re.MULTILINE)
    assert (
        "Notebook 4’s engine runs 3.93 times as fast as the faster stock torchvision pipeline "
        "(stock, 2 workers), at 43 % of the speed of its floor; the study’s training runs at 45 %"
        in flat
    )
    assert "costs 1.50 TFLOP" in flat and "4.5 s at the sgemm rate" in flat
    assert re.search(r"engine, float32 \(notebook 04\) 10\.1 10\.5 12\.0", text)
    assert re.search(r"^convolutions 3\.25 65$", text, re.MULTILINE)
    rows = sorted(BENCH["epoch_s"].items(), key=lambda kv: text.index(f"\n{kv[0]} "))
    medians = [e["median"] for _, e in rows]  # in the table's order: the slowest first
    assert medians == sorted(medians, reverse=True)
    kernels = re.findall(r"^(convolutions|max-pooling|Adam) [0-9.]+ [0-9]+$", text, re.MULTILINE)
    assert kernels == ["convolutions", "max-pooling", "Adam"]  # the longest first
    assert re.search(r"^Adam [0-9.]+ [0-9]+\nother 1\.75 35$", text, re.MULTILINE)  # then "other"
    assert (
        "in 3.4 s (median; 3.1 to 3.9 s) over 5 seeds, with 99.21 % mean and 99.03 % minimum"
        in flat
    )
    assert "https://github.com/tuomaso/train_mnist_fast" in flat
    assert "took 9.8 s (median; 9.1 to 11.0 s) with 99.02 % mean" in flat
    assert "the racer took 0.35 times its time, at sgemm 330 GFLOP/s" in flat
    assert "(full profile only): rotate only (RandomRotation(10) alone), elastic (elastic" in flat
    assert not re.search(r"^(Figure|Table) \d+:", _after_the_conclusion(text), re.MULTILINE)


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
    assert r"\input{secret} and 5 are confused" in flat
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
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    text = "\n".join(
        " ".join(line.split()) for line in unicodedata.normalize("NFKC", text).splitlines()
    )
    flat = " ".join(text.split())
    metrics = report.context(profile)["metrics"]
    assert f"test accuracy of {100 * metrics['test_accuracy']:.2f} %" in flat
    assert f"{profile} profile" in flat and "Training speed" in flat
    assert ("The benchmark" in flat) == (artifacts / "bench.json").is_file()
    assert not re.search(r"^(Figure|Table) \d+:", _after_the_conclusion(text), re.MULTILINE)


# ---------------------------------------------------------------------- rendering and errors (fast)


def test_artifact_strings_are_escaped_in_the_latex(env):
    art, _ = env
    experiments = _experiments()
    experiments["rows"][0]["description"] = r"\input{/etc/hostname} \write18{ls} _&%$#^~"
    _write(art / "runs" / "default" / "experiments.json", experiments)
    tex = report.render()
    assert r"\input{/etc/hostname}" not in tex and r"\write18" not in tex
    assert r"\textbackslash{}input\{/etc/hostname\}" in tex and r"\_\&\%\$\#" in tex


def _robustness(accuracy: float) -> dict:
    """notebook 07's curves of a reference model scoring ``accuracy`` on the clean test images."""
    points = {
        kind: [{"level": lv, "accuracy": accuracy - lv / 1000} for lv in (0, 30)]
        for kind in ("rotation", "noise")
    }
    levels = {"rotation": [0, 30], "noise": [0, 30]}
    return {"test_images": 10000, "models": {"reference": points}, "levels": levels}


def _copy_profile(art: Path, rep: Path, profile: str, accuracy: float) -> None:
    """Make ``profile``'s artifacts and figures a copy of default's, its run at ``accuracy``."""
    shutil.copytree(art / "runs" / "default", art / "runs" / profile)
    shutil.copytree(rep / "figures" / "default", rep / "figures" / profile)
    metrics = json.loads((art / "runs" / profile / "metrics.json").read_text())
    metrics["reference"] |= {"profile": profile, "test_accuracy": accuracy}
    _write(art / "runs" / profile / "metrics.json", metrics)
    _write(art / "runs" / profile / "analysis.json", _analysis(accuracy, profile))
    _write(art / "runs" / profile / "robustness.json", _robustness(accuracy))
    _write(art / "runs" / profile / "experiments.json", dict(_experiments(), profile=profile))
    for name in ("baselines", "speed"):
        artifact = json.loads((art / "runs" / profile / f"{name}.json").read_text())
        _write(art / "runs" / profile / f"{name}.json", artifact | {"profile": profile})


def test_each_profile_has_its_own_report_and_a_quick_run_never_changes_the_default_one(env):
    art, rep = env
    _copy_profile(art, rep, "quick", 0.7145)
    calibration = json.loads((art / "runs" / "default" / "calibration.json").read_text())
    calibration["models"]["reference"]["temperature"] = 2.222
    _write(art / "runs" / "quick" / "calibration.json", calibration)  # what 07 quick writes
    quick = report.render("quick")
    assert "71.45" in quick and "98.77" not in quick and "2.22" in quick
    assert r"\textbf{quick profile}" in quick
    default = report.render()
    assert "98.77" in default and "71.45" not in default and r"\textbf{default profile}" in default
    assert "1.15" in default and "2.22" not in default  # the default calibration
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


def _render_error(env, rel: str, content) -> str:
    """The one-line error of rendering after ``rel`` (under the artifacts) is replaced by
    ``content``."""
    art, _ = env
    _write(art / rel, content)
    with pytest.raises(report.ReportError) as err:
        report.render()
    return str(err.value)


@pytest.mark.parametrize(
    "rel, content, fix",
    [
        ("runs/default/experiments.json", dict(_experiments(), rows="oops"), "make run-all"),
        ("runs/default/speed.json", dict(SPEED, changes=[{"change": "x"}]), "make run-all"),
        ("runs/default/baselines.json", {"profile": "default", "epochs": 1}, "make run-all"),
        ("bench.json", {"epoch_s": 3}, "make bench"),
        ("bench.json", {k: v for k, v in BENCH.items() if k != "racer"}, "make bench"),  # older
    ],
)
def test_a_malformed_artifact_is_named_not_only_the_template_line(env, rel, content, fix):
    art, _ = env
    message = _render_error(env, rel, content)
    assert message.startswith(f"{art / rel} lacks what main.tex.j2 line"), message
    assert "\n" not in message and message.endswith(f"`{fix}`."), message


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
        ("baselines.json", "04_training"),
        ("speed.json", "09_speed"),
        ("speed_steps.pdf", "09_speed"),
        ("experiments.json", "06_"),
        ("calibration.json", "07_"),
        ("robustness.json", "07_"),
        ("experiments.pdf", "06_"),
        *((f"{f}.pdf", nb) for nb, names in report.FIGURES.items() for f in names),
    ]:
        assert re.search(rf"{re.escape(name)} \(notebooks/{nb}", msg), name
    assert "bench.json" not in msg  # optional: the subsection is left out
    assert "provenance.json" not in msg  # optional: the front page says it is not recorded


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
    msg = _render_error(env, rel, content)
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


def test_the_front_page_names_the_date_commit_and_cpu_of_the_runs(env):
    art, _ = env
    tex = " ".join(report.render().split())
    assert "Notebooks run from 2026-12-06 10:00 UTC to 2026-12-06 13:00 UTC on AMD EPYC 9R14" in tex
    assert r"code at commit \texttt{0fb1d0f}" in tex and "uncommitted" not in tex
    _write(art / "runs" / "default" / "provenance.json", _provenance("0fb1d0f", "1a2b3c4+changes"))
    tex = " ".join(report.render().split())
    assert "the notebooks ran at different commits" in tex
    assert r"\texttt{0fb1d0f} (notebooks 01)" in tex
    assert r"\texttt{1a2b3c4} with changes (notebooks 04, 06, 09)" in tex
    (art / "runs" / "default" / "provenance.json").unlink()
    assert "No record of when, at which commit or on which CPU" in " ".join(report.render().split())


@pytest.mark.parametrize(
    "content",
    [[], {}, {"04_training": {"commit": "abc", "date": "today", "cpu": "x"}}, {"04_training": 3}],
)
def test_malformed_provenance_is_one_line_naming_the_file(env, content):
    art, _ = env
    path = art / "runs" / "default" / "provenance.json"
    _write(path, content)
    with pytest.raises(report.ReportError) as err:
        report.render()
    message = str(err.value)
    assert message.startswith(str(path)) and "\n" not in message and "make run-all" in message


def test_latex_prints_values_literally_with_real_minus_signs():
    assert latex.latex("Δ −0.31 [-0.52, +0.10]") == (
        r"$\Delta$ \ensuremath{-}0.31 [\ensuremath{-}0.52, +0.10]"
    )
    assert latex.latex("lr_3e-3, 2026-12-06, 0.6-1") == r"lr\_3e-3, 2026-12-06, 0.6-1"
    assert latex.latex(-2) == "-2" and latex.latex(None) == "--"  # a number, for \num or math
    assert latex.fixed(-0.123) == "-0.12" and latex.fixed(0.5, 1, sign="+") == "+0.5"
    assert latex.plural(1, "seed") == "1 seed" and latex.plural(3, "seed") == "3 seeds"
    assert latex.plural(2, "batch", "batches") == "2 batches"
    with pytest.raises(TypeError):
        latex.plural(1.0, "epoch")
    assert latex.p_value(0.0004) == "< 0.001" and latex.p_value(0.0312) == "0.031"
    assert latex.p_value(0.1) == "0.10" and latex.p_value(0.0058) == "0.0058"  # two digits each
    assert latex.layer(
        "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"
    ) == ("MaxPool2d(kernel_size=2, stride=2)")
    assert latex.layer("Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))") == (
        "Conv2d(1, 32, kernel_size=(3, 3), padding=(1, 1))"
    )
    assert latex.url("https://github.com/tuomaso/train_mnist_fast") == (
        r"\url{https://github.com/tuomaso/train_mnist_fast}"
    )
    assert (
        latex.latex(latex.url("https://x.org/}\\input{y}"))
        == r"https://x.org/\}\textbackslash{}input\{y\}"
    )


def test_every_citation_of_the_template_is_in_the_bibliography():
    template = report.TEMPLATE.read_text()
    cited = {
        key.strip()
        for keys in re.findall(r"\\cite[a-z]*(?:\[[^]]*\])*\{([^}]*)\}", template)
        for key in keys.split(",")
    }
    entries = set(re.findall(r"^@\w+\{([^,]+),", report.BIBLIOGRAPHY.read_text(), re.MULTILINE))
    assert cited and cited <= entries, cited - entries
    assert {
        "lecun1998",
        "simard2003",
        "kingma2015",
        "smith2019",
        "ioffe2015",
        "szegedy2016",
        "guo2017",
        "simonyan2014",
        "welch1947",
        "holm1979",
        "srivastava2014",
        "naeini2015",
    } <= cited


def _report_figures():
    """Every figure mnist_utils.plots draws for the report, from synthetic inputs shaped as the
    notebooks pass them."""
    import numpy as np
    import pandas as pd
    import torch

    from mnist_utils import plots

    images = (torch.rand(32, 28, 28, generator=torch.Generator().manual_seed(0)) * 255).byte()
    eight, six = list(images[:8].numpy()), list(images[:6].numpy())
    rows = [_row(v, "improvement", 1, 80.0 + i, math.nan) for i, v in enumerate("abcdefghijklmno")]
    rows[0]["variant"] = "reference"
    counts = torch.tensor([0.0, 2, 5, 10, 20, 40, 80, 160, 320, 640, 1000, 1500, 2000, 2500, 3000])
    bins = (counts, torch.linspace(0.03, 0.97, 15), torch.linspace(0.1, 1, 15))
    fit = {"before": bins, "after": bins, "temperature": 0.45, "ece_before": 0.19}
    fit |= {"ece_after": 0.019, "eval_split": "test half 2: the other 5,000 test images"}
    curve = {
        k: [{"level": lv, "accuracy": 0.9 - lv / 100} for lv in (0, 3, 6)]
        for k in plots.AXIS_LABELS
    }
    speed = pd.DataFrame(SPEED["changes"] * 4)
    return {
        "sample_batch": plots.image_grid(images, ["label 5"] * 32, suptitle="A training batch"),
        "untrained_forward": plots.image_grid(images[:8], ["true 7\nguess 3 (0.12)"] * 8),
        "misclassified": plots.image_grid(images, ["true 9 → 1\n(0.93)"] * 32, ncols=8),
        "augmentation_torchvision": plots.transform_rows(
            dict.fromkeys(["original", "RandomResizedCrop", "all three (Compose)"], eight)
        ),
        "flips_counterexample": plots.transform_rows(
            dict.fromkeys(["original", "both (= rotate 180°)"], six)
        ),
        "experiments": plots.experiments(rows, 99.27, "Test error per variant (quick profile)"),
        "reliability": plots.reliability_figure({"reference": fit, "improved_clean-seed0": fit}),
        "robustness": plots.robustness_figure({"reference": curve, "improved_clean-seed0": curve}),
        "saliency": plots.saliency_figure(
            images[:6],
            torch.tensor([4, 4, 8, 8, 0, 0]),
            torch.tensor([9, 9, 9, 9, 6, 6]),
            torch.rand(6),
            torch.randn(6, 28, 28),
            torch.randn(6, 28, 28),
        ),
        "speed_steps": plots.speed_steps(speed, "sgemm 153 GFLOP/s, 2 threads"),
        "log_ticks": np.array(plots.log_ticks(0.32, 1.9)),
    }


def test_the_report_figures_print_their_text_at_7_pt_or_more(tmp_path):
    """The report prints a figure at its natural size up to the text width (6.3 in): every text of
    the figures mnist_utils.plots draws for it is then 7 pt or more on paper."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    figures = _report_figures()
    assert list(figures.pop("log_ticks")) == [0.4, 0.5, 0.6, 0.8, 1, 1.5]  # labelled ticks
    for name, fig in figures.items():
        fig.savefig(tmp_path / f"{name}.pdf", bbox_inches="tight")
        width = fig.get_tightbbox(fig.canvas.get_renderer()).width + 0.2  # savefig's padding
        scale = min(1.0, 6.3 / width)
        texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
        smallest = min(texts, key=lambda t: t.get_fontsize())
        assert smallest.get_fontsize() * scale >= 7, (name, smallest.get_text(), width)
        plt.close(fig)


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


def test_notebook_7s_results_of_another_model_are_refused(env):
    """Notebooks 04 and 05 re-run with an edit, 06 and 07 not: the report would print the new
    model's accuracy beside the old model's calibration and robustness."""
    art, _ = env
    run = art / "runs" / "default"
    _write(run / "robustness.json", _robustness(ACCURACY - 0.05))  # of the earlier model
    with pytest.raises(report.ReportError, match="robustness.json is of another 'reference' model"):
        report.render()
    other = _robustness(ACCURACY)
    other["models"]["improved-seed0"] = other["models"]["reference"]
    _write(run / "robustness.json", other)
    experiments = json.loads((run / "experiments.json").read_text())
    if experiments.get("final", {}).get("chosen"):
        with pytest.raises(report.ReportError, match="not the recipe notebook 06 kept"):
            report.render()


def test_a_full_disk_while_copying_figures_is_one_line(env, monkeypatch):
    def full(src, dst, *args, **kwargs):
        reason = "[Errno 28] No space left on device"
        raise shutil.Error([(f"{src}/fig{k}.pdf", f"{dst}/fig{k}.pdf", reason) for k in range(40)])

    monkeypatch.setattr(report.shutil, "copytree", full)
    monkeypatch.setattr(report, "render", lambda profile: "tex")
    with pytest.raises(report.ReportError, match="No space left on device.*free some space") as err:
        report.build()
    assert "\n" not in str(err.value) and len(str(err.value)) < 400
