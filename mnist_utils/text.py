"""Words for counts, shared by the course's pages, its figures and the report."""

from __future__ import annotations


def plural(count: int, word: str, words: str | None = None) -> str:
    """``3 seeds``, ``1 epoch``: a count with its noun in the right number."""
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"a count must be an integer, not {count!r}")
    return f"{count:,} {word if count == 1 else words or word + 's'}"
