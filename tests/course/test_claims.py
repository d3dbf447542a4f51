"""The seed report's claims are judged on what the study tested, and only there."""

from __future__ import annotations

from mnist_utils import claims


def row(name, verdict="no difference shown", control="reference", low=-0.1, high=0.1, test=None):
    return {
        "variant": name,
        "control": control,
        "verdict": verdict,
        "difference": (low + high) / 2,
        "ci_low": low,
        "ci_high": high,
        "p_holm": 0.01 if verdict in ("better", "worse") else 0.4,
        "seeds": 3,
        "epochs": 6,
        "test": test or [99.1, 99.15, 99.2],
        "test_accuracy_mean": sum(test or [99.1, 99.15, 99.2]) / 3,
    }


ANALYSIS = {
    "errors": 73,
    "most_confused_pairs": [
        {"a": 4, "b": 9, "count": 9},
        {"a": 2, "b": 7, "count": 7},
        {"a": 3, "b": 5, "count": 7},
    ],
}


def found(report, start):
    return next(c for c in report if c["claim"].startswith(start))


def test_each_claim_reads_the_verdict_of_the_arm_that_isolates_it():
    rows = {
        "reference": row("reference"),
        "onecycle": row("onecycle", "better", "lr_3e-3", 0.1, 0.4),
        "third_conv": row("third_conv"),
        "strong_aug": row("strong_aug", "worse", low=-0.5, high=-0.2),
    }
    report = claims.seed_report(rows, ANALYSIS, {})
    assert found(report, "a learning-rate schedule")["finding"] == "supports"
    assert "onecycle − lr_3e-3" in found(report, "a learning-rate schedule")["measured"]
    assert found(report, "a third conv")["finding"].startswith("cannot tell: no difference")
    assert "p = 0.40 (3 seeds, 6 epochs)" in found(report, "a third conv")["measured"]  # not 0.4
    assert found(report, "better augmentation would help: wider")["finding"] == "contradicts"
    for untrained in ("better augmentation would help: a more", "dropout", "flips"):
        assert found(report, untrained)["finding"] == "cannot tell: full profile only"
    assert found(report, "the most confused")["finding"].startswith("cannot tell: 2 of 3 agree")


def test_below_the_seed_reports_accuracy_no_claim_is_judged():
    slow = [98.7, 98.8, 98.75]
    rows = {
        "reference": row("reference", test=slow),
        "onecycle": row("onecycle", "better", "lr_3e-3"),
    }
    report = claims.seed_report(rows, ANALYSIS, {})
    assert found(report, "a learning-rate schedule")["finding"].startswith(
        "cannot tell: the reference"
    )
    assert found(report, "98.93 %")["finding"] == "contradicts: below it"


def test_the_seed_reports_accuracy_is_judged_as_a_reproduction_over_seeds():
    assert claims.reproduction(row("reference", test=[99.1, 99.15, 99.2]))["finding"].startswith(
        "supports"
    )
    assert claims.reproduction(row("reference", test=[98.5, 99.0, 99.4]))["finding"] == (
        "cannot tell: the interval holds it"
    )
    one = claims.reproduction({"test": [99.2], "epochs": 6})
    assert one["finding"] == "cannot tell: needs 2 seeds or more" and "nan" not in one["measured"]
    assert one["measured"] == "reference arm: 99.20 %, 1 seed, 6 epochs"
