"""The seed report's claims, each judged on what this profile's study tested: by the verdict of the
arm that differs from its control in what the claim names, only where the reference arm is at
least as accurate as the seed report's model; "cannot tell" for what was not tested or ranked."""

from __future__ import annotations

import math

from scipy import stats

from .experiments import REGIME, SEED_REPORT_ACCURACY
from .text import plural

SEED_PAIRS = {frozenset(p) for p in ((2, 7), (4, 9), (6, 5))}
"""The pairs the seed report saw confused most, by eye."""
CLAIMS = (
    ("dropout did not change the accuracy much", "dropout", 0),
    ("a learning-rate schedule would help", "onecycle", +1),
    ("a third convolutional layer would help", "third_conv", +1),
    ("better augmentation would help: wider ranges of the same three transforms", "strong_aug", +1),
    ("better augmentation would help: a more advanced one (elastic distortion)", "elastic", +1),
)
"""(claim, the arm that isolates it, +1 "would help" or 0 "changes little")."""


def measured(r: dict) -> str:
    """An arm's difference from its control, with its 95 % interval and Holm-corrected p."""
    interval = f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
    budget = f"{plural(r['seeds'], 'seed')}, {plural(r['epochs'], 'epoch')}"
    return (
        f"{r['variant']} − {r['control']}: {r['difference']:+.2f} points {interval}, "
        f"Holm-corrected p = {r['p_holm']:#.2g} ({budget})"
    )


def arm_claim(claim: str, row: dict | None, hoped: int, in_regime: bool) -> dict:
    """A claim about one arm: supports / contradicts where its verdict says so, else cannot tell."""
    if row is None:
        return {
            "claim": claim,
            "measured": "not trained in this profile",
            "finding": "cannot tell: full profile only",
        }
    if math.isnan(row["p_holm"]):
        return {
            "claim": claim,
            "measured": f"{row['seeds']} seed(s)",
            "finding": ("cannot tell: needs 2 seeds or more"),
        }
    if not in_regime:
        finding = "cannot tell: the reference arm is below the seed report's accuracy"
    elif hoped == 0:  # "changes little": no difference shown, and the interval within ±0.2 points
        small = (
            row["verdict"] == "no difference shown"
            and -0.2 <= row["ci_low"] <= row["ci_high"] <= 0.2
        )
        finding = (
            "supports"
            if small
            else (
                "contradicts"
                if row["verdict"] in ("better", "worse")
                else "cannot tell: the interval is too wide"
            )
        )
    else:
        finding = {"better": "supports", "worse": "contradicts"}.get(
            row["verdict"], "cannot tell: no difference shown at this budget"
        )
    return {"claim": claim, "measured": measured(row), "finding": finding}


def reproduction(reference: dict) -> dict:
    """The seed report's 98.93 % against the reference arm's seeds: its 95 % interval of the mean
    (Student's t) above it (reproduced), below it (not reproduced), or around it (cannot tell)."""
    test = reference["test"]
    mean, half = sum(test) / len(test), math.nan
    if len(test) > 1:
        half = stats.t.ppf(0.975, len(test) - 1) * stats.tstd(test) / math.sqrt(len(test))
    low, high = mean - half, mean + half
    claim = f"{SEED_REPORT_ACCURACY:.2f} % test accuracy with the recipe"
    budget = f"{plural(len(test), 'seed')}, {plural(reference['epochs'], 'epoch')}"
    interval = "" if math.isnan(half) else f" [{low:.2f}, {high:.2f}]"
    found = f"reference arm: {mean:.2f} %{interval}, {budget}"
    if math.isnan(half):
        finding = "cannot tell: needs 2 seeds or more"
    elif low >= SEED_REPORT_ACCURACY:
        finding = "supports: reproduced, even in fewer epochs"
    elif high < SEED_REPORT_ACCURACY:
        finding = "contradicts: below it"
    else:
        finding = "cannot tell: the interval holds it"
    return {"claim": claim, "measured": found, "finding": finding}


def pairs_claim(pairs: list[dict], errors: int) -> dict:
    """The seed report's confused pairs against notebook 05's top three: one model's errors are
    too few to rank pairs apart."""
    top = pairs[:3]
    agree = len({frozenset((p["a"], p["b"])) for p in top} & SEED_PAIRS)
    found = "top 3 here: " + ", ".join(f"{p['a']}↔{p['b']} ({p['count']})" for p in top)
    finding = (
        f"cannot tell: {agree} of 3 agree, but one model's {errors} errors cannot rank the pairs"
    )
    return {
        "claim": "the most confused pairs are 2↔7, 4↔9 and 6↔5",
        "measured": found,
        "finding": finding,
    }


def flips_claim(flips: dict, in_regime: bool) -> dict:
    """Flips against the reference: how many more 6↔9 confusions per model (full profile)."""
    claim = "flips would confuse 6 and 9"
    if not flips:
        return {
            "claim": claim,
            "measured": "not trained in this profile",
            "finding": "cannot tell: full profile only",
        }
    flipped = sum(flips["flips"][k] - flips["reference"][k] for k in ("6->9", "9->6"))
    finding = ("supports" if flipped > 0 else "contradicts") if in_regime else "cannot tell"
    return {
        "claim": claim,
        "measured": f"{flipped:+.1f} test images 6↔9 per model with flips",
        "finding": finding,
    }


def seed_report(rows: dict[str, dict], analysis: dict, flips: dict) -> list[dict]:
    """Every claim of the seed report with what this profile measured and the finding."""
    reference = rows["reference"]
    in_regime = reference["test_accuracy_mean"] >= REGIME
    found = [reproduction(reference)]
    if analysis.get("most_confused_pairs"):
        found.append(pairs_claim(analysis["most_confused_pairs"], analysis["errors"]))
    else:
        found.append(
            {
                "claim": "the most confused pairs are 2↔7, 4↔9 and 6↔5",
                "measured": ("notebook 05 has not run"),
                "finding": "cannot tell: no confusion matrix",
            }
        )
    found += [arm_claim(c, rows.get(arm), hoped, in_regime) for c, arm, hoped in CLAIMS]
    return found + [flips_claim(flips, in_regime)]
