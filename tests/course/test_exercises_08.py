"""Notebook 08's exercises: the worked solutions, applied as the Solutions section writes them."""

from __future__ import annotations

import ast
import re

import pytest
from notebook_edits import printed, run, unpublished

pytestmark = pytest.mark.slow
NB = "08_draw_a_digit.ipynb"
PEN = """\
for pen in (10, drawpad.PEN, 40):
    x = digits.preprocess(drawpad.render([seven], pen=pen))
    top3 = digits.top_k(digits.predict_images(pad.model(), x[None])[0])
    print(f"pen {pen}: {int((x > 128).sum())} ink pixels in the 28×28 input, top 3 {top3}")"""
BY_BOX = """\
import numpy as np
from scipy import ndimage

ink7 = 1 - np.asarray(drawpad.render([seven]), dtype=np.float64) / 255  # bright ink on black
mask = ink7 > digits.INK_FRACTION
box = digits.fit_box((ink7 * mask)[digits.bounds(mask)])  # cropped, fitted into 20×20
by_box = np.zeros((28, 28))
top, left = (28 - box.shape[0]) // 2, (28 - box.shape[1]) // 2
by_box[top : top + box.shape[0], left : left + box.shape[1]] = box
for how, field in (("by mass", digits.place_centred(box)), ("by box", by_box)):
    x = torch.from_numpy(np.rint(field * 255).astype(np.uint8))
    row, col = ndimage.center_of_mass(field)
    top3 = digits.top_k(digits.predict_images(pad.model(), x[None])[0])
    print(f"centred {how}: centre of mass at row {row:.1f}, column {col:.1f}; top 3 {top3}")"""
# centred by mass, the steps give exactly the pad's input
SAME = """\
by_mass = torch.from_numpy(np.rint(digits.place_centred(box) * 255).astype(np.uint8))
print("the pad's input:", torch.equal(by_mass, seven_reading["input"]))"""
REFUSE = '''\
import math

from mnist_utils import runs

circle = [
    (140 + 110 * math.cos(k * math.pi / 12), 140 + 110 * math.sin(k * math.pi / 12))
    for k in range(25)
]
face = [circle, [(100, 105)], [(180, 105)], [(95, 165), (140, 200), (185, 165)]]
print("a smiley:", read_digit(drawpad.render(face), pad.model())["top3"])


def read_or_refuse(image, model, threshold=0.9):
    """read_digit, or None where the most probable digit has less than `threshold`."""
    reading = read_digit(image, model)
    return None if reading is None or reading["top3"][0][1] < threshold else reading


test = runs.test_split_for(config.for_profile(config.RunConfig(), profile))
confidence, answer = digits.predict_images(pad.model(), test.images).max(1)
right = answer == test.labels
print(f"{len(test):,} test digits, {right.double().mean():.2%} right")
for threshold in (0.5, 0.9, 0.99):
    kept = confidence >= threshold
    print(
        f"threshold {threshold}: {1 - kept.double().mean():.1%} refused, "
        f"{right[kept].double().mean():.2%} of the rest right"
    )'''
# read_or_refuse refuses the 7 at a threshold above its probability, and reads it below
THRESHOLD = """\
p7 = seven_reading["top3"][0][1]
image7 = drawpad.render([seven])
print("refuses above:", read_or_refuse(image7, pad.model(), threshold=p7 + 1e-6) is None)
print("reads below:", read_or_refuse(image7, pad.model(), threshold=p7 / 2) is not None)"""
SHIFT = '''\
def shift(images, down, right):
    """uint8 images [..., 28, 28] moved by at most one pixel each way, black coming in."""
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    return padded[..., 1 - down : 29 - down, 1 - right : 29 - right]


net, x = pad.model(), seven_reading["input"]
moves = [(0, 0), (1, 0), (0, 1), (-1, 0), (0, -1)]  # (down, right) in pixels
shifted = torch.stack([shift(x, *move) for move in moves])
for move, probs in zip(moves, digits.predict_images(net, shifted)):
    print(move, digits.top_k(probs))
test = runs.test_split_for(config.for_profile(config.RunConfig(), profile))
answer = digits.predict_images(net, test.images).argmax(1)
stable = torch.ones(len(test), dtype=torch.bool)
for move in moves[1:]:
    stable &= digits.predict_images(net, shift(test.images, *move)).argmax(1) == answer
share = stable.double().mean().item()
print(f"{share:.1%} of {len(test):,} test digits keep their answer in every shift")'''
SEVEN = 'print("the 7:", seven_reading["top3"])'


def test_the_published_solutions_are_the_tested_ones():
    assert not unpublished(NB, PEN, BY_BOX, REFUSE, SHIFT)


def test_pens_centring_by_the_box_a_refusal_threshold_and_one_pixel_shifts(tmp_path):
    run("04_training.ipynb", tmp_path)
    out = printed(run(NB, tmp_path, append=(PEN, BY_BOX, SAME, REFUSE, THRESHOLD, SHIFT, SEVEN)))

    ink = [int(n) for n in re.findall(r"pen \d+: (\d+) ink pixels", out)]
    assert len(ink) == 3 and ink[0] < ink[1] < ink[2], "a thicker pen, more ink in the input"

    centres = {
        how: (float(row), float(col))
        for how, row, col in re.findall(
            r"centred by (\w+): centre of mass at row (\S+), column (\S+);", out
        )
    }
    assert "the pad's input: True" in out
    assert all(abs(c - 14) <= 0.5 for c in centres["mass"]), "by mass: in the middle"
    assert max(abs(c - 14) for c in centres["box"]) > 0.5, "by box: a 7's mass is elsewhere"

    assert re.search(r"a smiley: \[\[\d, ", out), "a non-digit still gets a digit"
    overall = float(re.search(r"test digits, ([\d.]+)% right", out)[1])
    rows = [
        tuple(map(float, r))
        for r in re.findall(r"threshold \S+: ([\d.]+)% refused, ([\d.]+)% of the rest", out)
    ]
    refused = [r[0] for r in rows]
    assert len(rows) == 3 and refused == sorted(refused), "a higher threshold refuses more"
    assert all(kept >= overall for _, kept in rows), "the digits kept are read better than all"
    assert "refuses above: True" in out and "reads below: True" in out

    seven = ast.literal_eval(re.search(r"the 7: (\[\[.*\]\])", out)[1])
    unshifted = ast.literal_eval(re.search(r"^\(0, 0\) (\[\[.*\]\])$", out, re.M)[1])
    assert [d for d, _ in unshifted] == [d for d, _ in seven], "no shift, the same reading"
    assert [p for _, p in unshifted] == pytest.approx([p for _, p in seven], abs=1e-5)
    assert 0 < float(re.search(r"([\d.]+)% of [\d,]+ test digits keep their answer", out)[1]) <= 100
