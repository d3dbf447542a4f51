"""Notebook 06's exercises: the worked solutions, applied as the Solutions section writes them."""

from __future__ import annotations

import re

import pytest
from notebook_edits import printed, run, unpublished

pytestmark = pytest.mark.slow
NB = "06_experiments.ipynb"
HOLM = """p = [0.01, 0.02, 0.03, 0.2]
print(holm(p), [min(1, len(p) * q) for q in p])"""
TWO = """two = ensemble_probs(members[:2], data.val.images, precision=precision)
print(f"two members: {100 * accuracy(two, data.val.labels):.2f} % on validation")"""
PAIRED = """pairs = [by_name["onecycle"]["test"], by_name["lr_3e-3"]["test"]]
print(stats.ttest_rel(*pairs))"""


def test_the_published_solutions_are_the_tested_ones():
    assert not unpublished(NB, HOLM, TWO, PAIRED)


def test_holm_bonferroni_two_members_and_a_paired_test(tmp_path):
    out = printed(run(NB, tmp_path, append=(HOLM, TWO)))
    holm, bonferroni = re.search(r"\[([\d.\s]+)\] \[([\d., ]+)\]", out).groups()
    assert [float(x) for x in holm.split()] == pytest.approx([0.04, 0.06, 0.06, 0.2])
    assert [float(x) for x in bonferroni.split(",")] == pytest.approx([0.04, 0.08, 0.12, 0.8])
    assert re.search(r"two members: \d+\.\d\d % on validation", out)
