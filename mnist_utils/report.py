"""`make report`: LaTeX macros and tables generated from the notebooks' artifacts, then report/report.pdf via latexmk.

Every number the report prints is formatted here from JSON/CSV files the notebooks wrote; ``report/main.tex`` only
``\\input``s the files in ``generated/`` and uses the macros. Optional inputs (``bench.json``, ``experiments.csv``)
switch sections on through ``\\newif`` flags set in ``generated/macros.tex``.
"""
from __future__ import annotations

import argparse
import csv
import math
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .runs import read_json

RUN = "reference"
"""The run the report describes (its entry in metrics.json and its folder under artifacts/runs/)."""

FIX = "make run-all"
"""The command that (re)produces every required input."""

LATEX_INSTALL = (
    "apt-get install -y --no-install-recommends texlive-latex-base texlive-latex-recommended texlive-science latexmk"
)

FIGURES = {
    "sample_batch": "01_data_exploration",
    "class_distribution": "01_data_exploration",
    "pixel_histogram": "01_data_exploration",
    "augmentation_torchvision": "02_augmentation",
    "augmentation_batched": "02_augmentation",
    "augmentation_equivalence": "02_augmentation",
    "flips_counterexample": "02_augmentation",
    "untrained_forward": "03_model",
    "learning_curves": "04_training",
    "confusion_matrix": "05_analysis",
    "misclassified": "05_analysis",
}
"""Required figure name → the notebook that writes it."""

ARTIFACTS = {
    "data_stats.json": "01_data_exploration",
    "model_table.json": "03_model",
    "analysis.json": "05_analysis",
}
"""Required artifact (relative to artifacts_dir()) → the notebook that writes it."""

TRUST_FIGURES = ("reliability", "robustness", "saliency")
"""Figures of notebooks/07_calibration_robustness.ipynb (its section appears when they and its JSON files exist)."""

OVERFULL_TOLERANCE_PT = 5.0
"""Overfull boxes wider than this (in pt) make a strict build fail."""

LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
    "_": r"\_", "%": r"\%", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}",
    "→": r"$\rightarrow$", "←": r"$\leftarrow$", "↔": r"$\leftrightarrow$", "×": r"$\times$", "±": r"$\pm$",
    "≈": r"$\approx$", "≤": r"$\leq$", "≥": r"$\geq$", "−": "-", "°": r"$^{\circ}$",
    "µ": r"$\mu$", "μ": r"$\mu$",
}
"""Characters that LaTeX would misread or that inputenc cannot typeset in OT1, with their replacements."""


class ReportError(RuntimeError):
    """The report cannot be generated or built; the message names the file at fault and the command that fixes it."""


@dataclass(frozen=True)
class Inputs:
    """Everything the report reads, parsed."""

    metrics: dict
    data_stats: dict
    model_table: dict
    analysis: dict
    history: list
    bench: dict | None
    experiments: list[dict] | None
    experiments_figure: bool
    artifacts: Path
    experiments_detail: dict | None = None
    calibration: dict | None = None
    robustness: dict | None = None
    trust_figures: bool = False


# --------------------------------------------------------------------------- formatting


def latex_escape(text: object) -> str:
    """Escape LaTeX's special characters so ``text`` prints verbatim in normal text or ``\\texttt``."""
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def fmt_int(value: float) -> str:
    """An integer with thousands separators that work in text and math mode: ``60{,}000``."""
    return f"{int(round(value)):,}".replace(",", "{,}")


def fmt_float(value: float, decimals: int) -> str:
    """A fixed-point number with ``decimals`` digits (thousands separated as in :func:`fmt_int`)."""
    return f"{value:,.{decimals}f}".replace(",", "{,}")


def fmt_percent(fraction: float, decimals: int = 2) -> str:
    """A fraction as a percentage number (no % sign): 0.98931 → ``98.93``."""
    return f"{100 * fraction:.{decimals}f}"


def fmt_count(n: int, singular: str, plural: str | None = None) -> str:
    """``1 epoch`` / ``10 epochs``."""
    return f"{fmt_int(n)} {singular if n == 1 else (plural or singular + 's')}"


def macro(name: str, value: str) -> str:
    """One ``\\newcommand`` line; ``name`` must be letters only (a LaTeX control word)."""
    if not re.fullmatch(r"[A-Za-z]+", name):
        raise ValueError(f"macro name {name!r} must consist of letters only")
    return f"\\newcommand{{\\{name}}}{{{value}}}"


def flag(name: str, on: bool) -> list[str]:
    """A ``\\newif`` flag and its setting: ``\\ifNAME ... \\else ... \\fi`` in main.tex."""
    return [f"\\newif\\if{name}", f"\\{name}{'true' if on else 'false'}"]


# --------------------------------------------------------------------------- reading inputs


def report_profile(artifacts: Path) -> str:
    """The profile the pipeline last ran (analysis.json says): its reference run is the one the report describes."""
    analysis = artifacts / "analysis.json"
    return _load_json(analysis).get("profile", "default") if analysis.is_file() else "default"


def required_paths(artifacts: Path, figures: Path) -> list[tuple[Path, str]]:
    """Every required input file with the notebook that writes it."""
    files = [(artifacts / rel, nb) for rel, nb in ARTIFACTS.items()]
    profile = report_profile(artifacts)
    files += [(artifacts / "runs" / profile / "metrics.json", "04_training"),
              (artifacts / "runs" / profile / RUN / "history.json", "04_training")]
    files += [(figures / f"{name}.pdf", nb) for name, nb in FIGURES.items()]
    return files


def missing_inputs(artifacts: Path | None = None, figures: Path | None = None) -> list[str]:
    """One line per required input that is absent (empty when the report can be generated)."""
    artifacts = artifacts or paths.artifacts_dir()
    figures = figures or paths.figures_dir()
    lines = [f"{path} (written by notebooks/{nb}.ipynb)" for path, nb in required_paths(artifacts, figures)
             if not path.is_file()]
    metrics = artifacts / "runs" / report_profile(artifacts) / "metrics.json"
    if metrics.is_file() and RUN not in _load_json(metrics):
        lines.append(f"{metrics} has no {RUN!r} entry (written by notebooks/04_training.ipynb)")
    return lines


def _load_json(path: Path):
    """Parse a JSON file, turning a parse error into a ReportError that names the file."""
    try:
        return read_json(path, None)
    except ValueError as exc:
        raise ReportError(f"{path} is not valid JSON ({exc}); re-create it with `{FIX}`.") from exc


def _optional_json(path: Path) -> dict | None:
    """An optional artifact: parsed when present, None otherwise."""
    return _load_json(path) if path.is_file() else None


def read_experiments(path: Path) -> list[dict] | None:
    """Rows of experiments.csv as dicts, or None when the file does not exist."""
    if not path.is_file():
        return None
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    needed = {"variant", "test_accuracy_mean"}
    if rows and not needed <= set(rows[0]):
        raise ReportError(f"{path} lacks the column(s) {sorted(needed - set(rows[0]))}; "
                          "re-run the experiments notebook to rewrite it.")
    return rows


def load_inputs(artifacts: Path | None = None, figures: Path | None = None) -> Inputs:
    """Read every artifact, raising one ReportError that lists all missing files."""
    artifacts = artifacts or paths.artifacts_dir()
    figures = figures or paths.figures_dir()
    missing = missing_inputs(artifacts, figures)
    if missing:
        raise ReportError("the report needs inputs that are missing; run `" + FIX + "` to produce them:\n  - "
                          + "\n  - ".join(missing))
    profile = report_profile(artifacts)
    inputs = Inputs(
        metrics=_load_json(artifacts / "runs" / profile / "metrics.json")[RUN],
        data_stats=_load_json(artifacts / "data_stats.json"),
        model_table=_load_json(artifacts / "model_table.json"),
        analysis=_load_json(artifacts / "analysis.json"),
        history=_load_json(artifacts / "runs" / profile / RUN / "history.json"),
        bench=_load_json(artifacts / "bench.json") if (artifacts / "bench.json").is_file() else None,
        experiments=read_experiments(artifacts / "experiments.csv"),
        experiments_figure=(figures / "experiments.pdf").is_file(),
        artifacts=artifacts,
        experiments_detail=_optional_json(artifacts / "experiments.json"),
        calibration=_optional_json(artifacts / "calibration.json"),
        robustness=_optional_json(artifacts / "robustness.json"),
        trust_figures=all((figures / f"{name}.pdf").is_file() for name in TRUST_FIGURES),
    )
    check_consistent(inputs, artifacts)
    return inputs


def check_consistent(inputs: Inputs, artifacts: Path) -> None:
    """Refuse an analysis.json that describes another training run than metrics.json (a stale notebook 5)."""
    m, a = inputs.metrics, inputs.analysis
    same_profile = a.get("profile") == m.get("profile")
    same_accuracy = math.isclose(a.get("test_accuracy", -1.0), m.get("test_accuracy", -2.0), abs_tol=1e-6)
    if not (same_profile and same_accuracy):
        raise ReportError(
            f"{artifacts / 'analysis.json'} (profile {a.get('profile')!r}, accuracy {a.get('test_accuracy')}) does not "
            f"match the {RUN!r} entry of {artifacts / 'metrics.json'} (profile {m.get('profile')!r}, accuracy "
            f"{m.get('test_accuracy')}); re-run notebooks/05_analysis.ipynb after 04_training (or `{FIX}`)."
        )


# --------------------------------------------------------------------------- macros


def run_macros(m: dict) -> list[str]:
    """The reference run's numbers from its metrics.json entry."""
    cfg = m.get("config", {})
    return [
        macro("RefProfile", latex_escape(m["profile"])),
        macro("RefAccuracy", fmt_percent(m["test_accuracy"])),
        macro("RefTestLoss", fmt_float(m["test_loss"], 4)),
        macro("RefEpochs", fmt_int(m["epochs"])),
        macro("RefEpochsText", fmt_count(m["epochs"], "epoch")),
        macro("RefSeed", str(m["seed"])),
        macro("RefTrainSeconds", fmt_float(m["train_seconds"], 1)),
        macro("RefTrainImages", fmt_int(m["train_images"])),
        macro("RefTestImages", fmt_int(m["test_images"])),
        macro("RefDevice", latex_escape(m.get("device", "unknown"))),
        macro("RefThreads", fmt_int(m.get("threads", 0))),
        macro("RefBatchSize", fmt_int(cfg.get("batch_size", 0))),
        macro("RefLearningRate", f"\\num{{{cfg.get('lr', 0):g}}}"),
        macro("RefSchedule", latex_escape(cfg.get("schedule", "constant"))),
        macro("RefAugment", latex_escape(", ".join(cfg.get("augment", [])) or "none")),
        *flag("quickprofile", m["profile"] == "quick"),
    ]


def data_macros(d: dict) -> list[str]:
    """Split sizes, pixel statistics and class balance from data_stats.json."""
    counts = d["train_counts"]
    lo, hi = min(range(10), key=counts.__getitem__), max(range(10), key=counts.__getitem__)
    return [
        macro("DataTrainImages", fmt_int(d["train_images"])),
        macro("DataTestImages", fmt_int(d["test_images"])),
        macro("DataTotalImages", fmt_int(d["train_images"] + d["test_images"])),
        macro("DataMean", fmt_float(d["mean"], 4)),
        macro("DataStd", fmt_float(d["std"], 4)),
        macro("DataRarestDigit", str(lo)),
        macro("DataRarestCount", fmt_int(counts[lo])),
        macro("DataCommonestDigit", str(hi)),
        macro("DataCommonestCount", fmt_int(counts[hi])),
    ]


def model_macros(t: dict) -> list[str]:
    """Parameter count, and the share of the largest layer, from model_table.json."""
    total = t["total_parameters"]
    big = max(t["rows"], key=lambda r: r["parameters"])
    return [
        macro("ModelTotalParameters", fmt_int(total)),
        macro("ModelLayers", fmt_int(len(t["rows"]))),
        macro("ModelLargestLayer", latex_escape(big["layer"].split("(")[0])),
        macro("ModelLargestParameters", fmt_int(big["parameters"])),
        macro("ModelLargestShare", fmt_percent(big["parameters"] / total, 1) if total else "0"),
    ]


def history_macros(h: list[dict]) -> list[str]:
    """Final training loss and best evaluation accuracy from the run's history.json."""
    key = "test_accuracy" if "test_accuracy" in h[-1] else "val_accuracy"
    best = max(h, key=lambda e: e[key])
    return [
        macro("HistEpochs", fmt_int(len(h))),
        macro("HistFirstTrainLoss", fmt_float(h[0]["train_loss"], 4)),
        macro("HistFinalTrainLoss", fmt_float(h[-1]["train_loss"], 4)),
        macro("HistBestAccuracy", fmt_percent(best[key])),
        macro("HistBestEpoch", fmt_int(best["epoch"])),
        macro("HistEvalSplit", "test" if key == "test_accuracy" else "validation"),
        macro("HistMeanEpochSeconds", fmt_float(sum(e["epoch_seconds"] for e in h) / len(h), 1)),
    ]


def analysis_macros(a: dict) -> list[str]:
    """Error count, top confused pair and weakest class from analysis.json."""
    scored = sum(map(sum, a["confusion_matrix"]))
    pair = a["most_confused_pairs"][0] if a["most_confused_pairs"] else {"a": "--", "b": "--", "count": 0,
                                                                         "a_as_b": 0, "b_as_a": 0}
    worst = min(a["per_class"], key=lambda c: c["f1"])
    return [
        macro("AnalysisAccuracy", fmt_percent(a["test_accuracy"])),
        macro("AnalysisErrors", fmt_int(a["errors"])),
        macro("AnalysisScored", fmt_int(scored)),
        macro("AnalysisPairs", fmt_int(len(a["most_confused_pairs"]))),
        macro("TopPairA", str(pair["a"])),
        macro("TopPairB", str(pair["b"])),
        macro("TopPairCount", fmt_int(pair["count"])),
        macro("TopPairAasB", fmt_int(pair["a_as_b"])),
        macro("TopPairBasA", fmt_int(pair["b_as_a"])),
        macro("TopPairShare", fmt_percent(pair["count"] / a["errors"], 1) if a["errors"] else "0"),
        macro("WorstClass", str(worst["class"])),
        macro("WorstClassFone", fmt_float(worst["f1"], 3)),
        macro("WorstClassRecall", fmt_float(worst["recall"], 3)),
        macro("WorstClassPrecision", fmt_float(worst["precision"], 3)),
    ]


def bench_macros(b: dict | None) -> list[str]:
    """Training-speed numbers from bench.json (flag ``bench`` false when `make bench` was not run)."""
    lines = flag("bench", b is not None)
    if b is None:
        return lines
    return lines + [
        macro("BenchStockEpochS", fmt_float(b["stock_epoch_s"], 1)),
        macro("BenchStockWorkers", fmt_int(b["stock_workers"])),
        macro("BenchProjectEpochS", fmt_float(b["project_epoch_s"], 1)),
        macro("BenchComputeEpochS", fmt_float(b["compute_epoch_s"], 1)),
        macro("BenchSpeedup", fmt_float(b["speedup_vs_stock"], 2)),
        macro("BenchProjectOverCompute", fmt_float(b["project_over_compute"], 3)),
        macro("BenchTimeToNinetyNine", fmt_float(b["time_to_99_s"], 1)),
        macro("BenchTimeToNinetyNineAccuracy", fmt_percent(b["time_to_99_accuracy"])),
        macro("BenchThreads", fmt_int(b["threads"])),
        macro("BenchCpuCount", fmt_int(b["cpu_count"])),
        macro("BenchRepeats", fmt_int(b.get("repeats", 1))),
    ]


def experiments_macros(rows: list[dict] | None, has_figure: bool) -> list[str]:
    """Count, profiles and best variant of experiments.csv (flag ``experiments`` false when absent)."""
    lines = flag("experiments", bool(rows)) + flag("experimentsfigure", bool(rows) and has_figure)
    if not rows:
        return lines
    best = max(rows, key=lambda r: _number(r.get("test_accuracy_mean")) or -1.0)
    profiles = sorted({r.get("profile", "") for r in rows} - {""})
    return lines + [
        macro("ExpBeatReference", latex_escape(", ".join(beat_reference(rows)) or "none")),
        macro("ExperimentsCount", fmt_int(len(rows))),
        macro("ExperimentsProfile", latex_escape(", ".join(profiles) or "unknown")),
        macro("ExperimentsBestVariant", latex_escape(best["variant"])),
        macro("ExperimentsBestAccuracy", _pct_or_dash(best.get("test_accuracy_mean"))),
    ]


def beat_reference(rows: list[dict]) -> list[str]:
    """Single improvements whose mean test accuracy beats the reference row's by more than the larger of the two sds."""
    ref = next((r for r in rows if r.get("variant") == "reference"), None)
    if ref is None or _number(ref.get("test_accuracy_mean")) is None:
        return []
    better = []
    for r in rows:
        mean = _number(r.get("test_accuracy_mean"))
        if r.get("group") != "improvement" or mean is None:
            continue
        noise = max((_number(x) or 0.0) for x in (ref.get("test_accuracy_sd"), r.get("test_accuracy_sd")))
        if mean - _number(ref["test_accuracy_mean"]) > noise:
            better.append(r["variant"])
    return better


def experiment_detail_macros(d: dict | None) -> list[str]:
    """Improved model, ensemble and flip-confusion numbers from experiments.json (flag ``experimentdetail``)."""
    if d is None:  # every flag is declared either way: main.tex nests them inside other conditionals
        return flag("experimentdetail", False) + flag("improvedsd", False) + flag("cleanfinetune", False)
    lines = flag("experimentdetail", True)
    imp, ens = d["final"]["improved"], d["final"]["ensemble"]
    clean = d["final"].get("clean")  # experiments.json written before the clean fine-tune existed has none
    sd = imp["test_accuracy_sd"]
    words = {"6->9": "SixNine", "9->6": "NineSix", "2->5": "TwoFive", "5->2": "FiveTwo"}
    flips = [macro(f"ExpFlip{words[cell]}{arm.capitalize()}", fmt_float(count, 1))
             for arm in ("reference", "flips") for cell, count in d["flip_confusion"][arm].items() if cell in words]
    return lines + flag("improvedsd", sd == sd) + flips + [
        macro("ExpSeeds", fmt_int(len(d["seeds"]))),
        macro("ExpEpochs", fmt_int(d["epochs"])),
        macro("ExpImprovedMean", fmt_float(imp["test_accuracy_mean"], 2)),
        macro("ExpImprovedSd", _pct_or_dash(sd)),
        macro("ExpImprovedSeeds", fmt_int(imp["seeds"])),
        macro("ExpImprovedEpochs", fmt_int(imp["epochs"])),
        macro("ExpImprovedSeconds", fmt_float(imp["train_seconds_mean"], 0)),
        macro("ExpEnsembleName", latex_escape(d["final"]["name"])),
        macro("ExpEnsembleAccuracy", fmt_percent(ens["test_accuracy"])),
        macro("ExpEnsembleMembers", fmt_int(len(ens["members"]))),
        macro("ExpEnsembleValPlain", fmt_percent(ens["val_accuracy_plain"])),
        macro("ExpEnsembleValTTA", fmt_percent(ens["val_accuracy_tta"])),
        macro("ExpEnsembleTTA", "with" if ens["tta"] else "without"),
    ] + clean_macros(imp, clean, d["final"].get("chosen", "improved"))


def clean_macros(imp: dict, clean: dict | None, chosen: str) -> list[str]:
    """The fine-tune without augmentation against `improved`, on validation and test (flag ``cleanfinetune``)."""
    if clean is None:
        return flag("cleanfinetune", False)
    return flag("cleanfinetune", True) + [
        macro("ExpCleanMean", fmt_float(clean["test_accuracy_mean"], 2)),
        macro("ExpCleanSd", _pct_or_dash(clean["test_accuracy_sd"])),
        macro("ExpCleanEpochs", fmt_int(clean["epochs"] - imp["epochs"])),
        macro("ExpCleanVal", fmt_float(clean["val_accuracy_mean"], 2)),
        macro("ExpImprovedVal", fmt_float(imp["val_accuracy_mean"], 2)),
        macro("ExpChosen", latex_escape(chosen)),
    ]


def trust_macros(c: dict | None, r: dict | None, figures: bool) -> list[str]:
    """Reference-model calibration numbers from calibration.json (flag ``trust``: notebook 07's outputs exist)."""
    on = c is not None and r is not None and figures and "reference" in c.get("models", {})
    lines = flag("trust", on)
    if not on:
        return lines
    ref = c["models"]["reference"]
    return lines + [
        macro("CalTemperature", fmt_float(ref["temperature"], 3)),
        macro("CalEceBefore", fmt_percent(ref["ece_before"])),
        macro("CalEceAfter", fmt_percent(ref["ece_after"])),
        macro("CalNllBefore", fmt_float(ref["nll_before"], 4)),
        macro("CalNllAfter", fmt_float(ref["nll_after"], 4)),
        macro("CalFitSplit", latex_escape(ref["fit_split"])),
        macro("CalEvalSplit", latex_escape(ref["eval_split"])),
        macro("CalBins", fmt_int(c["n_bins"])),
        macro("RobTestImages", fmt_int(r["test_images"])),
    ]


def robustness_table_tex(r: dict | None) -> str:
    """Test accuracy (%) per perturbation level, one column per model, or a placeholder."""
    if r is None:
        return "% robustness.json was not found: notebooks/07_calibration_robustness.ipynb has not run.\n"
    models = list(r["models"])
    formats = {"rotation": "{:g}\\,\\si{{\\degree}}", "shift": "{:g} px", "noise": "$\\sigma = {:g}$"}
    body, first = [], True
    for kind, levels in r["levels"].items():
        if not first:
            body.append(r"\midrule")
        first = False
        for i, level in enumerate(levels):
            accs = [next(p["accuracy"] for p in r["models"][m][kind] if math.isclose(p["level"], level)) for m in models]
            label = latex_escape(kind) if i == 0 else ""
            shown = formats.get(kind, "{:g}").format(level)
            body.append(f"{label} & {shown} & " + " & ".join(fmt_percent(a) for a in accs) + r" \\")
    return booktabs(
        "\\begin{tabular}{@{}ll" + "r" * len(models) + "@{}}",
        "Perturbation & Level & " + " & ".join(f"\\texttt{{{latex_escape(m)}}} (\\%)" for m in models),
        body,
    )


def calibration_table_tex(c: dict | None) -> str:
    """Temperature, ECE and NLL before → after temperature scaling per model, or a placeholder."""
    if c is None:
        return "% calibration.json was not found: notebooks/07_calibration_robustness.ipynb has not run.\n"
    rows = [f"\\texttt{{{latex_escape(name)}}} & {m['temperature']:.3f} & "
            f"{fmt_percent(m['ece_before'])} $\\to$ {fmt_percent(m['ece_after'])} & "
            f"{m['nll_before']:.4f} $\\to$ {m['nll_after']:.4f} & "
            f"{fmt_int(m['fit_images'])} / {fmt_int(m['eval_images'])} \\\\" for name, m in c["models"].items()]
    return booktabs(
        r"\begin{tabular}{@{}lrccc@{}}",
        r"Model & $T$ & ECE (\%) before $\to$ after & NLL before $\to$ after & images fit / scored",
        rows,
    )


def formatted(inputs: Inputs, source: str, fn, *args):
    """``fn(*args)``, turning a malformed artifact (missing key, wrong type) into a ReportError naming ``source``."""
    try:
        return fn(*args)
    except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError) as exc:
        fix = {"bench.json": "`make bench`", "experiments.csv": "the experiments notebook",
               "experiments.json": "the experiments notebook",
               "calibration.json": "notebooks/07_calibration_robustness.ipynb",
               "robustness.json": "notebooks/07_calibration_robustness.ipynb"}.get(source, f"`{FIX}`")
        raise ReportError(f"{inputs.artifacts / source} does not have the expected content "
                          f"({type(exc).__name__}: {exc}); re-create it with {fix}.") from exc


def macros_tex(inputs: Inputs) -> str:
    """The whole of generated/macros.tex."""
    history = f"runs/{RUN}/history.json"
    lines = ["% Generated by `python -m mnist_utils.report generate` from the notebooks' artifacts. Do not edit."]
    lines += formatted(inputs, "metrics.json", run_macros, inputs.metrics)
    lines += formatted(inputs, "data_stats.json", data_macros, inputs.data_stats)
    lines += formatted(inputs, "model_table.json", model_macros, inputs.model_table)
    lines += formatted(inputs, history, history_macros, inputs.history)
    lines += formatted(inputs, "analysis.json", analysis_macros, inputs.analysis)
    lines += formatted(inputs, "bench.json", bench_macros, inputs.bench)
    lines += formatted(inputs, "experiments.csv", experiments_macros, inputs.experiments, inputs.experiments_figure)
    lines += formatted(inputs, "experiments.json", experiment_detail_macros, inputs.experiments_detail)
    lines += formatted(inputs, "calibration.json", trust_macros, inputs.calibration, inputs.robustness, inputs.trust_figures)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- tables


def _number(text: object) -> float | None:
    """A CSV cell as a finite float, or None when empty / not a number / NaN."""
    try:
        value = float(str(text).strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _pct_or_dash(text: object, decimals: int = 2) -> str:
    """A percentage cell of experiments.csv (written in percent by experiments.summarise) or ``--`` when empty/NaN."""
    value = _number(text)
    return "--" if value is None else f"{value:.{decimals}f}"


def _cell(text: object) -> str:
    """A CSV cell as escaped text, integers without a trailing ``.0``, ``--`` when empty."""
    value = _number(text)
    if value is not None and value == int(value):
        return fmt_int(value)
    return latex_escape(text) if str(text).strip() else "--"


def _shape(shape: list[int]) -> str:
    """An output shape in math mode: ``32\\times28\\times28``."""
    return r"\times".join(str(s) for s in shape)


def booktabs(begin: str, header: str, rows: list[str]) -> str:
    """A booktabs table: ``begin`` (``\\begin{tabular}{...}`` or tabularx), rules around ``header``, the rows, the end."""
    env = re.match(r"\\begin\{(\w+)\}", begin).group(1)
    return "\n".join([begin, r"\toprule", header + r" \\", r"\midrule", *rows, r"\bottomrule", f"\\end{{{env}}}"]) + "\n"


def layer_table_tex(t: dict) -> str:
    """The layer table: index, layer repr, output shape, parameters, and the total."""
    rows = [f"{r['index']} & \\texttt{{{latex_escape(r['layer'])}}} & ${_shape(r['output_shape'])}$ & "
            f"{r['parameters']} \\\\" for r in t["rows"]]
    return booktabs(
        r"\begin{tabularx}{\linewidth}{@{}r>{\raggedright\arraybackslash\footnotesize}Xl"
        r"S[table-format=6.0,group-separator={,},group-minimum-digits=4]@{}}",
        r"\# & Layer (PyTorch) & Output shape & {Parameters}",
        [
            *rows,
            r"\midrule",
            f"\\multicolumn{{3}}{{@{{}}l}}{{Total trainable parameters}} & {t['total_parameters']} \\\\",
        ],
    )


def confused_pairs_tex(a: dict) -> str:
    """The most confused unordered pairs with both directions of mistakes."""
    rows = [f"{p['a']} & {p['b']} & {p['a_as_b']} & {p['b_as_a']} & {p['count']} \\\\"
            for p in a["most_confused_pairs"]]
    return booktabs(
        r"\begin{tabular}{@{}cc S[table-format=4.0] S[table-format=4.0] S[table-format=4.0]@{}}",
        r"$a$ & $b$ & {$a$ read as $b$} & {$b$ read as $a$} & {Total}",
        rows or [r"\multicolumn{5}{c}{no mistakes} \\"],
    )


def per_class_tex(a: dict) -> str:
    """Per-class precision, recall, F1 and support, with the macro average."""
    scores = a["per_class"]
    rows = [f"{c['class']} & {c['precision']:.3f} & {c['recall']:.3f} & {c['f1']:.3f} & {c['support']} \\\\"
            for c in scores]
    mean = {k: sum(c[k] for c in scores) / len(scores) for k in ("precision", "recall", "f1")}
    total = sum(c["support"] for c in scores)
    return booktabs(
        r"\begin{tabular}{@{}c S[table-format=1.3] S[table-format=1.3] S[table-format=1.3]"
        r" S[table-format=5.0,group-separator={,},group-minimum-digits=4]@{}}",
        r"Digit & {Precision} & {Recall} & {F1} & {Support}",
        [
            *rows,
            r"\midrule",
            f"Mean & {mean['precision']:.3f} & {mean['recall']:.3f} & {mean['f1']:.3f} & {total} \\\\",
        ],
    )


def bench_table_tex(b: dict | None) -> str:
    """Seconds per 60,000-image epoch for the three pipelines and the time-to-99 % race, or a placeholder."""
    if b is None:
        return "% bench.json was not found: `make bench` was not run for this build (\\ifbench is false).\n"
    rows = [
        (f"Stock torchvision pipeline ({b['stock_workers']} DataLoader workers)", f"{b['stock_epoch_s']:.1f}",
         f"{1:.2f}"),
        ("Project engine (batched augmentation)", f"{b['project_epoch_s']:.1f}", f"{b['speedup_vs_stock']:.2f}"),
        ("Model compute alone (random tensors)", f"{b['compute_epoch_s']:.1f}",
         f"{b['stock_epoch_s'] / b['compute_epoch_s']:.2f}"),
    ]
    body = [f"{name} & {sec} & {speed} \\\\" for name, sec, speed in rows]
    return booktabs(
        r"\begin{tabularx}{\linewidth}{@{}X S[table-format=4.1] S[table-format=2.2]@{}}",
        r"Pipeline & {Seconds per epoch} & {Speed-up vs.\ stock}",
        body,
    )


def _experiment_row(r: dict, with_val: bool) -> str:
    """One experiments.csv row as a table line: variant, description, seeds, epochs, accuracies, seconds."""
    sd = _pct_or_dash(r.get("test_accuracy_sd"))
    acc = _pct_or_dash(r.get("test_accuracy_mean")) + ("" if sd == "--" else f" $\\pm$ {sd}")
    seconds = _number(r.get("train_seconds_mean"))
    cells = [f"\\texttt{{{latex_escape(r['variant'])}}}", latex_escape(r.get("description", "")),
             _cell(r.get("seeds", "")), _cell(r.get("epochs", "")), acc]
    cells += [_pct_or_dash(r.get("val_accuracy_mean"))] if with_val else []
    cells += [fmt_float(seconds, 0) if seconds is not None else "--"]
    return " & ".join(cells) + r" \\"


def experiments_table_tex(rows: list[dict] | None) -> str:
    """One row per variant of experiments.csv (grouped by its ``group`` column), or a placeholder."""
    if not rows:
        return "% experiments.csv was not found: the experiments notebook has not run (\\ifexperiments is false).\n"
    with_val = any(_number(r.get("val_accuracy_mean")) is not None for r in rows)
    body, group = [], None
    for r in rows:
        if group is not None and r.get("group") != group:
            body.append(r"\midrule")
        group = r.get("group")
        body.append(_experiment_row(r, with_val))
    head = ["Variant", "Description", "Seeds", "Epochs", r"Test acc.\ (\%)"]
    head += [r"Val.\ acc.\ (\%)"] if with_val else []
    head += ["Train (s)"]
    cols = r"@{}l>{\raggedright\arraybackslash}Xcc" + "r" * (len(head) - 4)
    return booktabs(
        f"\\begin{{tabularx}}{{\\linewidth}}{{{cols}@{{}}}}",
        " & ".join(head),
        body,
    )


# --------------------------------------------------------------------------- generate / build


def generate(artifacts: Path | str | None = None, out: Path | str | None = None) -> Path:
    """Write generated/macros.tex and the table files from the artifacts; return the folder written."""
    artifacts = Path(artifacts) if artifacts else paths.artifacts_dir()
    out = Path(out) if out else paths.generated_dir()
    inputs = load_inputs(artifacts, paths.figures_dir())
    files = {
        "macros.tex": macros_tex(inputs),
        "layer_table.tex": formatted(inputs, "model_table.json", layer_table_tex, inputs.model_table),
        "confused_pairs.tex": formatted(inputs, "analysis.json", confused_pairs_tex, inputs.analysis),
        "per_class.tex": formatted(inputs, "analysis.json", per_class_tex, inputs.analysis),
        "bench_table.tex": formatted(inputs, "bench.json", bench_table_tex, inputs.bench),
        "experiments_table.tex": formatted(inputs, "experiments.csv", experiments_table_tex, inputs.experiments),
        "calibration_table.tex": formatted(inputs, "calibration.json", calibration_table_tex, inputs.calibration),
        "robustness_table.tex": formatted(inputs, "robustness.json", robustness_table_tex, inputs.robustness),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)
    if inputs.experiments and not inputs.experiments_figure:
        print(f"warning: {paths.figures_dir() / 'experiments.pdf'} is missing; the experiments section shows the "
              "table only (re-run the experiments notebook to draw it).", file=sys.stderr)
    return out


def latex_problems(log: str, tolerance_pt: float = OVERFULL_TOLERANCE_PT) -> list[str]:
    """Undefined references/citations and overfull boxes wider than ``tolerance_pt`` reported in a LaTeX log."""
    undefined = re.compile(r"undefined references|Reference `[^']*' on page \d+ undefined|Citation .* undefined")
    problems = [line.strip() for line in log.splitlines() if undefined.search(line)]
    for match in re.finditer(r"^(Overfull \\[hv]box \(([\d.]+)pt too \w+\).*)$", log, flags=re.M):
        if float(match.group(2)) > tolerance_pt:
            problems.append(match.group(1).strip())
    return problems


def _latex_error(log_path: Path) -> str:
    """The first LaTeX error of a failed run (lines starting with ``!`` and the two after), for the message."""
    if not log_path.is_file():
        return ""
    lines = log_path.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        if line.startswith("!"):
            return "\n".join(lines[i:i + 3])
    return ""


def run_latexmk(folder: Path) -> Path:
    """Compile main.tex in ``folder`` into report.pdf with latexmk; return the PDF path."""
    if shutil.which("latexmk") is None:
        raise ReportError(f"latexmk is not installed, so the PDF cannot be built; install TeX with\n  {LATEX_INSTALL}")
    cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-jobname=report", "main.tex"]
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = _latex_error(folder / "report.log") or proc.stdout[-2000:] + proc.stderr[-2000:]
        raise ReportError(f"latexmk failed in {folder} (full log: {folder / 'report.log'}):\n{detail}")
    return folder / "report.pdf"


def build(strict: bool = True) -> Path:
    """Generate the LaTeX inputs, compile report_dir()/report.pdf and check its log; return the PDF path."""
    folder = paths.report_dir()
    source = paths.report_source()
    if not source.is_file():
        raise ReportError(f"{source} is missing; restore it with `git checkout -- report/main.tex`.")
    generate()
    if folder.resolve() != source.parent.resolve():
        shutil.copy2(source, folder / "main.tex")
    pdf = run_latexmk(folder)
    problems = latex_problems((folder / "report.log").read_text(errors="replace"))
    if problems:
        message = (f"{folder / 'report.log'} reports {len(problems)} problem(s) (undefined references, or overfull "
                   f"boxes over {OVERFULL_TOLERANCE_PT:g}pt); fix {source}:\n  " + "\n  ".join(problems))
        if strict:
            raise ReportError(message)
        print("warning: " + message, file=sys.stderr)
    return pdf


def main(argv: list[str] | None = None) -> int:
    """CLI: ``generate`` writes the LaTeX inputs, ``build`` also compiles the PDF; errors print one message."""
    parser = argparse.ArgumentParser(prog="python -m mnist_utils.report", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("generate", help="write generated/macros.tex and the tables from the artifacts")
    b = sub.add_parser("build", help="generate, then compile report.pdf with latexmk")
    b.add_argument("--no-strict", action="store_true",
                   help="warn instead of failing on overfull boxes and undefined references")
    args = parser.parse_args(argv)
    try:
        if args.command == "generate":
            print(f"wrote {generate()}")
        else:
            print(f"wrote {build(strict=not args.no_strict)}")
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
