"""`python -m mnist_tools report build`: report/main.tex.j2 filled from the notebooks' JSON
artifacts, then report.pdf.

jinja2 fills the template (:mod:`mnist_tools.latex`); latexmk builds the PDF, BibTeX its
references (report/references.bib).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

import jinja2
from filelock import FileLock

from mnist_utils import errors, paths
from mnist_utils.config import PROFILES, profile_from_env

from .latex import (  # noqa: F401 (the report's API: tests and callers use report.X)
    LATEX_INSTALL,
    OVERFULL_TOLERANCE_PT,
    ReportError,
    environment,
    latex,
    latex_error,
    latex_problems,
    run_latexmk,
)

# the run the report describes: its entry in metrics.json, its folder under runs/<profile>/
RUN = "reference"
TEMPLATE = paths.ROOT / "report" / "main.tex.j2"
BIBLIOGRAPHY = paths.ROOT / "report" / "references.bib"
MAX_STRING = 2000  # longer artifact strings are refused: TeX cannot read a line of ~200 kB

ARTIFACTS = {  # required artifacts/runs/<profile>/<key>.json (template name `key`) → its notebook
    "data_stats": "01_data_exploration",
    "model_table": "03_model",
    "baselines": "04_training",
    "analysis": "05_analysis",
    "experiments": "06_experiments",
    "calibration": "07_calibration_robustness",
    "robustness": "07_calibration_robustness",
    "speed": "09_speed",
}
FIGURES = {  # notebook → the figures (report/figures/<profile>/<name>.pdf) it writes for the report
    "01_data_exploration": ("sample_batch", "class_distribution", "pixel_histogram"),
    "02_augmentation": (
        "augmentation_torchvision",
        "augmentation_batched",
        "augmentation_equivalence",
        "flips_counterexample",
    ),
    "03_model": ("untrained_forward",),
    "04_training": ("learning_curves",),
    "05_analysis": ("confusion_matrix", "misclassified"),
    "06_experiments": ("experiments",),
    "07_calibration_robustness": ("reliability", "robustness", "saliency"),
    "09_speed": ("speed_steps",),
}
PROVENANCE = "provenance.json"
"""Optional, in runs/<profile>/: which commit ran each notebook, when and on which CPU; the
notebook runner of `make run-all` writes it (notebooks run by `make test` under nbval do not)."""
PROVENANCE_FIELDS = {"commit": str, "date": str, "cpu": str, "cores": int}


class _Dict(dict):
    """A JSON object of an artifact that knows its file (``_source``)."""


class _List(list):
    """A JSON array of an artifact that knows its file (``_source``)."""


def _tag(value, source: Path):
    """``value`` with every dict and list in it knowing ``source``, the file it came from."""
    if isinstance(value, dict):
        value = _Dict((k, _tag(v, source)) for k, v in value.items())
    elif isinstance(value, list):
        value = _List(_tag(v, source) for v in value)
    else:
        return value
    value._source = source
    return value


def load_json(path: Path, fix: str = "make run-all"):
    """Parse an artifact (NaN and ±Infinity, e.g. an undefined sd, become None); a bad file is a
    ReportError naming ``fix``."""
    try:
        value = json.loads(path.read_text(), parse_constant=lambda _: None)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReportError(
            f"{path} is not readable JSON ({exc}); re-create it with `{fix}`."
        ) from exc
    too_long = _long_string(value)
    if too_long:
        raise ReportError(
            f"{path} holds a string of {len(too_long):,} characters (at most "
            f"{MAX_STRING:,}); re-create it with `{fix}`."
        )
    return _tag(value, path)


def _long_string(value) -> str | None:
    """The first string in ``value`` (keys included) longer than :data:`MAX_STRING`, else None."""
    if isinstance(value, str):
        return value if len(value) > MAX_STRING else None
    items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
    found = (s for s in map(_long_string, items) if s) if isinstance(items, list) else iter(())
    return next(found, None)


def inputs(
    profile: str, artifacts: Path | None = None, figures: Path | None = None
) -> dict[str, tuple[Path, str]]:
    """Every required input of ``profile``'s report: template name → (path, its notebook)."""
    run = (artifacts or paths.artifacts_dir()) / "runs" / profile
    figures = figures or paths.figures_dir(profile)
    files = {key: (run / f"{key}.json", nb) for key, nb in ARTIFACTS.items()}
    files |= {
        "metrics": (run / "metrics.json", "04_training"),
        "history": (run / RUN / "history.json", "04_training"),
    }
    return files | {
        f"figure {name}": (figures / f"{name}.pdf", nb)
        for nb, names in FIGURES.items()
        for name in names
    }


def missing_inputs(
    profile: str = "default", artifacts: Path | None = None, figures: Path | None = None
) -> list[str]:
    """One entry per required input of ``profile`` that is absent (none: the report can build)."""
    files = inputs(profile, artifacts, figures)
    return [f"{path} (notebooks/{nb}.ipynb)" for path, nb in files.values() if not path.is_file()]


def _number(value, path: Path, key: str, fix: str) -> float:
    """``value`` when it is a finite number, else a ReportError naming ``key`` of ``path``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ReportError(f"{path}: {key} is {value!r}, not a number; re-create it with `{fix}`.")
    return value


def _check_profile(ctx: dict, files: dict, profile: str, fix: str) -> None:
    """Refuse an artifact, or the reference entry, that says it is of another profile."""
    for key, (path, _) in files.items():
        value = ctx.get(key)
        found = value.get("profile", profile) if isinstance(value, dict) else profile
        if key == "metrics":
            found, path = value[RUN].get("profile"), f"{path}: the {RUN!r} entry"
        if found != profile:
            raise ReportError(
                f"{path} is from the {found!r} profile, not {profile!r}; re-create it with `{fix}`."
            )


def _reference_entry(ctx: dict, files: dict, fix: str) -> dict:
    """metrics.json's entry of the reference run, checked: a test accuracy, and the one that
    analysis.json analysed."""
    metrics_file, analysis_file = files["metrics"][0], files["analysis"][0]
    metrics = ctx["metrics"].get(RUN) if isinstance(ctx["metrics"], dict) else None
    if not isinstance(metrics, dict):
        raise ReportError(
            f"{metrics_file} has no {RUN!r} entry; run notebooks/04_training.ipynb (or `{fix}`)."
        )
    accuracy = _number(metrics.get("test_accuracy"), metrics_file, f"{RUN}.test_accuracy", fix)
    a = ctx["analysis"] if isinstance(ctx["analysis"], dict) else {}
    analysed = _number(a.get("test_accuracy"), analysis_file, "test_accuracy", fix)
    if not math.isclose(analysed, accuracy, abs_tol=1e-6):
        raise ReportError(
            f"{analysis_file} (accuracy {analysed}) does not match the {RUN!r} entry of "
            f"{metrics_file} (accuracy {accuracy}); re-run notebooks/05_analysis.ipynb after "
            f"04_training (or `{fix}`)."
        )
    return metrics


def provenance(path: Path, fix: str) -> dict | None:
    """The front page's provenance from ``path`` (None when absent): the first and last date, the
    commits with the notebooks each ran, the machines; a malformed entry is a ReportError."""
    if not path.is_file():
        return None
    runs = load_json(path, fix)
    if not isinstance(runs, dict) or not runs:
        raise ReportError(f"{path} names no notebook run; re-create it with `{fix}`.")
    for stem, entry in runs.items():
        if not isinstance(entry, dict) or any(
            isinstance(entry.get(k), bool) or not isinstance(entry.get(k), kind)
            for k, kind in PROVENANCE_FIELDS.items()
        ):
            raise ReportError(
                f"{path}: the entry {stem!r} lacks one of {', '.join(PROVENANCE_FIELDS)}; "
                f"re-create it with `{fix}`."
            )
    commits: dict[str, list[str]] = {}
    for stem in sorted(runs):
        commits.setdefault(runs[stem]["commit"], []).append(stem.split("_")[0])
    dates = sorted(e["date"] for e in runs.values())
    return {
        "first": dates[0],
        "last": dates[-1],
        "commits": [
            {"commit": c.removesuffix("+changes"), "changed": c.endswith("+changes"), "stems": n}
            for c, n in commits.items()
        ],
        "machines": sorted({(e["cpu"], e["cores"]) for e in runs.values()}),
    }


def design() -> dict:
    """The study's fixed choices, read from the code (they are not results of a run): the regime
    of verdicts, the seed report's accuracy, the augmentation ranges, the budgets."""
    from mnist_utils.augment import REFERENCE_SPEC, AugmentSpec
    from mnist_utils.config import RunConfig
    from mnist_utils.experiments import PLANS, REGIME, SEED_REPORT_ACCURACY

    return {
        "regime": REGIME,
        "seed_report": SEED_REPORT_ACCURACY,
        "noise": AugmentSpec.from_names(("noise",)).noise,
        "degrees": REFERENCE_SPEC.degrees,
        "shift": REFERENCE_SPEC.shift,
        "default_epochs": PLANS["default"].epochs,
        "reference_epochs": RunConfig().epochs,
    }


def check_current(ctx: dict, files: dict, metrics: dict, fix: str) -> None:
    """Refuse notebook 07's results when they are of another model than notebook 04's run and
    notebook 06's kept recipe (one re-run with an edit, the other not): the report would mix
    models. Its accuracy at rotation 0 is the reference's test accuracy, computed alike."""
    path, models = files["robustness"][0], ctx["robustness"].get("models", {})
    curve = models.get(RUN, {}).get("rotation") or [{}]
    at_zero = curve[0].get("accuracy")
    if at_zero is None or not math.isclose(at_zero, metrics["test_accuracy"], abs_tol=1e-6):
        raise ReportError(
            f"{path} is of another {RUN!r} model than {files['metrics'][0]} (accuracy {at_zero} "
            f"against {metrics['test_accuracy']}): re-run notebook 07 "
            f"(or `{fix}`)."
        )
    kept = ctx["experiments"].get("final", {}).get("chosen")
    others = set(models) - {RUN}
    if kept is not None and others and others != {f"{kept}-seed0"}:
        raise ReportError(
            f"{path} analyses {', '.join(sorted(others))}, not the recipe notebook 06 kept "
            f"({kept}): re-run notebooks/07_calibration_robustness.ipynb (or `{fix}`)."
        )


def context(
    profile: str = "default", artifacts: Path | None = None, figures: Path | None = None
) -> dict:
    """Every artifact of ``profile`` the template reads, parsed and checked: all of one profile, and
    an analysis.json of the current reference run."""
    fix, artifacts = errors.run_all(profile), artifacts or paths.artifacts_dir()
    missing = missing_inputs(profile, artifacts, figures)
    if missing:
        shared = any((artifacts / f"{key}.json").is_file() for key in ARTIFACTS)  # before profiles
        note = " (artifacts/*.json of the older shared layout are not read)" if shared else ""
        raise ReportError(
            f"the {profile} profile's report needs {len(missing)} missing file(s): "
            f"{'; '.join(missing)}; run `{fix}`{note}."
        )
    files = inputs(profile, artifacts, figures)
    ctx = {key: load_json(path, fix) for key, (path, _) in files.items() if path.suffix == ".json"}
    bench = artifacts / "bench.json"
    ctx["bench"] = load_json(bench, errors.BENCH) if bench.is_file() else None
    ctx["provenance"] = provenance(artifacts / "runs" / profile / PROVENANCE, fix)
    metrics = _reference_entry(ctx, files, fix)
    _check_profile(ctx, files, profile, fix)
    check_current(ctx, files, metrics, fix)
    extra = {"all_metrics": ctx["metrics"], "metrics": metrics, "design": design()}
    return ctx | extra | {"profile": profile}


def render(
    profile: str = "default", artifacts: Path | None = None, figures: Path | None = None
) -> str:
    """The report's LaTeX: the template filled from the artifacts of ``profile``."""
    ctx, env = context(profile, artifacts, figures), environment(TEMPLATE.parent)
    try:
        return env.get_template(TEMPLATE.name).render(ctx)
    except (
        jinja2.UndefinedError,
        LookupError,
        TypeError,
        ValueError,
        AttributeError,
        ZeroDivisionError,
    ) as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(TEMPLATE)]
        where = (
            f"line {frames[-1].lineno} ({(frames[-1].line or '').strip()[:120]})" if frames else "?"
        )
        bench = env.read is not None and env.read.name == "bench.json"
        raise ReportError(
            f"{env.read or 'an artifact'} lacks what {TEMPLATE.name} {where} reads "
            f"({type(exc).__name__}: {exc}); re-create it with "
            f"`{errors.BENCH if bench else errors.run_all(profile)}`."
        ) from exc


def generate(profile: str = "default") -> Path:
    """Write the filled template to ``<report dir>/generated/<profile>/main.tex``, the bibliography
    beside it; its path."""
    out = paths.generated_dir() / profile / "main.tex"
    paths.atomic_write(out, lambda tmp: tmp.write_text(render(profile)))
    shutil.copyfile(BIBLIOGRAPHY, out.parent / BIBLIOGRAPHY.name)
    return out


def pdf_path(profile: str) -> Path:
    """Where ``profile``'s report goes: ``<report dir>/report.pdf``, or ``report-<profile>.pdf``."""
    return paths.report_dir() / ("report.pdf" if profile == "default" else f"report-{profile}.pdf")


def prepare_build(work: Path, profile: str, tex: str) -> None:
    """The build folder: figures, bibliography, LaTeX; a full disk is one line, not the list of
    every file that failed to copy."""
    try:
        shutil.copytree(paths.figures_dir(profile), work / "figures")
        shutil.copyfile(BIBLIOGRAPHY, work / BIBLIOGRAPHY.name)
        (work / "main.tex").write_text(tex)
    except (OSError, shutil.Error) as exc:
        first = exc.args[0][0][2] if isinstance(exc, shutil.Error) and exc.args[0] else exc
        raise ReportError(
            f"cannot prepare the build in {work.parent} ({' '.join(str(first).split())}); free "
            "some space there (or set MNIST_REPORT_DIR) and run it again; the previous PDF is kept."
        ) from exc


def build(profile: str = "default", strict: bool = True) -> Path:
    """Compile ``profile``'s report in a private folder; move the PDF in only when the build and its
    log check pass (a failed build keeps the previous PDF). A file lock serialises builds."""
    tex, folder, pdf = render(profile), paths.report_dir(), pdf_path(profile)
    folder.mkdir(parents=True, exist_ok=True)
    with (
        FileLock(folder / ".build.lock"),
        tempfile.TemporaryDirectory(prefix=".build-", dir=folder) as tmp,
    ):
        work = Path(tmp)
        prepare_build(work, profile, tex)
        log = pdf.with_suffix(".log")
        built = run_latexmk(work, Path("main.tex"), log)
        problems = latex_problems(log.read_text(errors="replace"))
        if problems:
            message = (
                f"{log} reports {len(problems)} problem(s) (undefined references or citations, "
                f"or overfull boxes over {OVERFULL_TOLERANCE_PT:g}pt): "
                f"{' | '.join(problems)}; fix {TEMPLATE}."
            )
            if strict:
                raise ReportError(message + " The previous PDF was kept.")
            print(f"warning: {message}", file=sys.stderr)
        os.replace(built, pdf)
    return pdf


def main(argv: list[str] | None = None) -> int:
    """``generate`` writes the filled LaTeX, ``build`` also the PDF."""
    parser = argparse.ArgumentParser(prog="python -m mnist_tools report", description=__doc__)
    parser.add_argument(
        "command",
        choices=["generate", "build"],
        help="generate: write <report dir>/generated/<profile>/main.tex; build: also compile "
        "<report dir>/report.pdf (report-<profile>.pdf)",
    )
    parser.add_argument(
        "--profile",
        default=None,
        choices=PROFILES,
        help="whose artifacts and figures (default: $MNIST_PROFILE, else default)",
    )
    parser.add_argument(
        "--no-strict",
        action="store_true",
        help="warn instead of failing on overfull boxes and undefined references",
    )
    args = parser.parse_args(argv)
    profile = args.profile or profile_from_env()
    out = generate(profile) if args.command == "generate" else build(profile, not args.no_strict)
    print(f"wrote {out}")
    return 0
