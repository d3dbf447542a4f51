"""The experiment plan, and notebook 6's summaries, verdicts, ensembling and test-time augmentation."""
from __future__ import annotations

import math

import pytest
import torch
from conftest import lesson_namespace

from mnist_utils import engine
from mnist_utils import experiments as ex
from mnist_utils.config import RunConfig
from mnist_utils.models import build_model


def test_every_variant_builds_a_valid_config():
    for plan in ex.PLANS.values():
        for variant in plan.variants + (ex.IMPROVED, ex.CLEAN):
            cfg = ex.config_for(variant, 1, plan)
            assert cfg.seed == 1 and cfg.val_size == plan.val_size and cfg.name == f"{variant.name}-seed1"
            for key, value in variant.changes.items():
                assert getattr(cfg, key) == value


def test_clean_fine_tune_continues_the_improved_run_of_the_same_seed():
    for plan in ex.PLANS.values():
        cfg, parent = ex.config_for(ex.CLEAN, 2, plan), ex.config_for(ex.IMPROVED, 2, plan)
        assert cfg.init_from == parent.name == "improved-seed2" and cfg.epochs == plan.finetune_epochs
        assert cfg.augment == () and cfg.model == parent.model and cfg.lr < parent.lr
        assert (cfg.train_size, cfg.val_size, cfg.seed) == (parent.train_size, parent.val_size, parent.seed)  # same split


def test_full_profile_is_the_complete_multi_seed_study():
    full = ex.PLANS["full"]
    assert len(full.seeds) >= 3 and len(full.final_seeds) >= 3 and full.epochs == RunConfig().epochs
    names = {v.name for v in full.variants}
    assert {"no_aug", "rotate_only", "crop_only", "translate_only", "reference", "dropout", "flips"} <= names
    assert {"onecycle", "batchnorm", "third_conv", "strong_aug", "label_smoothing", "elastic"} <= names


def test_notebook_6_summary_is_mean_and_sample_sd_in_percent():
    summarise = lesson_namespace("06_experiments.ipynb", plan=ex.PLANS["full"])["summarise"]
    entries = [{"test_accuracy": a, "val_accuracy": a, "train_seconds": 2.0, "epochs": 3} for a in (0.99, 0.995, 0.992)]
    row = summarise(ex.IMPROVED, entries)
    assert math.isclose(row["test_accuracy_mean"], 99.2333333, rel_tol=1e-6)
    assert math.isclose(row["test_accuracy_sd"], 0.2516611, rel_tol=1e-5)
    assert math.isnan(summarise(ex.IMPROVED, entries[:1])["test_accuracy_sd"])


def test_notebook_6_verdict_needs_seeds_and_a_significant_difference():
    verdict = lesson_namespace("06_experiments.ipynb")["verdict"]
    assert verdict([99.6, 99.65, 99.7], [99.1, 99.15, 99.2])[0] == "better"
    assert verdict([98.6, 98.65, 98.7], [99.1, 99.15, 99.2])[0] == "worse"
    assert verdict([99.0, 99.3, 99.1], [99.1, 99.2, 99.0])[0] == "not distinguishable"
    assert verdict([99.9], [99.1, 99.2])[0] == "needs ≥ 2 seeds"


def test_notebook_6_ensemble_averages_probabilities_and_no_shift_is_plain_prediction(test_split):
    lesson = lesson_namespace("06_experiments.ipynb")
    torch.manual_seed(0)
    models = [build_model("batchnorm").eval(), build_model("reference").eval()]
    images = test_split.images[:50]
    plain = [engine.predict_log_probs(m, images).exp() for m in models]
    assert torch.allclose(lesson["ensemble_probs"](models, images), (plain[0] + plain[1]) / 2, atol=1e-6)
    shifted = lesson["ensemble_probs"](models[:1], images, lesson["SHIFTS"])
    assert shifted.shape == (50, 10) and not torch.allclose(shifted, plain[0], atol=1e-4)
    assert lesson["accuracy"](torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([0, 0])) == 0.5


@pytest.mark.slow
def test_train_command_trains_the_parent_then_its_fine_tune_and_reuses_them(tmp_path, monkeypatch, data_root, capsys):
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path))
    from mnist_utils.runs import read_metrics

    assert ex.main(["improved_clean", "--profile", "quick", "--seeds", "1"]) == 0
    metrics = read_metrics("quick")
    assert set(metrics) == {"improved-seed1", "improved_clean-seed1"}
    assert metrics["improved_clean-seed1"]["config"]["init_from"] == "improved-seed1"
    assert metrics["improved-seed1"]["train_images"] == 2000 and "val_accuracy" in metrics["improved-seed1"]
    first = capsys.readouterr().out
    assert "improved_clean-seed1: val" in first and "test" not in first  # workers print validation only
    assert ex.main(["improved_clean", "--profile", "quick", "--seeds", "1"]) == 0  # finished runs are reused, same result
    assert read_metrics("quick")["improved_clean-seed1"]["test_accuracy"] == metrics["improved_clean-seed1"]["test_accuracy"]


def test_workers_split_the_study_into_disjoint_shares_that_cover_every_run():
    plan = ex.PLANS["full"]
    jobs = [(v.name, seed) for v, seed in ex.study_jobs(plan)]
    assert len(jobs) == len(set(jobs)) == len(plan.final_seeds) + len(plan.variants) * len(plan.seeds)
    assert jobs[0] == (ex.CLEAN.name, plan.final_seeds[0])  # the longest runs first
    shares = [jobs[k::2] for k in range(2)]
    assert not set(shares[0]) & set(shares[1]) and len(shares[0]) + len(shares[1]) == len(jobs)
    assert ex.study_jobs(plan, (ex.IMPROVED,), (7,)) == [(ex.IMPROVED, 7)]


def test_worker_option_is_k_of_n():
    import argparse

    import pytest

    assert ex.parse_worker("1/2") == (1, 2)
    for bad in ("2/2", "1", "a/b", "-1/2"):
        with pytest.raises(argparse.ArgumentTypeError):
            ex.parse_worker(bad)
