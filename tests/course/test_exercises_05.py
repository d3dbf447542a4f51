"""Notebook 05's exercises: the worked solutions, applied as the Solutions section writes them."""

from __future__ import annotations

import re
import shutil

import pytest
from notebook_edits import printed, run, unpublished

pytestmark = pytest.mark.slow
NB = "05_analysis.ipynb"
FROM_CM = """\
recall_cm = cm.diagonal() / cm.sum(1)  # row d: the images of d
precision_cm = cm.diagonal() / cm.sum(0)  # column d: the images predicted as d
print("recall matches:", torch.allclose(recall_cm.double(), torch.from_numpy(recall)))
print("precision matches:", torch.allclose(precision_cm.double(), torch.from_numpy(precision)))"""
BY_ROW = """\
rates = cm / cm.sum(1, keepdim=True)  # row t: where the images of digit t go
print("rows add up to 1:", torch.allclose(rates.sum(1), torch.ones(10)))
print("diagonal = recall:", torch.allclose(rates.diagonal().double(), torch.from_numpy(recall)))
sns.heatmap(rates.numpy(), annot=True, fmt=".3f", cmap="Reds", annot_kws={"fontsize": 7});"""
SEVERAL = '''\
names = ["reference"] + [f"{v}-seed{s}" for v in ("reference", "improved_clean") for s in range(5)]
names = [n for n in names if paths.checkpoint_path(n, profile).is_file()]  # those trained


def confusion(name):
    """The confusion matrix of run `name` on the test images, in the precision it trained in."""
    model, cfg, _ = checkpoints.load_model(paths.checkpoint_path(name, profile))
    predicted = engine.predict_log_probs(model, test.images, cfg.precision).argmax(1)
    return torch.bincount(test.labels * 10 + predicted, minlength=100).view(10, 10)


summed = sum(confusion(n) for n in names)
both = summed + summed.T
ranked = sorted(
    ((int(both[a, b]), a, b) for a in range(10) for b in range(a + 1, 10)), reverse=True
)
print(f"{len(names)} models:", ", ".join(f"{a}↔{b} ({n})" for n, a, b in ranked[:6]))'''
COST = """\
cost = 1 - torch.eye(10, dtype=torch.float64)  # cost[true, answer]: every mistake costs 1
decide = (probs.double() @ cost).argmin(1)  # each answer's expected cost; the cheapest
print("all costs 1, the same answers as pred:", torch.equal(decide, pred))
cost[worst] = 5.0
decide = (probs.double() @ cost).argmin(1)
cm_cost = torch.bincount(test.labels * 10 + decide, minlength=100).view(10, 10)
print(
    f"{worst[0]} read as {worst[1]}: {int(cm[worst])} -> {int(cm_cost[worst])}; "
    f"all errors: {errors} -> {int((decide != test.labels).sum())}"
)"""
# the second model of exercise 5 is a copy of the first: the summed matrix is exactly twice cm
TWICE = 'print("summed twice:", names, torch.equal(summed, 2 * cm))'


def test_the_published_solutions_are_the_tested_ones():
    assert not unpublished(NB, FROM_CM, BY_ROW, SEVERAL, COST)


def test_scores_from_the_matrix_rates_by_row_several_models_and_a_cost_matrix(tmp_path):
    run("04_training.ipynb", tmp_path)
    folder = tmp_path / "artifacts/runs/quick"
    shutil.copytree(folder / "reference", folder / "reference-seed0")  # a second trained run
    out = printed(run(NB, tmp_path, append=(FROM_CM, BY_ROW, SEVERAL, TWICE, COST)))
    assert "recall matches: True" in out and "precision matches: True" in out
    assert "rows add up to 1: True" in out and "diagonal = recall: True" in out
    assert "2 models:" in out and "summed twice: ['reference', 'reference-seed0'] True" in out
    assert "all costs 1, the same answers as pred: True" in out
    costly, costly_after, _, _ = map(
        int, re.search(r"read as \d: (\d+) -> (\d+); all errors: (\d+) -> (\d+)", out).groups()
    )
    assert costly_after < costly, "the dearer mistake is made less often"
