"""The benchmark compares the reference recipe with itself (timings are never asserted)."""

from __future__ import annotations

import torch

from mnist_tools import bench


def test_the_stock_pipeline_is_the_reference_recipe():
    names = [type(t).__name__ for t in bench.reference_pipeline(train=True).transforms]
    assert names[:3] == ["RandomRotation", "RandomResizedCrop", "RandomAffine"]
    assert (
        bench.REFERENCE.batch_size == 64
        and bench.REFERENCE.lr == 1e-3
        and bench.REFERENCE.model == "reference"
    )


def test_pipelines_are_measured_in_interleaved_rounds():
    calls = []
    values = bench.interleaved(
        {
            "a": lambda steps, seed: calls.append(("a", seed)) or 1.0 + seed,
            "b": lambda steps, seed: calls.append(("b", seed)) or 2.0,
        },
        rounds=3,
        steps=10,
    )
    # A B A B A B, not A A A B B B
    assert calls == [
        ("a", 0),
        ("b", 0),
        ("a", 1),
        ("b", 1),
        ("a", 2),
        ("b", 2),
    ]
    assert bench.spread(values["a"]) == {"min": 1.0, "median": 2.0, "max": 3.0}


def test_the_floor_counts_the_reference_recipe_flops():
    # per image: conv1 0.45 + conv2 7.2 + fc1 0.8 + fc2 0.003 MFLOP forward; backward twice that
    # (conv1 once)
    assert 1.45e12 < bench.epoch_flops() < 1.55e12


def test_the_peer_recipe_is_the_published_network_and_trains(train_split, test_split):
    model = bench.peer_cnn()
    # 1→24 5×5, 24→32 3×3, 800→256→10
    assert sum(p.numel() for p in model.parameters()) == 624 + 6_944 + 205_056 + 2_570
    run = bench.peer_time_to_99(0, train_split.subset(2_560), test_split.subset(1_000))
    # 10 steps: far above chance
    assert run["seed"] == 0 and run["seconds"] > 0 and 0.5 < run["test_accuracy"] <= 1.0


def test_the_racer_trains_through_the_engine_and_scores_in_its_precision(
    train_split, test_split, monkeypatch
):
    scored_in, evaluate = [], bench.evaluate

    def spy(model, split):
        scored_in.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return evaluate(model, split)

    monkeypatch.setattr(bench, "evaluate", spy)
    run = bench.time_to_99(bench.FAST_RECIPE, train_split.subset(2_560), test_split.subset(1_000))
    # 10 steps: far above chance; scored in bfloat16, as it trained
    assert run["seed"] == 0 and 0.5 < run["test_accuracy"] <= 1.0
    assert scored_in == [(True, torch.bfloat16)]


def test_the_racer_and_the_peer_race_seed_by_seed_taking_turns_to_go_first(monkeypatch):
    calls = []
    monkeypatch.setattr(
        bench,
        "time_to_99",
        lambda cfg, train, test: calls.append(("racer", cfg.seed)) or {"seed": cfg.seed},
    )
    monkeypatch.setattr(
        bench,
        "peer_time_to_99",
        lambda seed, train, test: calls.append(("peer", seed)) or {"seed": seed},
    )
    runs = bench.race(3, None, None)
    assert calls == [
        ("racer", 0),
        ("peer", 0),
        ("peer", 1),
        ("racer", 1),
        ("racer", 2),
        ("peer", 2),
    ]
    assert [r["seed"] for r in runs["racer"]] == [r["seed"] for r in runs["peer"]] == [0, 1, 2]
