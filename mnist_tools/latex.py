"""The LaTeX side of the report: artifact values printed literally, the template's filters, the
jinja2 environment that fills it, and latexmk with the checks of its log."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import jinja2

from mnist_utils import errors
from mnist_utils.text import plural

LATEX_INSTALL = (
    "apt-get install -y --no-install-recommends texlive-latex-base texlive-latex-recommended "
    "texlive-science latexmk"
)
OVERFULL_TOLERANCE_PT = 5.0  # overfull boxes wider than this make a strict build fail
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
        "−": r"\ensuremath{-}",
        "°": r"\textdegree{}",
        "µ": r"$\mu$",
        "μ": r"$\mu$",
        "Δ": r"$\Delta$",
        "σ": r"$\sigma$",
    }
)
DEFAULT_ARGUMENTS = re.compile(
    r", (?:stride=\(1, 1\)|padding=0|dilation=1|ceil_mode=False|inplace=False|bias=True)(?=[,)])"
)
"""Arguments a PyTorch layer's description repeats at their defaults: the layer table omits them."""
URL = re.compile(r"https?://[A-Za-z0-9._~:/-]+")


class ReportError(errors.MnistError):
    """The report cannot be built: the message names the file at fault and the command that fixes
    it."""


class Raw(str):
    """LaTeX that a filter made from a number or a checked URL: printed as it is, not escaped."""


def latex(value: object) -> str:
    """Any template value as LaTeX that prints it literally (``--`` for None): text escaped, a
    hyphen before a digit as a minus sign (in text or math); numbers and :class:`Raw` as they
    are."""
    if value is None:
        return "--"
    if isinstance(value, Raw) or (isinstance(value, int | float) and not isinstance(value, bool)):
        return str(value)
    text = str(value).translate(LATEX_SPECIALS)
    text = re.sub(r"(?<![\w.])-(?=\d)", r"\\ensuremath{-}", text)
    return re.sub(r"[^\x00-\xff]", "?", text)  # no font has the rest


def fixed(value: float | None, decimals: int = 2, scale: float = 1, sign: str = "") -> Raw | None:
    """``scale * value`` with ``decimals`` digits (filter ``f``; ``pct`` scales by 100, ``signed``
    writes the sign); None (a missing value, such as a one-seed sd) stays None."""
    return None if value is None else Raw(f"{scale * value:{sign}.{decimals}f}")


def p_value(p: float) -> Raw:
    """A p-value with two significant digits, or ``< 0.001`` (for math mode)."""
    return Raw("< 0.001" if p < 0.001 else f"{p:#.2g}")  # 0.10, not 0.1: two digits each


def url(value: str) -> str:
    """A web address as a link (``\\url``), or as plain text when it is not a simple one."""
    return Raw(rf"\url{{{value}}}") if URL.fullmatch(str(value)) else str(value)


def layer(description: str) -> str:
    """A PyTorch layer's description without the arguments it repeats at their defaults."""
    return DEFAULT_ARGUMENTS.sub("", str(description))


class _Tracing(jinja2.Environment):
    """A jinja2 environment that remembers the artifact file the template last read from."""

    read: Path | None = None

    def getattr(self, obj, attribute):
        """``obj.attribute``, noting the artifact ``obj`` came from."""
        self.read = getattr(obj, "_source", self.read)
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        """``obj[argument]``, noting the artifact ``obj`` came from."""
        self.read = getattr(obj, "_source", self.read)
        return super().getitem(obj, argument)


def environment(folder: Path) -> _Tracing:
    """A fresh jinja2 environment for the templates in ``folder``: LaTeX delimiters, every value
    through :func:`latex`."""
    env = _Tracing(
        loader=jinja2.FileSystemLoader(folder),
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
    env.filters.update(
        f=fixed,
        pct=lambda x, decimals=2: fixed(x, decimals, 100),
        signed=lambda x, decimals=2, scale=1: fixed(x, decimals, scale, "+"),
        plural=plural,
        p=p_value,
        url=url,
        layer=layer,
    )
    env.tests["startingwith"] = lambda value, prefix: str(value).startswith(prefix)
    return env


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
    """Compile ``source`` in ``folder`` (where figures/ and the bibliography are) into
    ``folder/report.pdf`` with latexmk (BibTeX included); its log is copied to ``log_copy`` (when
    given) before any error names it."""
    if shutil.which("latexmk") is None:
        raise ReportError(
            f"latexmk is not installed, so the PDF cannot be built; install TeX with "
            f"`{LATEX_INSTALL}`."
        )
    cmd = [
        "latexmk",
        "-pdf",
        "-bibtex",
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
