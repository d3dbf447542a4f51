"""The explorers of mnist_utils.widgets without a browser: they show what they were given."""

from __future__ import annotations

import numpy as np
import torch
from conftest import lesson_namespace

from mnist_utils import augment, widgets


def test_an_image_on_the_page_decodes_to_its_pixels():
    pixels = torch.rand(28, 28)
    page = widgets.img_tag(pixels, 3, "a") + widgets.img_tag(pixels.T, 5, "b")
    assert (widgets.shown_images(page, "a")[0] == widgets.to_u8(pixels)).all()
    assert (widgets.shown_images(page, "b")[0] == widgets.to_u8(pixels.T)).all()


def test_the_affine_explorer_shows_the_lessons_matrix_for_its_sliders():
    lesson = lesson_namespace("02_augmentation.ipynb")
    x = torch.rand(4, 1, 28, 28)
    g = torch.Generator().manual_seed(0)
    explorer = widgets.AffineExplorer(
        x,
        lesson["compose_affine"],
        lesson["augment_images"],
        lesson["torchvision_steps"],
        lesson["centred_crop"],
        lambda n: augment.sample_params(n, g),
    )
    explorer.angle.value, explorer.scale.value, explorer.dy.value = 7.5, 0.75, -2.0
    expected = lesson["compose_affine"](*explorer.params())[0].numpy()
    assert np.allclose(explorer.shown_matrix()[:2], expected, atol=6e-4)
    assert not np.allclose(expected, np.eye(3)[:2], atol=1e-2)
    explorer.draw_button.click()
    assert len(widgets.shown_images(explorer.gallery.value, "affine-draw")) == 4


def test_a_click_on_a_confusion_cell_shows_its_images_once():
    labels, pred = torch.tensor([4, 4, 4, 9, 4]), torch.tensor([9, 9, 4, 9, 9])
    probs = torch.full((5, 10), 0.01)
    probs[torch.arange(5), pred] = torch.tensor([0.6, 0.9, 0.8, 0.9, 0.7])
    cm = torch.bincount(labels * 10 + pred, minlength=100).view(10, 10)
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)

    def cell(t: int, p: int) -> torch.Tensor:
        idx = ((labels == t) & (pred == p)).nonzero().squeeze(1)
        return idx[probs[idx, p].argsort(descending=True)]

    explorer = widgets.ConfusionExplorer(cm, cell, images, probs)
    updates = []
    explorer.output.observe(lambda change: updates.append(change), names="value")
    explorer.buttons[9, 4].click()
    explorer.buttons[4, 9].click()
    assert len(updates) == 2, "one update per click, though both menus change"
    assert explorer.indices.tolist() == [1, 4, 0]
    shown = widgets.shown_images(explorer.output.value, "cell-image")
    assert [s.tolist() for s in shown] == [images[i].tolist() for i in (1, 4, 0)]
