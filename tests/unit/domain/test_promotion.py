"""The promotion gate respects each metric's direction: lower RMSE, MAE and log loss are better, and a
guardrail on such a metric is a ceiling, not a floor. Binary decisions read as they always did."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlops_provider.config.project import ProjectConfig
from mlops_provider.domain.promotion import decide, improvement


def project(task: str, primary: str, guardrails: dict | None = None, min_improvement: float = 0.0) -> ProjectConfig:
    return ProjectConfig(Path(f"{task}.yaml"), {
        "name": task, "model": {"name": f"{task}_model", "task": task},
        "promotion": {"primary_metric": primary, "min_improvement": min_improvement, "guardrails": guardrails or {}}})


def test_improvement_is_positive_when_better_in_either_direction():
    assert improvement("r2", 0.6, 0.5) == pytest.approx(0.1)
    assert improvement("rmse", 9.0, 10.0) == pytest.approx(1.0)
    assert improvement("log_loss", 0.7, 0.6) == pytest.approx(-0.1)


def test_lower_rmse_beats_the_champion_and_the_baseline():
    reg = project("regression", "rmse", min_improvement=0.5)
    first = decide(reg, {"rmse": 8.0}, None, {"rmse": 9.0})
    assert first.promote and first.details["improvement"] == pytest.approx(1.0)
    assert "beats the linear-regression baseline 9.0000 (-1.0000) (lower is better)" in first.reason
    worse_than_baseline = decide(reg, {"rmse": 9.5}, None, {"rmse": 9.0})
    assert not worse_than_baseline.promote and "does not beat the baseline" in worse_than_baseline.reason

    better = decide(reg, {"rmse": 9.0}, {"rmse": 10.0}, {"rmse": 12.0})
    assert better.promote and better.details["improvement"] == pytest.approx(1.0)
    assert "beats champion 10.0000 by +1.0000 (lower is better)" in better.reason
    too_little = decide(reg, {"rmse": 9.8}, {"rmse": 10.0}, {"rmse": 12.0})
    assert not too_little.promote and "below the required 0.5000" in too_little.reason
    higher = decide(reg, {"rmse": 11.0}, {"rmse": 10.0}, {"rmse": 12.0})
    assert not higher.promote and higher.details["improvement"] == pytest.approx(-1.0)
    assert "improvement -1.0000 (lower is better)" in higher.reason


def test_a_guardrail_on_a_lower_is_better_metric_is_a_ceiling():
    reg = project("regression", "r2", guardrails={"mae": 5.0, "r2": 0.3})
    ok = decide(reg, {"r2": 0.6, "mae": 4.0}, None, {"r2": 0.4})
    assert ok.promote and ok.details["guardrails"] == {"mae": {"value": 4.0, "ceiling": 5.0, "passed": True},
                                                       "r2": {"value": 0.6, "floor": 0.3, "passed": True}}
    over = decide(reg, {"r2": 0.6, "mae": 6.0}, None, {"r2": 0.4})
    assert not over.promote and "mae=6.0000 > ceiling 5.0000" in over.reason
    under = decide(reg, {"r2": 0.2, "mae": 4.0}, None, {"r2": 0.1})
    assert not under.promote and "r2=0.2000 < floor 0.3000" in under.reason
    missing = decide(reg, {"r2": 0.6}, None, {"r2": 0.4})  # an unmeasured metric never passes a guardrail
    assert not missing.promote and "mae=None > ceiling" in missing.reason


def test_multiclass_log_loss_as_primary_metric():
    multi = project("multiclass", "log_loss", guardrails={"macro_f1": 0.5})
    better = decide(multi, {"log_loss": 0.6, "macro_f1": 0.7}, {"log_loss": 0.7, "macro_f1": 0.7}, {"log_loss": 0.9})
    assert better.promote and better.details["improvement"] == pytest.approx(0.1)
    first = decide(multi, {"log_loss": 0.6, "macro_f1": 0.7}, None, {"log_loss": 0.9})
    assert first.promote and "logistic-regression baseline" in first.reason


def test_binary_reasons_are_unchanged():
    binary = project("binary", "pr_auc", guardrails={"roc_auc": 0.7})
    first = decide(binary, {"pr_auc": 0.30, "roc_auc": 0.85}, None, {"pr_auc": 0.20})
    assert first.reason == ("first champion: pr_auc 0.3000 beats the logistic-regression baseline 0.2000 (+0.1000); "
                            "guardrails pass")
    guard = decide(binary, {"pr_auc": 0.5, "roc_auc": 0.65}, None, {"pr_auc": 0.2})
    assert guard.reason == "challenger fails guardrails: roc_auc=0.6500 < floor 0.7000"
    assert guard.details["guardrails"]["roc_auc"] == {"value": 0.65, "floor": 0.7, "passed": False}
    tie = decide(binary, {"pr_auc": 0.3, "roc_auc": 0.85}, {"pr_auc": 0.3}, {"pr_auc": 0.2})
    assert tie.reason == ("pr_auc 0.3000 vs champion 0.3000: improvement +0.0000 is below the required 0.0000 "
                          "(and must be > 0)")


def test_min_hours_between_promotions_keeps_the_champion_and_says_when_the_next_can_happen():
    """Persistent drift: every nightly challenger beats the champion a little; the policy keeps the champion."""
    from mlops_provider.config.project import load_project

    policy = ProjectConfig(Path("binary.yaml"), {
        "name": "binary", "model": {"name": "binary_model", "task": "binary"},
        "promotion": {"primary_metric": "pr_auc", "min_improvement": 0.0, "guardrails": {},
                      "min_hours_between_promotions": 72}})
    better, champion = {"pr_auc": 0.62}, {"pr_auc": 0.60}
    nightly = [decide(policy, better, champion, {"pr_auc": 0.3}, challenger_as_of=f"2024-01-{d:02d}",
                      champion_as_of="2024-01-10", champion="4") for d in (11, 12, 13, 14)]
    assert [d.promote for d in nightly] == [False, False, True, True]
    refused = nightly[0]
    assert refused.reason.startswith("pr_auc 0.6200 beats champion 0.6000")
    assert ("champion v4 (trained as of 2024-01-10) has served 24 h of data time and "
            "promotion.min_hours_between_promotions is 72 h: the next promotion can happen for a challenger "
            "trained as of 2024-01-13 or later (this one: as of 2024-01-11)") in refused.reason
    assert refused.details["next_promotion_as_of"] == "2024-01-13"
    # Not a bypass of the gate: a worse challenger is refused for its metric, not the policy.
    worse = decide(policy, {"pr_auc": 0.5}, champion, {"pr_auc": 0.3}, challenger_as_of="2024-01-11",
                   champion_as_of="2024-01-10")
    assert not worse.promote and "min_hours_between_promotions" not in worse.reason
    # The first champion is never held back; without training days the policy cannot apply.
    assert decide(policy, better, None, {"pr_auc": 0.3}, challenger_as_of="2024-01-11").promote
    assert decide(policy, better, champion, {"pr_auc": 0.3}).promote
    # Off by default (the schema's default, the one source of defaults).
    assert load_project("fraud").promotion["min_hours_between_promotions"] == 0
    assert decide(load_project("fraud"), {"pr_auc": 0.62, "roc_auc": 0.9}, {"pr_auc": 0.6}, {"pr_auc": 0.3},
                  challenger_as_of="2024-01-11", champion_as_of="2024-01-10").promote
