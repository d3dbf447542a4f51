"""The benchmark measures what it says (timings are never asserted: speed goals are ratios that
`make bench` prints)."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from mnist_tools import bench, profile, race


def test_the_stock_pipeline_is_the_reference_recipe():
    from mnist_utils.augment import reference_pipeline

    names = [type(t).__name__ for t in reference_pipeline(train=True).transforms]
    assert names[:3] == ["RandomRotation", "RandomResizedCrop", "RandomAffine"]
    assert bench.REFERENCE.batch_size == 64 and bench.REFERENCE.lr == 1e-3


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
    assert calls == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]  # A B A B A B
    assert bench.spread(values["a"]) == {"min": 1.0, "median": 2.0, "max": 3.0}


def test_the_floor_counts_the_reference_recipe_flops():
    # per image: conv1 0.45 + conv2 7.2 + fc1 0.8 + fc2 0.003 MFLOP forward; backward twice that
    # (conv1 once)
    assert 1.45e12 < bench.epoch_flops() < 1.55e12


def test_the_studys_epoch_is_two_one_thread_processes_training_in_bfloat16(monkeypatch):
    seen = []

    def two(fn, *args):
        seen.append((fn, args))
        return [10.0, 10.0]

    monkeypatch.setattr(bench, "in_two_processes", two)
    assert bench.study_epoch_s(5, 0) == 5.0  # two at 10 s each: an epoch of throughput per 5 s
    assert seen == [(bench.one_study_epoch_s, (5, 0))]


@pytest.mark.slow
def test_one_study_epoch_trains_in_bfloat16_with_one_thread(monkeypatch):
    threads, precisions = torch.get_num_threads(), []
    fit = bench.fit
    monkeypatch.setattr(
        bench, "fit", lambda c, *a, **k: precisions.append(c.precision) or fit(c, *a, **k)
    )
    try:
        assert bench.one_study_epoch_s(3, 0) > 0
        assert torch.get_num_threads() == 1 and precisions == ["bfloat16"]
    finally:
        torch.set_num_threads(threads)


def test_without_glibc_tunables_the_bench_restarts_with_the_studys(monkeypatch):
    restarted = []
    monkeypatch.setattr(os, "execve", lambda *args: restarted.append(args))
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    bench.with_allocator(["--steps", "3"])
    ((path, argv, env),) = restarted
    assert path == sys.executable and argv[1:] == ["-m", "mnist_tools", "bench", "--steps", "3"]
    assert env["GLIBC_TUNABLES"] == bench.ALLOCATOR
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")  # the user's own: kept
    bench.with_allocator([])
    assert len(restarted) == 1


@pytest.mark.slow
def test_the_profile_groups_a_study_step_and_sets_the_floor_beside_it():
    p = profile.study_step_profile(steps=3)
    assert set(p["ms"]) == set(profile.GROUPS) | {"other"}
    assert p["ms"]["convolution, backward"] > 0 and p["ms"]["max-pool, backward"] > 0
    assert abs(sum(p["ms"].values()) - p["total_ms"]) < 1e-9 and 0 < p["floor_ms"] < p["total_ms"]


def test_the_peer_recipe_is_the_published_network_and_trains(train_split, test_split):
    model = race.peer_cnn()
    # 1→24 5×5, 24→32 3×3, 800→256→10
    assert sum(p.numel() for p in model.parameters()) == 624 + 6_944 + 205_056 + 2_570
    run = race.peer_time_to_99(0, train_split.subset(2_560), test_split.subset(1_000))
    assert run["seed"] == 0 and run["seconds"] > 0 and 0.5 < run["test_accuracy"] <= 1.0


def test_the_racer_is_the_course_racer_scored_in_bfloat16(train_split, test_split, monkeypatch):
    scored_in, forward = [], torch.nn.Sequential.forward

    def spy(self, x):
        scored_in.append((self.training, torch.is_autocast_enabled("cpu")))
        return forward(self, x)

    monkeypatch.setattr(torch.nn.Sequential, "forward", spy)
    run = race.racer_time_to_99(0, train_split.subset(2_560), test_split.subset(1_000))
    assert run["seed"] == 0 and 0.5 < run["test_accuracy"] <= 1.0  # 10 steps: far above chance
    assert (False, True) in scored_in and all(autocast for _, autocast in scored_in)


def test_the_racer_and_the_peer_race_seed_by_seed_taking_turns_to_go_first(monkeypatch):
    calls = []
    monkeypatch.setattr(
        race, "racer_time_to_99", lambda seed, train, test: calls.append(("racer", seed)) or {}
    )
    monkeypatch.setattr(
        race, "peer_time_to_99", lambda seed, train, test: calls.append(("peer", seed)) or {}
    )
    runs = race.race(3, None, None)
    order = [("racer", 0), ("peer", 0), ("peer", 1), ("racer", 1), ("racer", 2), ("peer", 2)]
    assert calls == order and len(runs["racer"]) == len(runs["peer"]) == 3


def test_a_race_summary_counts_the_seeds_that_reach_99():
    runs = [{"seconds": s, "test_accuracy": a} for s, a in ((3, 0.991), (2, 0.989), (4, 0.995))]
    s = race.summary(runs)
    assert s["seconds"] == {"min": 2, "median": 3, "max": 4} and s["reached"] == 2
    assert s["min"] == 0.989 and s["seeds"] == 3
