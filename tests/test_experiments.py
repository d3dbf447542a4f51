"""The experiment plan, summaries, ensembling and test-time augmentation."""
from __future__ import annotations

import math

import torch

from mnist_utils import engine, experiments as ex
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


def test_summary_is_mean_and_sample_sd_in_percent():
    entries = [{"test_accuracy": a, "val_accuracy": a, "train_seconds": 2.0, "epochs": 3} for a in (0.99, 0.995, 0.992)]
    row = ex.summarise(ex.IMPROVED, entries, ex.PLANS["full"])
    assert math.isclose(row["test_accuracy_mean"], 99.2333333, rel_tol=1e-6)
    assert math.isclose(row["test_accuracy_sd"], 0.2516611, rel_tol=1e-5)
    single = ex.summarise(ex.IMPROVED, entries[:1], ex.PLANS["default"])
    assert math.isnan(single["test_accuracy_sd"])


def test_ensemble_averages_probabilities():
    a = torch.log(torch.tensor([[0.9, 0.1], [0.2, 0.8]]))
    b = torch.log(torch.tensor([[0.5, 0.5], [0.6, 0.4]]))
    assert torch.allclose(ex.ensemble_log_probs([a, b]).exp(), torch.tensor([[0.7, 0.3], [0.4, 0.6]]))
    assert ex.accuracy(a, torch.tensor([0, 1])) == 1.0


def test_tta_without_shifts_equals_plain_prediction(test_split):
    torch.manual_seed(0)
    model = build_model("batchnorm").eval()
    images = test_split.images[:50]
    plain = engine.predict_log_probs(model, images, channels_last=False)
    assert torch.allclose(ex.tta_log_probs(model, images, shifts=((0, 0),)), plain, atol=1e-5)
    assert ex.tta_log_probs(model, images).shape == (50, 10)


def test_train_command_hands_the_asked_runs_to_the_study_parents_first(monkeypatch, capsys):
    seen = []

    def fake_study(configs, profile):
        seen.append((configs, profile))
        return {"runs": len(configs), "trained": 0, "skipped": len(configs), "failed": {"x": "boom"} if len(seen) > 1 else {}}

    monkeypatch.setattr(ex.study, "run_study", fake_study)
    assert ex.main(["improved_clean", "reference", "--profile", "quick", "--seeds", "1"]) == 0
    configs, profile = seen[0]
    assert profile == "quick" and [c.name for c in configs] == ["improved-seed1", "improved_clean-seed1", "reference-seed1"]
    assert configs[1] == ex.config_for(ex.CLEAN, 1, ex.PLANS["quick"]) and configs[1].init_from == "improved-seed1"
    assert "already finished 3" in capsys.readouterr().out
    assert ex.main(["reference", "--profile", "quick"]) == 1  # a failed run fails the command


def test_study_jobs_cover_every_run_once_longest_first_parents_before_fine_tunes():
    plan = ex.PLANS["full"]
    jobs = [(v.name, seed) for v, seed in ex.study_jobs(plan)]
    assert len(jobs) == len(set(jobs)) == 2 * len(plan.final_seeds) + len(plan.variants) * len(plan.seeds)
    assert jobs[0] == (ex.IMPROVED.name, plan.final_seeds[0])  # the longest runs first
    assert all(jobs.index((ex.IMPROVED.name, s)) < jobs.index((ex.CLEAN.name, s)) for s in plan.final_seeds)
    assert ex.study_jobs(plan, (ex.CLEAN,), (7,)) == [(ex.IMPROVED, 7), (ex.CLEAN, 7)]  # a fine-tune brings its parent
