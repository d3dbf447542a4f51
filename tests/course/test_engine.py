"""Models, the training loop, determinism, checkpoints and resume, on small real runs."""

from __future__ import annotations

import copy

import pytest
import torch

from mnist_utils import checkpoints, engine, models, paths
from mnist_utils.augment import normalize, to_unit
from mnist_utils.config import RunConfig, for_profile

SMALL = RunConfig(name="small", epochs=2, train_size=640, batch_size=64, seed=3)


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_every_model_maps_a_batch_to_log_probabilities(name):
    out = models.build_model(name, dropout=0.1).eval()(torch.randn(4, 1, 28, 28))
    assert out.shape == (4, 10)
    assert torch.allclose(out.exp().sum(1), torch.ones(4), atol=1e-5)


def test_a_tuple_entry_of_the_family_stacks_its_convolutions_before_one_pooling():
    convs = [m for m in models.build_model("deep") if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (1, 32),
        (32, 32),
        (32, 64),
        (64, 64),
        (64, 128),
    ]
    # 28 → 14 → 7 → 3
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in models.build_model("deep")) == 3
    # a one-width tuple is a plain entry
    assert str(models.CNN(((32,), 64))) == str(models.CNN((32, 64)))


@pytest.mark.parametrize("name", ["batchnorm", "deep"])
def test_pooling_before_a_blocks_last_relu_trains_to_the_same_weights_as_after_it(name):
    """The family pools before a block's last ReLU; the textbook order (ReLU, then pool) gives the
    same numbers."""
    ours = models.build_model(name).to(memory_format=torch.channels_last)
    layers = list(copy.deepcopy(ours))  # the same weights, the same modules in the other order
    for i in [i for i, m in enumerate(layers) if isinstance(m, torch.nn.MaxPool2d)]:
        layers[i], layers[i + 1] = layers[i + 1], layers[i]
    textbook = torch.nn.Sequential(*layers)
    assert [type(m) for m in textbook].index(torch.nn.ReLU) < [type(m) for m in textbook].index(
        torch.nn.MaxPool2d
    )
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 1, 28, 28, generator=g).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (16,), generator=g)
    for model in (ours, textbook):
        opt = torch.optim.Adam(model.parameters(), lr=1e-2, fused=True)
        for _ in range(3):
            with torch.autocast("cpu", torch.bfloat16):
                loss = torch.nn.functional.nll_loss(model(x).float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    for (key, a), b in zip(ours.state_dict().items(), textbook.state_dict().values(), strict=True):
        assert torch.equal(a, b), key


def test_the_racers_first_layer_whitens_the_first_batch_and_then_stays_fixed(train_split):
    x = normalize(to_unit(train_split.images[:128]))
    layer = models.Whiten()
    out = layer(x)
    assert out.shape == (128, 24, 12, 12) and not list(layer.parameters())  # nothing to train
    assert torch.equal(out[:, 12:], -out[:, :12])  # each filter with its negative
    # the first batch's 5×5 patches come out uncorrelated, with a variance λ/(λ+eps) near 1
    cov = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12).T.double().cov()
    off_diagonal = cov - torch.diag(cov.diagonal())
    assert off_diagonal.abs().max() < 1e-3 and (cov.diagonal() > 0.5).all()
    assert (cov.diagonal() < 1).all()
    weights = layer.weight.clone()
    layer(normalize(to_unit(train_split.images[5000:5064])))  # another batch: kept
    assert torch.equal(layer.weight, weights)
    reloaded = models.Whiten()
    reloaded.load_state_dict(layer.state_dict())  # saved with the model, not recomputed
    assert torch.equal(reloaded(x[:8]), out[:8])


def test_the_racer_back_propagates_into_its_second_layer_only_and_flattens_channels_last(
    train_split,
):
    model = models.build_model("fast").to(memory_format=torch.channels_last)
    x = normalize(to_unit(train_split.images[:64])).contiguous(memory_format=torch.channels_last)
    assert not model[:2](x).requires_grad  # no gradient reaches the fixed layer
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    features = model[:-3](x)  # 32×6×6, channels-last
    flat = models.FlattenChannelsLast()(features)
    assert flat.shape == (64, 32 * 6 * 6) and flat.data_ptr() == features.data_ptr()  # a view
    assert torch.equal(flat, features.permute(0, 2, 3, 1).reshape(64, -1))


def test_fixed_adam_betas_are_kept_by_onecycle_and_saved_with_the_config():
    model = torch.nn.Linear(2, 2)
    fixed = RunConfig(schedule="onecycle", adam_betas=(0.7, 0.9))
    assert RunConfig.from_dict(fixed.to_dict()) == fixed
    assert RunConfig.from_dict(RunConfig().to_dict()) == RunConfig()
    for config, cycled in ((fixed, False), (RunConfig(schedule="onecycle"), True)):
        opt, sched = engine.make_optimizer(model, config, steps_per_epoch=10)
        seen = set()
        for _ in range(20):
            opt.step()
            sched.step()
            seen.add(opt.param_groups[0]["betas"][0])
        assert (len(seen) > 1) == cycled
        if not cycled:
            assert opt.param_groups[0]["betas"] == (0.7, 0.9)


def test_unknown_model_is_rejected():
    with pytest.raises(ValueError, match="unknown model"):
        models.build_model("resnet")


def test_label_smoothing_is_nll_at_zero_and_mixes_in_the_mean_log_probability():
    logp = torch.log_softmax(torch.randn(8, 10), 1)
    y = torch.randint(0, 10, (8,))
    nll = torch.nn.functional.nll_loss(logp, y)
    assert torch.equal(engine.loss_fn(logp, y, 0.0), nll)
    assert torch.allclose(
        engine.loss_fn(logp, y, 0.1), 0.9 * nll - 0.1 * logp.mean(1).mean(), atol=1e-6
    )


def _small_data(train_split, test_split):
    return train_split.subset(SMALL.train_size, seed=SMALL.seed), test_split.subset(500)


@pytest.mark.slow
def test_training_learns_and_is_deterministic(train_split, test_split):
    train, test = _small_data(train_split, test_split)
    a = engine.fit(SMALL, train, test, device="cpu", progress=False)
    b = engine.fit(SMALL, train, test, device="cpu", progress=False)
    keys = ["epoch", "train_loss", "test_loss", "test_accuracy"]
    assert [{k: r[k] for k in keys} for r in a.history] == [
        {k: r[k] for k in keys} for r in b.history
    ]
    assert a.history[-1]["test_accuracy"] > 0.7  # 640 images, 2 epochs: far above chance
    assert a.history[1]["train_loss"] < a.history[0]["train_loss"]
    # scored after the last epoch alone (as the study's runs are): the same training and score
    c = engine.fit(SMALL, train, test, device="cpu", progress=False, score_every_epoch=False)
    assert "test_accuracy" not in c.history[0]
    assert [{k: r[k] for k in keys} for r in c.history[1:]] == [
        {k: r[k] for k in keys} for r in a.history[1:]
    ]


@pytest.mark.slow
def test_bfloat16_forward_learns_with_other_numbers_and_unknown_precision_is_refused(
    train_split, test_split
):
    train, test = _small_data(train_split, test_split)
    fp32 = engine.fit(SMALL, train, test, device="cpu", progress=False).history[-1]
    bf16 = engine.fit(
        SMALL.replace(precision="bfloat16"), train, test, device="cpu", progress=False
    ).history[-1]
    assert bf16["train_loss"] != fp32["train_loss"] and bf16["test_accuracy"] > 0.7
    with pytest.raises(ValueError, match="unknown precision 'half'"):
        engine.fit(SMALL.replace(precision="half"), train, test, device="cpu", progress=False)


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_history(
    tmp_path, train_split, test_split, monkeypatch
):
    train, test = _small_data(train_split, test_split)
    keys = ["epoch", "train_loss", "test_loss", "test_accuracy"]
    full = engine.fit(SMALL, train, test, device="cpu", progress=False)
    steps, step = [], engine.train_step

    def ctrl_c_at_step_15(*args):  # as a user's Ctrl-C would, mid-epoch 2
        steps.append(1)
        if len(steps) == 15:
            raise KeyboardInterrupt
        return step(*args)

    monkeypatch.setattr(engine, "train_step", ctrl_c_at_step_15)
    with pytest.raises(KeyboardInterrupt):
        engine.fit(SMALL, train, test, run_dir=tmp_path, device="cpu", progress=False)
    monkeypatch.setattr(engine, "train_step", step)
    assert checkpoints.load(tmp_path / paths.CHECKPOINT)["epoch"] == 1
    resumed = engine.fit(SMALL, train, test, run_dir=tmp_path, device="cpu", progress=False)
    assert [{k: r[k] for k in keys} for r in resumed.history] == [
        {k: r[k] for k in keys} for r in full.history
    ]
    for p, q in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)


@pytest.mark.slow
def test_checkpoint_of_another_config_is_refused(tmp_path, train_split, test_split):
    train, test = _small_data(train_split, test_split)
    one = SMALL.replace(epochs=1)
    engine.fit(one, train, test, run_dir=tmp_path, device="cpu", progress=False)
    with pytest.raises(checkpoints.CheckpointError, match="another config"):
        engine.fit(
            one.replace(lr=0.01), train, test, run_dir=tmp_path, device="cpu", progress=False
        )


@pytest.mark.slow
def test_load_model_round_trip_and_damaged_checkpoint(tmp_path, train_split, test_split):
    train, test = _small_data(train_split, test_split)
    result = engine.fit(
        SMALL.replace(epochs=1), train, test, run_dir=tmp_path, device="cpu", progress=False
    )
    model, config, state = checkpoints.load_model(tmp_path / paths.CHECKPOINT)
    assert config.name == "small" and state["history"] == result.history
    assert torch.allclose(
        engine.predict_log_probs(model, test.images),
        engine.predict_log_probs(result.model, test.images),
        atol=1e-5,
    )
    bad = tmp_path / "bad.pt"
    bad.write_bytes((tmp_path / paths.CHECKPOINT).read_bytes()[:5000])
    with pytest.raises(checkpoints.CheckpointError, match="damaged"):
        checkpoints.load(bad)
    with pytest.raises(checkpoints.CheckpointError, match="No checkpoint"):
        checkpoints.load(tmp_path / "missing.pt")


@pytest.mark.slow
def test_onecycle_ends_near_zero_learning_rate(train_split, test_split):
    train, test = _small_data(train_split, test_split)
    cfg = SMALL.replace(epochs=1, schedule="onecycle", model="batchnorm", label_smoothing=0.1)
    result = engine.fit(cfg, train, None, device="cpu", progress=False)
    assert result.history[-1]["lr"] < 1e-4


def test_quick_profile_shrinks_the_run():
    quick = for_profile(RunConfig(), "quick")
    assert quick.epochs == 1 and quick.train_size == 2000
    assert for_profile(RunConfig(), "default") == RunConfig()
    with pytest.raises(ValueError):
        for_profile(RunConfig(), "huge")


def test_device_selection_honours_override(monkeypatch):
    monkeypatch.setenv("MNIST_DEVICE", "cpu")
    assert engine.select_device() == torch.device("cpu")
    assert engine.select_device("cpu") == torch.device("cpu")
    with pytest.raises(engine.DeviceError, match="cannot train this course"):
        engine.select_device("meta")


@pytest.mark.slow
def test_fine_tuning_starts_from_the_given_weights(train_split, test_split):
    train, test = _small_data(train_split, test_split)
    parent = engine.fit(SMALL.replace(epochs=1), train, test, device="cpu", progress=False)
    weights = {k: v.clone() for k, v in parent.model.state_dict().items()}
    # lr 0: nothing moves
    frozen = SMALL.replace(name="child", epochs=1, lr=0.0, augment=(), init_from="small")
    child = engine.fit(frozen, train, test, device="cpu", progress=False, init_weights=weights)
    for k, v in child.model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    assert child.history[0]["test_accuracy"] == parent.history[0]["test_accuracy"]
    # no weights given: a random init
    scratch = engine.fit(frozen, train, test, device="cpu", progress=False)
    assert scratch.history[0]["test_accuracy"] < parent.history[0]["test_accuracy"]


@pytest.mark.slow
def test_checkpoints_written_before_a_config_field_existed_still_resume(
    tmp_path, train_split, test_split
):
    train, test = _small_data(train_split, test_split)
    one = SMALL.replace(epochs=1)
    engine.fit(one, train, test, run_dir=tmp_path, device="cpu", progress=False)
    path = tmp_path / paths.CHECKPOINT
    state = checkpoints.load(path)
    del state["config"]["init_from"]  # as written by an older version of RunConfig
    checkpoints.save(path, state)
    resumed = engine.fit(one, train, test, run_dir=tmp_path, device="cpu", progress=False)
    assert resumed.history == state["history"]  # nothing retrained


def _flip_bit_in_weights(path) -> None:
    """Flip one bit in the middle of the largest tensor's bytes, as a failing disk would."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        member = max(archive.infolist(), key=lambda info: info.file_size)
    blob = bytearray(path.read_bytes())
    blob[member.header_offset + member.file_size // 2] ^= (
        0x10  # well past the local header: inside the data
    )
    path.write_bytes(bytes(blob))


def test_checkpoint_with_a_flipped_bit_is_refused(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path))  # the project's own: retrain it
    path = tmp_path / "runs" / "default" / "reference" / paths.CHECKPOINT
    path.parent.mkdir(parents=True)
    path.write_bytes(tiny_checkpoint.read_bytes())
    checkpoints.load_model(path)  # intact: loads
    _flip_bit_in_weights(path)
    with pytest.raises(
        checkpoints.CheckpointError,
        match="bytes changed since it was written.*CRC.*rm .*make nb/04_training",
    ):
        checkpoints.load(path)


def test_checkpoint_with_non_finite_weights_is_refused(tiny_checkpoint, tmp_path):
    state = checkpoints.load(tiny_checkpoint)
    name = next(k for k, v in state["model"].items() if v.is_floating_point() and v.dim() > 1)
    state["model"][name][0].view(-1)[0] = float("nan")
    path = tmp_path / paths.CHECKPOINT
    checkpoints.save(path, state)
    checkpoints.load(path)  # the file itself is intact
    with pytest.raises(checkpoints.CheckpointError, match=f"non-finite weights.*{name}"):
        checkpoints.load_model(path)


def test_full_disk_at_checkpoint_save_is_one_error_and_leaves_no_partial_file(
    tiny_checkpoint, tmp_path, monkeypatch
):
    path = tmp_path / paths.CHECKPOINT
    path.write_bytes(tiny_checkpoint.read_bytes())
    state = checkpoints.load(path)
    real_save = torch.save

    def save_to_a_full_disk(obj, f, *args, **kwargs):
        open(f, "wb").close()  # the temporary file exists, as it would on a real disk
        # ENOSPC: torch raises "[enforce fail at inline_container.cc...]"
        real_save(obj, "/dev/full", *args, **kwargs)

    monkeypatch.setattr(engine.torch, "save", save_to_a_full_disk)
    with pytest.raises(
        checkpoints.CheckpointError, match="Cannot write checkpoint .*disk full.*kept"
    ) as info:
        checkpoints.save(path, state)
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [paths.CHECKPOINT]  # no .part file left
    assert path.read_bytes() == tiny_checkpoint.read_bytes()  # the previous checkpoint is intact


@pytest.mark.parametrize("name", ["gpu", "cuda:x"])
def test_unknown_device_is_one_line_naming_the_choices(name, monkeypatch):
    monkeypatch.setenv("MNIST_DEVICE", name)
    with pytest.raises(engine.DeviceError, match=f"'{name}'.*use cpu, cuda, cuda:N or mps"):
        engine.select_device()
