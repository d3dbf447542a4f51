"""The explorers of notebooks 02, 03, 05 and 07 and the pad of 08 without a browser: a control
moved as a mouse would move it, and what the page then shows checked against the lesson's code."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import lesson_namespace
from pages import shown_images, shown_matrix

from mnist_utils import augment, calibration, engine, explorers, models, widgets


def test_an_image_on_the_page_decodes_to_its_pixels():
    pixels = torch.rand(28, 28)
    page = widgets.img_tag(pixels, 3, "a") + widgets.img_tag(pixels.T, 5, "b")
    assert (shown_images(page, "a")[0] == widgets.to_u8(pixels)).all()
    assert (shown_images(page, "b")[0] == widgets.to_u8(pixels.T)).all()


@pytest.fixture(scope="module")
def affine(test_split):
    """Notebook 02's explorer on eight test digits, built from the notebook's own functions."""
    lesson = lesson_namespace("02_augmentation.ipynb")
    x = augment.to_unit(test_split.images[:8])
    g = torch.Generator().manual_seed(2)
    explorer = explorers.AffineExplorer(
        x,
        lesson["compose_affine"],
        lesson["augment_images"],
        lesson["torchvision_steps"],
        lesson["centred_crop"],
        lambda n: augment.sample_params(n, g),
    )
    return lesson, x, explorer


def test_the_affine_sliders_show_the_lessons_matrix_and_warp(affine):
    lesson, x, explorer = affine
    explorer.angle.value, explorer.scale.value, explorer.ratio.value = -8.0, 0.8, 1.05
    explorer.dx.value, explorer.dy.value = 2.0, -1.0
    theta = lesson["compose_affine"](*explorer.params())
    shown = shown_matrix(explorer.output.value)
    assert np.allclose(shown[:2], theta[0].numpy(), atol=6e-4) and shown[2].tolist() == [0, 0, 1]
    warped = widgets.to_u8(lesson["augment_images"](x[:1], theta)[0, 0])
    assert (shown_images(explorer.output.value, "affine-ours")[0] == warped).all()
    assert (explorer.ours - explorer.reference).abs().mean() < 0.05, "alike up to interpolation"
    explorer.angle.value = 6.0
    assert not np.allclose(shown_matrix(explorer.output.value), shown, atol=1e-3)


def test_a_random_draw_warps_every_digit_with_its_own_matrix(affine):
    lesson, x, explorer = affine
    explorer.draw_button.click()
    params, batch = explorer.draws
    assert len(shown_images(explorer.gallery.value, "affine-draw")) == len(x)
    assert len(params["angle"].unique()) == len(x), "one draw per image"
    theta = lesson["compose_affine"](params["angle"], params["crop"], params["shift"])
    assert torch.equal(batch, lesson["augment_images"](x, theta))


def test_the_feature_map_slider_shows_the_maps_forward_classifies(test_split):
    lesson = lesson_namespace("03_model.ipynb")
    torch.manual_seed(0)
    net = lesson["ReferenceCNN"]().eval()
    prepare = lambda u8: augment.normalize(augment.to_unit(u8))  # noqa: E731
    explorer = explorers.FeatureMapExplorer(
        test_split.images[:16],
        test_split.labels[:16],
        lambda u8: lesson["feature_maps"](net, prepare(u8)),
        net.conv1.weight,
    )
    explorer.index.value = 7  # as a drag of the slider would set it
    x7 = prepare(test_split.images[7:8])
    with torch.no_grad():
        block1, block2 = lesson["feature_maps"](net, x7)
        rest = F.log_softmax(net.fc2(F.relu(net.fc1(torch.flatten(block2, 1)))), dim=1)
        assert torch.allclose(rest, net(x7), atol=1e-5), "the maps are the ones forward classifies"
    page = explorer.output.value
    assert (shown_images(page, "digit")[0] == test_split.images[7].numpy()).all()
    assert (shown_images(page, "block1")[0] == widgets.to_u8(widgets.mosaic(block1[0]))).all()
    assert (shown_images(page, "block2")[0] == widgets.to_u8(widgets.mosaic(block2[0]))).all()


def test_a_click_on_a_confusion_cell_shows_its_images_once():
    labels, pred = torch.tensor([4, 4, 4, 9, 4]), torch.tensor([9, 9, 4, 9, 9])
    probs = torch.full((5, 10), 0.01)
    probs[torch.arange(5), pred] = torch.tensor([0.6, 0.9, 0.8, 0.9, 0.7])
    cm = torch.bincount(labels * 10 + pred, minlength=100).view(10, 10)
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)

    def cell(t: int, p: int) -> torch.Tensor:
        idx = ((labels == t) & (pred == p)).nonzero().squeeze(1)
        return idx[probs[idx, p].argsort(descending=True)]

    explorer = explorers.ConfusionExplorer(cm, cell, images, probs)
    updates = []
    explorer.output.observe(lambda change: updates.append(change), names="value")
    explorer.buttons[9, 4].click()
    explorer.buttons[4, 9].click()
    assert len(updates) == 2, "one update per click, though both menus change"
    assert explorer.indices.tolist() == [1, 4, 0]
    shown = shown_images(explorer.output.value, "cell-image")
    assert [s.tolist() for s in shown] == [images[i].tolist() for i in (1, 4, 0)]


def test_every_confusion_cell_shows_exactly_its_images_with_the_lessons_top_3(
    test_split, tiny_checkpoint
):
    from mnist_utils import checkpoints

    model = checkpoints.load_model(tiny_checkpoint)[0]
    test = test_split.subset(500)
    probs = engine.predict_log_probs(model, test.images).exp()
    pred = probs.argmax(1)
    lesson = lesson_namespace("05_analysis.ipynb", test=test, pred=pred, probs=probs)
    cm = lesson["cm"]
    explorer = explorers.ConfusionExplorer(cm, lesson["cell_images"], test.images, probs)
    mistakes = cm - torch.diag(cm.diagonal())
    for t, p in [(4, 9), divmod(int(mistakes.argmax()), 10), (3, 3)]:
        explorer.buttons[t, p].click()
        expected = ((test.labels == t) & (pred == p)).nonzero().squeeze(1)
        assert (explorer.true.value, explorer.predicted.value) == (t, p)
        assert len(explorer.indices) == cm[t, p], "as many as the matrix counts"
        assert sorted(explorer.indices.tolist()) == expected.tolist(), "exactly the cell's images"
        confidence = probs[explorer.indices, p]
        assert (confidence[:-1] >= confidence[1:]).all(), "most confident first"
        shown = shown_images(explorer.output.value, "cell-image")
        assert len(shown) == min(len(expected), explorer.limit)
        for image, i in zip(shown, explorer.indices.tolist()):
            assert (image == test.images[i].numpy()).all(), f"test image {i}, pixel for pixel"
        top3 = re.findall(r"<code>(\d) ([\d.]+)</code>", explorer.output.value)
        assert len(top3) == 3 * len(shown) and all(int(d) == p for d, _ in top3[::3])


def test_the_perturbation_slider_shows_the_curves_own_point(test_split):
    torch.manual_seed(0)
    model = models.ReferenceCNN().eval()
    test = test_split.subset(200)
    levels = {"rotation": [0, 30], "noise": [0.0, 0.3]}
    curves = {
        kind: calibration.robustness_curve(model, test.images, test.labels, kind, at)
        for kind, at in levels.items()
    }

    def accuracy_at(kind, level):
        curve = calibration.robustness_curve(model, test.images, test.labels, kind, [level])
        return curve[0]["accuracy"]

    explorer = explorers.PerturbExplorer(
        test.images[:8],
        test.labels[:8],
        calibration.perturb,
        lambda x: engine.predict_log_probs_unit(model, x),
        accuracy_at,
        curves,
        {"rotation": (0, 60, 5), "noise": (0, 0.6, 0.05)},
    )
    for kind, level in (("noise", 0.3), ("rotation", 30)):
        explorer.kind.value, explorer.level.value = kind, level
        perturbed = calibration.perturb(test.images[:8], kind, level)
        answers = engine.predict_log_probs_unit(model, perturbed).argmax(1)
        point = next(r["accuracy"] for r in curves[kind] if r["level"] == level)
        assert explorer.accuracy == point and f"{100 * point:.1f} %" in explorer.output.value
        assert torch.equal(explorer.answers, answers)
        shown = shown_images(explorer.output.value, "perturbed")
        assert len(shown) == 8
        assert all((s == widgets.to_u8(p[0])).all() for s, p in zip(shown, perturbed))
    explorer.kind.value = "noise"
    assert (explorer.level.min, explorer.level.max) == (0, 0.6), "the slider spans the noise levels"
