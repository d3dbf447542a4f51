"""`python -m mnist_tools report build`: report/main.tex.j2 filled from the notebooks' JSON
artifacts, then report.pdf.

jinja2 fills the template; latexmk builds the PDF.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import jinja2
from filelock import FileLock

from mnist_utils import errors, paths
from mnist_utils.config import PROFILES, profile_from_env

# the run the report describes: its entry in metrics.json, its folder under runs/<profile>/
RUN = "reference"
TEMPLATE = paths.ROOT / "report" / "main.tex.j2"
LATEX_INSTALL = (
    "apt-get install -y --no-install-recommends texlive-latex-base texlive-latex-recommended "
    "texlive-science latexmk"
)
OVERFULL_TOLERANCE_PT = 5.0  # overfull boxes wider than this make a strict build fail
MAX_STRING = 2000  # longer artifact strings are refused: TeX cannot read a line of ~200 kB

ARTIFACTS = {  # required artifacts/runs/<profile>/<key>.json (template name `key`) → its notebook
    "data_stats": "01_data_exploration",
    "model_table": "03_model",
    "analysis": "05_analysis",
    "experiments": "06_experiments",
    "calibration": "07_calibration_robustness",
    "robustness": "07_calibration_robustness",
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
}
LATEX_SPECIALS = str.maketrans(
    {  # characters LaTeX reads as commands, or its OT1 fonts lack → what prints them
        "\\": r"\textbackslash{}",
        "{": r"\{",
        "}": r"\}",
        "$": r"\$",
        "&": r"\&",
        "#": r"\#",
        "_": r"\_",
        "%": r"\%",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
        "<": r"\textless{}",
        ">": r"\textgreater{}",
        "→": r"$\rightarrow$",
        "←": r"$\leftarrow$",
        "↔": r"$\leftrightarrow$",
        "≥": r"$\geq$",
        "≤": r"$\leq$",
        "×": r"$\times$",
        "±": r"$\pm$",
        "≈": r"$\approx$",
        "−": "-",
        "°": r"\textdegree{}",
        "µ": r"$\mu$",
        "μ": r"$\mu$",
        "Δ": r"$\Delta$",
    }
)


class ReportError(errors.MnistError):
    """The report cannot be built: the message names the file at fault and the command that fixes
    it."""


def latex(value: object) -> str:
    """Any artifact value as LaTeX that prints it literally (``--`` for None); every template value
    passes here."""
    # no font has the rest
    return (
        "--"
        if value is None
        else re.sub(r"[^\x00-\xff]", "?", str(value).translate(LATEX_SPECIALS))
    )


def fixed(value: float | None, decimals: int = 2, scale: float = 1) -> str | None:
    """``scale * value`` with ``decimals`` digits (filter ``f``; ``pct`` scales by 100); None (a
    missing value, such as a one-seed sd) stays None."""
    return None if value is None else f"{scale * value:.{decimals}f}"


def better(rows: list[dict]) -> list[str]:
    """Single improvements that beat the reference recipe: by their ``verdict`` when the rows have
    one, else by a mean above the reference's by more than the larger of the two seed-to-seed
    sds."""
    ref = next((r for r in rows if r["variant"] == "reference"), None)
    return (
        []
        if ref is None
        else [
            r["variant"]
            for r in rows
            if r["group"] == "improvement"
            and (
                r["verdict"] == "better"
                if "verdict" in r
                else r["test_accuracy_mean"] - ref["test_accuracy_mean"]
                > max(r["test_accuracy_sd"] or 0, ref["test_accuracy_sd"] or 0)
            )
        ]
    )


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


class _Tracing(jinja2.Environment):
    """A jinja2 environment that remembers the artifact file the template last read from."""

    read: Path | None = None

    def getattr(self, obj, attribute):
        self.read = getattr(obj, "_source", self.read)
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        self.read = getattr(obj, "_source", self.read)
        return super().getitem(obj, argument)


def environment() -> _Tracing:
    """A fresh jinja2 environment for the template: LaTeX delimiters, values via :func:`latex`."""
    env = _Tracing(
        loader=jinja2.FileSystemLoader(TEMPLATE.parent),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        block_start_string=r"\BLOCK{",
        block_end_string="}",
        variable_start_string=r"\VAR{",
        variable_end_string="}",
        comment_start_string="((#",
        comment_end_string="#))",
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=latex,
    )
    env.filters.update(f=fixed, pct=lambda x, decimals=2: fixed(x, decimals, 100), better=better)
    return env


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
    ctx["bench"] = load_json(bench, "make bench") if bench.is_file() else None
    metrics_file, analysis_file = files["metrics"][0], files["analysis"][0]
    metrics = ctx["metrics"].get(RUN) if isinstance(ctx["metrics"], dict) else None
    if not isinstance(metrics, dict):
        raise ReportError(
            f"{metrics_file} has no {RUN!r} entry; run notebooks/04_training.ipynb (or `{fix}`)."
        )
    accuracy = _number(metrics.get("test_accuracy"), metrics_file, f"{RUN}.test_accuracy", fix)
    _check_profile(ctx, files, profile, fix)
    a = ctx["analysis"] if isinstance(ctx["analysis"], dict) else {}
    analysed = _number(a.get("test_accuracy"), analysis_file, "test_accuracy", fix)
    if not math.isclose(analysed, accuracy, abs_tol=1e-6):
        raise ReportError(
            f"{analysis_file} (accuracy {analysed}) does not match the {RUN!r} entry of "
            f"{metrics_file} (accuracy {accuracy}); re-run notebooks/05_analysis.ipynb after "
            f"04_training (or `{fix}`)."
        )
    return ctx | {"metrics": metrics, "profile": profile}


def render(
    profile: str = "default", artifacts: Path | None = None, figures: Path | None = None
) -> str:
    """The report's LaTeX: the template filled from the artifacts of ``profile``."""
    ctx, env = context(profile, artifacts, figures), environment()
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
        raise ReportError(
            f"{env.read or 'an artifact'} lacks what {TEMPLATE.name} {where} reads "
            f"({type(exc).__name__}: {exc}); re-create it with "
            f"`{errors.run_all(profile)}`."
        ) from exc


def generate(profile: str = "default") -> Path:
    """Write the filled template to ``<report dir>/generated/<profile>/main.tex``; its path."""
    out = paths.generated_dir() / profile / "main.tex"
    return paths.atomic_write(out, lambda tmp: tmp.write_text(render(profile)))


def pdf_path(profile: str) -> Path:
    """Where ``profile``'s report goes: ``<report dir>/report.pdf``, or ``report-<profile>.pdf``."""
    return paths.report_dir() / ("report.pdf" if profile == "default" else f"report-{profile}.pdf")


def latex_problems(log: str, tolerance_pt: float = OVERFULL_TOLERANCE_PT) -> list[str]:
    """Undefined references/citations and overfull boxes over ``tolerance_pt`` in a LaTeX log."""
    undefined = re.compile(
        r"undefined references|Reference `[^']*' on page \d+ undefined|Citation .* undefined"
    )
    problems = [line.strip() for line in log.splitlines() if undefined.search(line)]
    overfull = re.finditer(r"^(Overfull \\[hv]box \(([\d.]+)pt too \w+\).*)$", log, re.MULTILINE)
    return problems + [m.group(1) for m in overfull if float(m.group(2)) > tolerance_pt]


def latex_error(log: str) -> str | None:
    """The first LaTeX error (``! ...``) of a log: at the start of a line, else after text on it."""
    lines = log.splitlines()
    first = next((line for line in lines if line.startswith("!")), None)
    inside = (m.group(1) for line in lines if (m := re.search(r"(! [A-Z].*)$", line)))
    return first or next(inside, None)


def run_latexmk(folder: Path, source: Path, log_copy: Path | None = None) -> Path:
    """Compile ``source`` in ``folder`` (where figures/ is) into ``folder/report.pdf`` with latexmk;
    its log is copied to ``log_copy`` (when given) before any error names it."""
    if shutil.which("latexmk") is None:
        raise ReportError(
            f"latexmk is not installed, so the PDF cannot be built; install TeX with "
            f"`{LATEX_INSTALL}`."
        )
    cmd = [
        "latexmk",
        "-pdf",
        "-interaction=nonstopmode",
        "-halt-on-error",
        "-jobname=report",
        str(source),
    ]
    proc = subprocess.run(cmd, check=False, cwd=folder, capture_output=True, text=True)
    log = folder / "report.log"
    if log_copy is not None and log.is_file():
        shutil.copyfile(log, log_copy)
        log = log_copy
    if proc.returncode != 0:
        error = latex_error(log.read_text(errors="replace")) if log.is_file() else None
        raise ReportError(
            f"latexmk failed on {source} ({error or proc.stderr.strip()[-300:]}); "
            f"the previous PDF was kept; full log: {log}"
        )
    return folder / "report.pdf"


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
        shutil.copytree(paths.figures_dir(profile), work / "figures")
        (work / "main.tex").write_text(tex)
        log = pdf.with_suffix(".log")
        built = run_latexmk(work, Path("main.tex"), log)
        problems = latex_problems(log.read_text(errors="replace"))
        if problems:
            message = (
                f"{log} reports {len(problems)} problem(s) (undefined references, or "
                f"overfull boxes over {OVERFULL_TOLERANCE_PT:g}pt): "
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
