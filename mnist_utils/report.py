"""`make report`: report/main.tex.j2 filled from the notebooks' JSON artifacts by jinja2, then report.pdf by latexmk."""
from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import jinja2

from . import paths

RUN = "reference"  # the run the report describes: its entry in metrics.json, its folder under runs/<profile>/
FIX = "make run-all"  # the command that (re)produces every required input
TEMPLATE = paths.ROOT / "report" / "main.tex.j2"
LATEX_INSTALL = "apt-get install -y --no-install-recommends texlive-latex-base texlive-latex-recommended " \
    "texlive-science latexmk"
OVERFULL_TOLERANCE_PT = 5.0  # overfull boxes wider than this make a strict build fail

ARTIFACTS = {  # required artifacts/<key>.json (the template reads it as `key`) → the notebook that writes it
    "data_stats": "01_data_exploration", "model_table": "03_model", "analysis": "05_analysis",
    "experiments": "06_experiments", "calibration": "07_calibration_robustness", "robustness": "07_calibration_robustness"}
FIGURES = {  # notebook → the figures (report/figures/<name>.pdf) it writes for the report
    "01_data_exploration": ("sample_batch", "class_distribution", "pixel_histogram"),
    "02_augmentation": ("augmentation_torchvision", "augmentation_batched", "augmentation_equivalence",
                        "flips_counterexample"),
    "03_model": ("untrained_forward",), "04_training": ("learning_curves",),
    "05_analysis": ("confusion_matrix", "misclassified"), "06_experiments": ("experiments",),
    "07_calibration_robustness": ("reliability", "robustness", "saliency")}
LATEX_SPECIALS = str.maketrans({  # characters LaTeX reads as commands, or its OT1 fonts lack → what prints them
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#", "_": r"\_", "%": r"\%",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
    "→": r"$\rightarrow$", "←": r"$\leftarrow$", "↔": r"$\leftrightarrow$", "≥": r"$\geq$", "≤": r"$\leq$",
    "×": r"$\times$", "±": r"$\pm$", "≈": r"$\approx$", "−": "-", "°": r"\textdegree{}",
    "µ": r"$\mu$", "μ": r"$\mu$"})


class ReportError(RuntimeError):
    """The report cannot be built; the one-line message names the file at fault and the command that fixes it."""


def latex(value: object) -> str:
    """Any artifact value as LaTeX that prints it literally (``--`` for None); every template value passes here."""
    return "--" if value is None else re.sub(r"[^\x00-\xff]", "?", str(value).translate(LATEX_SPECIALS))  # no font has the rest


def fixed(value: float | None, decimals: int = 2, scale: float = 1) -> str | None:
    """``scale * value`` with ``decimals`` digits (filter ``f``; ``pct`` scales by 100); None (a missing value, such
    as a one-seed sd) stays None."""
    return None if value is None else f"{scale * value:.{decimals}f}"


def better(rows: list[dict]) -> list[str]:
    """Single improvements that beat the reference recipe: by their ``verdict`` when the rows have one, else by a mean
    above the reference's by more than the larger of the two seed-to-seed sds."""
    ref = next((r for r in rows if r["variant"] == "reference"), None)
    return [] if ref is None else [r["variant"] for r in rows if r["group"] == "improvement" and (
        r["verdict"] == "better" if "verdict" in r else
        r["test_accuracy_mean"] - ref["test_accuracy_mean"] > max(r["test_accuracy_sd"] or 0, ref["test_accuracy_sd"] or 0))]


ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATE.parent), autoescape=False, undefined=jinja2.StrictUndefined,
    block_start_string=r"\BLOCK{", block_end_string="}", variable_start_string=r"\VAR{", variable_end_string="}",
    comment_start_string="((#", comment_end_string="#))", trim_blocks=True, lstrip_blocks=True, finalize=latex,
)
ENV.filters.update(f=fixed, pct=lambda x, decimals=2: fixed(x, decimals, 100), better=better)


def load_json(path: Path):
    """Parse an artifact (NaN and ±Infinity, e.g. an undefined sd, become None); a bad file is a ReportError."""
    try:
        return json.loads(path.read_text(), parse_constant=lambda _: None)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReportError(f"{path} is not readable JSON ({exc}); re-create it with `{FIX}`.") from exc


def inputs(artifacts: Path, figures: Path) -> dict[str, tuple[Path, str]]:
    """Every required input: template name → (path, notebook that writes it); the runs are those of the profile the
    pipeline last ran (analysis.json says)."""
    analysis = load_json(artifacts / "analysis.json") if (artifacts / "analysis.json").is_file() else {}
    run = artifacts / "runs" / (analysis.get("profile", "default") if isinstance(analysis, dict) else "default")
    files = {key: (artifacts / f"{key}.json", nb) for key, nb in ARTIFACTS.items()}
    files |= {"metrics": (run / "metrics.json", "04_training"), "history": (run / RUN / "history.json", "04_training")}
    return files | {f"figure {name}": (figures / f"{name}.pdf", nb) for nb, names in FIGURES.items() for name in names}


def missing_inputs(artifacts: Path | None = None, figures: Path | None = None) -> list[str]:
    """One entry per required input that is absent (empty when the report can be built)."""
    files = inputs(artifacts or paths.artifacts_dir(), figures or paths.figures_dir())
    return [f"{path} (notebooks/{nb}.ipynb)" for path, nb in files.values() if not path.is_file()]


def context(artifacts: Path | None = None, figures: Path | None = None) -> dict:
    """Every artifact the template reads, parsed and checked for a stale analysis.json."""
    artifacts, figures = artifacts or paths.artifacts_dir(), figures or paths.figures_dir()
    missing = missing_inputs(artifacts, figures)
    if missing:
        raise ReportError(f"the report needs {len(missing)} missing file(s): {'; '.join(missing)}; run `{FIX}`.")
    files = inputs(artifacts, figures)
    ctx = {key: load_json(path) for key, (path, _) in files.items() if path.suffix == ".json"}
    ctx["bench"] = load_json(artifacts / "bench.json") if (artifacts / "bench.json").is_file() else None
    metrics = ctx["metrics"].get(RUN) if isinstance(ctx["metrics"], dict) else None
    if not isinstance(metrics, dict):
        raise ReportError(f"{files['metrics'][0]} has no {RUN!r} entry; run notebooks/04_training.ipynb (or `{FIX}`).")
    a = ctx["analysis"] if isinstance(ctx["analysis"], dict) else {}
    if a.get("profile") != metrics.get("profile") or not math.isclose(a.get("test_accuracy", -1),
                                                                      metrics.get("test_accuracy", -2), abs_tol=1e-6):
        raise ReportError(
            f"{files['analysis'][0]} (profile {a.get('profile')!r}, accuracy {a.get('test_accuracy')}) does not match "
            f"the {RUN!r} entry of {files['metrics'][0]} (profile {metrics.get('profile')!r}, accuracy "
            f"{metrics.get('test_accuracy')}); re-run notebooks/05_analysis.ipynb after 04_training (or `{FIX}`).")
    return ctx | {"metrics": metrics}


def render(artifacts: Path | None = None, figures: Path | None = None) -> str:
    """The report's LaTeX: the template filled from the artifacts."""
    ctx = context(artifacts, figures)
    try:
        return ENV.get_template(TEMPLATE.name).render(ctx)
    except (jinja2.UndefinedError, LookupError, TypeError, ValueError, AttributeError, ZeroDivisionError) as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(TEMPLATE)]
        where = f"line {frames[-1].lineno} ({(frames[-1].line or '').strip()[:120]})" if frames else "?"
        raise ReportError(f"an artifact lacks what {TEMPLATE.name} {where} reads ({type(exc).__name__}: {exc}); "
                          f"re-create the artifacts with `{FIX}`.") from exc


def generate() -> Path:
    """Write the filled template to ``<report dir>/generated/main.tex``; return its path."""
    tex, out = render(), paths.generated_dir() / "main.tex"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(tex)
    return out


def latex_problems(log: str, tolerance_pt: float = OVERFULL_TOLERANCE_PT) -> list[str]:
    """Undefined references/citations and overfull boxes wider than ``tolerance_pt`` reported in a LaTeX log."""
    undefined = re.compile(r"undefined references|Reference `[^']*' on page \d+ undefined|Citation .* undefined")
    problems = [line.strip() for line in log.splitlines() if undefined.search(line)]
    overfull = re.finditer(r"^(Overfull \\[hv]box \(([\d.]+)pt too \w+\).*)$", log, re.MULTILINE)
    return problems + [m.group(1) for m in overfull if float(m.group(2)) > tolerance_pt]


def run_latexmk(folder: Path, source: Path) -> Path:
    """Compile ``source`` in ``folder`` (where figures/ is) into ``folder/report.pdf`` with latexmk."""
    if shutil.which("latexmk") is None:
        raise ReportError(f"latexmk is not installed, so the PDF cannot be built; install TeX with `{LATEX_INSTALL}`.")
    cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-jobname=report", str(source)]
    proc = subprocess.run(cmd, check=False, cwd=folder, capture_output=True, text=True)
    if proc.returncode != 0:
        log = folder / "report.log"
        errors = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("!")] \
            if log.is_file() else []
        raise ReportError(f"latexmk failed ({errors[0] if errors else proc.stderr.strip()[-300:]}); full log: {log}")
    return folder / "report.pdf"


def build(strict: bool = True) -> Path:
    """Fill the template, compile ``<report dir>/report.pdf`` and check its log; return the PDF path."""
    folder = paths.report_dir()
    pdf = run_latexmk(folder, generate().relative_to(folder))
    problems = latex_problems((folder / "report.log").read_text(errors="replace"))
    if problems:
        message = (f"{folder / 'report.log'} reports {len(problems)} problem(s) (undefined references, or overfull "
                   f"boxes over {OVERFULL_TOLERANCE_PT:g}pt): {' | '.join(problems)}; fix {TEMPLATE}.")
        if strict:
            raise ReportError(message)
        print(f"warning: {message}", file=sys.stderr)
    return pdf


def main(argv: list[str] | None = None) -> int:
    """CLI: ``generate`` writes the filled LaTeX, ``build`` also compiles the PDF; errors print one line."""
    parser = argparse.ArgumentParser(prog="python -m mnist_utils.report", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["generate", "build"], help="generate: write <report dir>/generated/main.tex;"
                        " build: also compile <report dir>/report.pdf with latexmk")
    parser.add_argument("--no-strict", action="store_true", help="warn instead of failing on overfull boxes/undefined refs")
    args = parser.parse_args(argv)
    try:
        print(f"wrote {generate() if args.command == 'generate' else build(strict=not args.no_strict)}")
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
