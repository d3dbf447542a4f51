"""The experiment plan, and notebook 6's summaries, verdicts, ensembling and test-time
augmentation."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import lesson_namespace

from mnist_tools import train
from mnist_utils import engine, runs
from mnist_utils import experiments as ex
from mnist_utils.config import RunConfig
from mnist_utils.models import build_model


def test_every_variant_builds_a_valid_config():
    for plan in ex.PLANS.values():
        for variant in plan.variants + ex.SEARCH + (ex.IMPROVED, ex.CLEAN):
            cfg = ex.config_for(variant, 1, plan)
            assert (
                cfg.seed == 1
                and cfg.val_size == plan.val_size
                and cfg.name == f"{variant.name}-seed1"
            )
            assert cfg.precision == plan.precision  # every arm of the study alike
            for key, value in variant.changes.items():
                assert getattr(cfg, key) == value


def test_clean_fine_tune_continues_the_improved_run_of_the_same_seed():
    for plan in ex.PLANS.values():
        for recipe in ex.SEARCH:
            improved, clean = ex.final_variants(recipe)
            cfg, parent = ex.config_for(clean, 2, plan), ex.config_for(improved, 2, plan)
            # the candidate, final seeds
            assert parent == ex.config_for(recipe, 2, plan).replace(name="improved-seed2")
            assert (
                cfg.init_from == parent.name == "improved-seed2"
                and cfg.epochs == plan.finetune_epochs
            )
            assert cfg.augment == () and cfg.model == parent.model and cfg.lr < parent.lr
            # same split
            assert (cfg.train_size, cfg.val_size, cfg.seed) == (
                parent.train_size,
                parent.val_size,
                parent.seed,
            )


def test_full_profile_is_the_complete_multi_seed_study():
    full = ex.PLANS["full"]
    assert len(full.seeds) >= 3 and len(full.final_seeds) >= 3 and full.epochs == RunConfig().epochs
    names = {v.name for v in full.variants}
    assert {
        "no_aug",
        "rotate_only",
        "crop_only",
        "translate_only",
        "reference",
        "dropout",
        "flips",
    } <= names
    assert {
        "onecycle",
        "batchnorm",
        "third_conv",
        "strong_aug",
        "label_smoothing",
        "elastic",
    } <= names


def test_default_profile_backs_every_comparison_with_three_seeds():
    default, full = ex.PLANS["default"], ex.PLANS["full"]
    assert len(default.seeds) >= 3 and len(default.final_seeds) >= 3
    trained = {v.name for v in default.variants}
    # the reference arm, the seed report's three proposals (a schedule, a third conv, more aug) and
    # the control that isolates the schedule
    assert {"reference", "lr_3e-3", "onecycle", "third_conv", "strong_aug"} <= trained
    assert trained | set(ex.FULL_ONLY) == {v.name for v in full.variants} and not trained & set(
        ex.FULL_ONLY
    )
    # verdicts where the reference arm reaches the seed report's own accuracy; 6 epochs, not 1
    assert default.epochs >= 6 and ex.REGIME == ex.SEED_REPORT_ACCURACY == 98.93
    assert default.search == () and ex.choose_recipe({}) == ex.BASE  # fixed in advance


def test_notebook_6_states_a_verdict_only_where_the_reference_arm_reaches_the_seed_reports():
    in_regime = lesson_namespace("06_experiments.ipynb")["in_regime"]
    assert in_regime("better", 99.14) == "better" and in_regime("worse", 98.93) == "worse"
    assert in_regime("worse", 98.05) == (
        "cannot tell: the reference arm (98.05 %) is below 98.93 %"
    )
    assert in_regime("cannot tell: needs 2 seeds or more", 90.0).endswith("2 seeds or more")


def test_every_single_change_is_compared_with_an_arm_it_differs_from_in_that_change_alone():
    plan = ex.PLANS["default"]
    for variant in plan.variants:
        if variant.name == "reference":
            continue
        mine = ex.config_for(variant, 0, plan).to_dict()
        control = ex.config_for(ex.VARIANTS[variant.control], 0, plan).to_dict()
        differ = {k for k in mine if mine[k] != control[k]} - {"name"}
        assert len(differ) == 1, (variant.name, differ)
    assert ex.VARIANTS["onecycle"].control == "lr_3e-3"  # the schedule alone, at the same peak


def test_run_variant_reads_a_finished_run_and_trains_only_the_missing_one(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path))
    plan, variant = ex.PLANS["quick"], ex.ABLATIONS[0]
    done = ex.config_for(variant, 0, plan)
    runs.save_run(
        done,
        "quick",
        {"config": done.to_dict(), "model": {}},
        [],
        {"config": done.to_dict(), "profile": "quick", "test_accuracy": 0.5},
    )
    trained = []
    monkeypatch.setattr(
        ex,
        "train_run",
        lambda config, profile, data=None: trained.append(config.name) or {"test_accuracy": 0.9},
    )
    monkeypatch.setattr(ex, "run_data", lambda config, cache: None)
    entries = ex.run_variant(variant, (0, 1), plan)
    assert [e["test_accuracy"] for e in entries] == [0.5, 0.9] and trained == [
        ex.run_name(variant.name, 1)
    ]


def test_notebook_6_summary_is_mean_and_sample_sd_in_percent():
    summarise = lesson_namespace("06_experiments.ipynb", plan=ex.PLANS["full"])["summarise"]
    entries = [
        {"test_accuracy": a, "val_accuracy": a, "train_seconds": 2.0, "epochs": 3}
        for a in (0.99, 0.995, 0.992)
    ]
    row = summarise(ex.IMPROVED, entries)
    assert math.isclose(row["test_accuracy_mean"], 99.2333333, rel_tol=1e-6)
    assert math.isclose(row["test_accuracy_sd"], 0.2516611, rel_tol=1e-5)
    assert math.isnan(summarise(ex.IMPROVED, entries[:1])["test_accuracy_sd"])


def test_notebook_6_verdict_needs_seeds_and_a_significant_corrected_difference():
    lesson = lesson_namespace("06_experiments.ipynb")
    compare, holm, verdict = lesson["compare"], lesson["holm"], lesson["verdict"]
    better = compare([99.6, 99.65, 99.7], [99.1, 99.15, 99.2])
    assert (
        abs(better[0] - 0.5) < 1e-9
        and better[1] < 0.5 < better[2]
        and verdict(better[0], better[3]) == "better"
    )
    worse = compare([98.6, 98.65, 98.7], [99.1, 99.15, 99.2])
    assert verdict(worse[0], worse[3]) == "worse"
    noise = compare([99.0, 99.3, 99.1], [99.1, 99.2, 99.0])
    assert noise[1] < 0 < noise[2] and verdict(noise[0], noise[3]) == "no difference shown"
    assert math.isnan(compare([99.9], [99.1, 99.2])[3]) and verdict(0.8, math.nan).startswith(
        "cannot tell"
    )
    # Holm: p = 0.02 alone is significant; the smallest of three (0.02, 0.04, 0.5) is not after ×3
    assert (
        holm([0.02]).tolist() == [0.02]
        and verdict(1.0, holm([0.02, 0.04, 0.5])[0]) == "no difference shown"
    )
    assert holm([0.5, 0.01, 0.04]).tolist() == pytest.approx([0.5, 0.03, 0.08])


def test_notebook_6_ensemble_averages_probabilities_and_no_shift_is_plain_prediction(test_split):
    lesson = lesson_namespace("06_experiments.ipynb")
    torch.manual_seed(0)
    models = [build_model("batchnorm").eval(), build_model("reference").eval()]
    images = test_split.images[:50]
    plain = [engine.predict_log_probs(m, images).exp() for m in models]
    assert torch.allclose(
        lesson["ensemble_probs"](models, images), (plain[0] + plain[1]) / 2, atol=1e-6
    )
    shifted = lesson["ensemble_probs"](models[:1], images, lesson["SHIFTS"])
    assert shifted.shape == (50, 10) and not torch.allclose(shifted, plain[0], atol=1e-4)
    assert lesson["accuracy"](torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([0, 0])) == 0.5


def test_train_command_runs_the_search_first_and_adds_the_chosen_recipe_once_it_is_finished(
    monkeypatch, capsys
):
    seen, plan, search_done = [], ex.PLANS["quick"], []

    def fake_study(configs, profile, more=None):
        more = more or list
        before = more()  # the search is not finished yet
        search_done.append(True)
        finals, again = more(), more()  # asked after each recorded run: the finals come once
        seen.append((configs, before, finals, again, profile))
        search_done.clear()
        return {
            "runs": len(configs),
            "trained": 0,
            "skipped": len(configs),
            "failed": {"x": "boom"} if len(seen) > 1 else {},
        }

    monkeypatch.setattr(ex.study, "run_study", fake_study)
    monkeypatch.setattr(
        ex.runs,
        "finished",
        lambda config, profile, metrics=None: (
            bool(search_done) and config.name.startswith("search")
        ),
    )
    monkeypatch.setattr(ex, "search_entries", lambda p, cache=None: {})
    # as if the short recipe won on validation
    monkeypatch.setattr(ex, "choose_recipe", lambda search: ex.SEARCH[1])
    adopted = []
    monkeypatch.setattr(
        ex.runs,
        "adopt_run",
        lambda source, target, profile: adopted.append((source.name, target.name)),
    )
    assert train.main(["improved_clean", "reference", "--profile", "quick", "--seeds", "1"]) == 0
    ((first, before, final, again, profile),) = seen
    assert profile == "quick" and [c.name for c in first] == [
        f"{v.name}-seed0" for v in ex.SEARCH
    ] + ["reference-seed1"]
    assert before == again == []
    assert [c.name for c in final] == ["improved-seed1", "improved_clean-seed1"]
    improved, clean = ex.final_variants(ex.SEARCH[1])
    assert final == [ex.config_for(improved, 1, plan), ex.config_for(clean, 1, plan)]
    assert final[1].init_from == "improved-seed1"
    assert [
        ex.config_for(improved, 0, ex.PLANS[p]).epochs for p in ("quick", "default", "full")
    ] == [1, 1, 10]  # 2/3 of 1, 2 and 15 epochs, at least 1
    assert capsys.readouterr().out.count("already finished") == 1
    assert train.main(["reference", "--profile", "quick"]) == 1  # a failed run fails the command
    assert len(seen[-1][0]) == 1 and seen[-1][2] == []  # no final variant asked: no search
    assert adopted == []  # seed 1 is no search seed
    train.main(["improved", "--profile", "quick"])
    # the search's run of the winner is its final seed 0
    assert adopted == [("search_short-seed0", "improved-seed0")]


def test_choose_recipe_keeps_the_best_mean_validation_accuracy(monkeypatch):
    val = {
        ("search_base", 0): 0.990,
        ("search_base", 1): 0.996,
        ("search_short", 0): 0.994,
        ("search_short", 1): 0.991,
        ("search_dropout", 0): 0.989,
        ("search_dropout", 1): 0.993,
        ("search_deep", 0): 0.988,
        ("search_deep", 1): 0.992,
    }
    monkeypatch.setattr(
        ex,
        "run_variant",
        lambda v, seeds, plan, cache=None: [{"val_accuracy": val[v.name, s]} for s in seeds],
    )
    plan = ex.PLANS["full"]
    assert ex.choose_recipe(ex.search_entries(plan)) == ex.SEARCH[1]  # seed 0 alone
    two = ex.StudyPlan("x", (0,), 1, 1, (0,), search_seeds=(0, 1))
    assert ex.choose_recipe(ex.search_entries(two)) == ex.SEARCH[0]  # the mean of two


def test_study_jobs_cover_every_run_once_longest_first_parents_before_fine_tunes():
    plan = ex.PLANS["full"]
    jobs = [(v.name, seed) for v, seed in ex.study_jobs(plan)]
    assert (
        len(jobs)
        == len(set(jobs))
        == 2 * len(plan.final_seeds) + len(plan.variants) * len(plan.seeds)
    )
    assert jobs[0] == (ex.IMPROVED.name, plan.final_seeds[0])  # the longest runs first
    assert all(
        jobs.index((ex.IMPROVED.name, s)) < jobs.index((ex.CLEAN.name, s)) for s in plan.final_seeds
    )
    # a fine-tune brings its parent
    assert ex.study_jobs(plan, (ex.CLEAN,), (7,)) == [
        (ex.IMPROVED, 7),
        (ex.CLEAN, 7),
    ]


def test_improved_trains_on_noisy_backgrounds():
    """Without pixel noise the improved (BatchNorm) model collapses to one class under notebook 7's
    noise."""
    cfg = ex.config_for(ex.IMPROVED, 0, ex.PLANS["default"])
    assert "noise" in cfg.augment and set(ex.REFERENCE_AUGMENT) <= set(cfg.augment)
