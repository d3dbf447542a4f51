"""One source of truth: the code a notebook teaches is the toolbox code the pipeline runs."""

from __future__ import annotations

import inspect

import pytest
import torch
from conftest import lesson_namespace, lesson_source

from mnist_utils import engine, models
from mnist_utils.config import RunConfig


def test_the_package_model_is_notebook_3s_class_character_for_character():
    assert inspect.getsource(models.ReferenceCNN).strip() in lesson_source("03_model.ipynb")


def test_the_family_with_two_blocks_is_the_reference_network():
    torch.manual_seed(0)
    ref, family = models.ReferenceCNN().eval(), models.CNN((32, 64)).eval()
    family.load_state_dict(dict(zip(family.state_dict(), ref.state_dict().values())))
    x = torch.randn(8, 1, 28, 28)
    assert torch.equal(ref(x), family(x))


@pytest.mark.slow
def test_notebook_4s_loop_gives_the_same_history_as_engine_fit(train_split, test_split):
    cfg = RunConfig(name="lesson", epochs=2, seed=5)
    # two augmentation calls of the engine per epoch (16 batches and 2), the last batch partial:
    # 1,100 = 17 × 64 + 12
    train, test = train_split.subset(engine.AUGMENT_IMAGES + 76, seed=1), test_split.subset(500)
    lesson = lesson_namespace("04_training.ipynb", device=torch.device("cpu"))

    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    model = models.ReferenceCNN().to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)
    ours = []
    for _ in range(cfg.epochs):
        train_loss = lesson["train_epoch"](
            model, optimizer, train.images, train.labels, g, cfg.batch_size
        )
        ours.append((train_loss, *lesson["evaluate"](model, test.images, test.labels)))

    theirs = engine.fit(cfg, train, test, device="cpu", progress=False).history
    for (train_loss, test_loss, test_accuracy), row in zip(ours, theirs, strict=True):
        assert test_accuracy == row["test_accuracy"] and test_loss == row["test_loss"]
        # summed in float64 here, float32 there
        assert train_loss == pytest.approx(row["train_loss"], rel=1e-5)
