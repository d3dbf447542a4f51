"""The one error type a user can act on, and the make commands that its messages name as fixes."""

from __future__ import annotations


class MnistError(Exception):
    """Something the user can fix: the message is one line naming what is wrong, which file, and
    the command that fixes it. Every error of the course and its tools derives from it."""


DATA = "make data"
DATA_REPAIR = "make data-repair"
VENV = "make venv"
BENCH = "make bench"
REPORT = "make report"


def _profile(profile: str) -> str:
    return "" if profile == "default" else f" PROFILE={profile}"


def run_all(profile: str = "default") -> str:
    """The command that (re)creates every output of ``profile``."""
    return "make run-all" + _profile(profile)


def notebook(stem: str, profile: str = "default") -> str:
    """The command that runs one notebook, e.g. ``make nb/04_training``."""
    return f"make nb/{stem}" + _profile(profile)


def experiments(profile: str = "default") -> str:
    """The command that trains the study's runs (notebook 06)."""
    return "make experiments" + _profile(profile)
