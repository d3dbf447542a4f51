"""Notebook 09's exercises: the worked solutions, applied as the Solutions section writes them."""

from __future__ import annotations

import json
import re

import pytest
from notebook_edits import printed, run, unpublished

pytestmark = pytest.mark.slow
NB = "09_speed.ipynb"
SETTINGS = "BATCH_SIZE, LR, BETAS, SMOOTHING = 256, 2e-2, (0.7, 0.9), 0.1"
BIGGER = "BATCH_SIZE, LR, BETAS, SMOOTHING = 512, 2e-2, (0.7, 0.9), 0.1"
LEARNED = """    whiten = nn.Conv2d(1, 24, 5, stride=2)
    whiten.pairs = 12"""


def test_the_published_solutions_are_the_tested_ones():
    assert not unpublished(NB, BIGGER, LEARNED, "torch.set_num_threads(1)")


def parameters(out: str) -> int:
    return int(
        re.search(r"the racer's network: ([\d,]+) trained parameters", out)[1].replace(",", "")
    )


def test_a_learned_first_layer_adds_624_parameters_and_batches_of_512_still_race(tmp_path):
    plain = parameters(printed(run(NB, tmp_path)))
    out = printed(run(NB, tmp_path, [(SETTINGS, BIGGER), ("    whiten = Whiten()", LEARNED)]))
    assert parameters(out) == plain + 24 * 25 + 24
    speed = json.loads((tmp_path / "artifacts/runs/quick/speed.json").read_text())
    assert 0.1 < speed["racer"]["accuracy"] <= 1 and re.search(r"one epoch on 5,000 images", out)
