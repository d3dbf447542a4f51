"""One source of truth: the code a notebook teaches is the toolbox code the pipeline runs."""

from __future__ import annotations

import ast
import inspect

import pytest
import torch
from conftest import lesson_namespace, lesson_source

from mnist_utils import engine, models, racer
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


def test_the_racer_of_notebook_9_is_the_package_racer_character_for_character():
    page = lesson_source("09_speed.ipynb")
    for code in (models.Whiten, models.FlattenChannelsLast, models.fast_cnn, racer.train_racer):
        assert inspect.getsource(code).strip() in page, code.__name__
    line = next(x for x in page.splitlines() if x.startswith("BATCH_SIZE, LR, BETAS, SMOOTHING = "))
    settings = ast.literal_eval(line.split(" = ", 1)[1])
    assert settings == (racer.BATCH_SIZE, racer.LR, racer.BETAS, racer.SMOOTHING)


@pytest.mark.slow
def test_the_racer_trains_as_the_engine_does_its_recipe(train_split, test_split):
    """The plain loop of notebook 09 and ``engine.fit`` with the racer's recipe give the same model:
    the notebook teaches what the engine runs."""
    train, test = train_split.subset(1_536, seed=2), test_split.subset(500)
    plain = racer.train_racer(train.images, train.labels, seed=4)
    recipe = RunConfig(
        name="racer",
        model="fast",
        epochs=1,
        batch_size=racer.BATCH_SIZE,
        lr=racer.LR,
        schedule="onecycle",
        augment=(),
        label_smoothing=racer.SMOOTHING,
        precision="bfloat16",
        adam_betas=racer.BETAS,
        seed=4,
    )
    engine_model = engine.fit(recipe, train, None, device="cpu", progress=False).model
    for p, q in zip(plain.state_dict().values(), engine_model.state_dict().values()):
        assert torch.equal(p, q)
    assert racer.accuracy(plain, test.images, test.labels) > 0.3
