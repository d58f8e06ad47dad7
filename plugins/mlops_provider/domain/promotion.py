"""The promotion gate: may a challenger replace the champion, judged on the same holdout rows?"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_provider.domain.metrics import format_value, usable

if TYPE_CHECKING:
    from mlops_provider.config.project import ProjectConfig


@dataclass
class Decision:
    """Outcome of the promotion gate: whether to promote, why (for a log line) and the numbers behind it."""

    promote: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


def _failed_guardrails(guardrails: dict[str, Any], metrics: dict[str, float], details: dict[str, Any]) -> list[str]:
    failed = []
    for metric, floor in sorted(guardrails.items()):
        value = metrics.get(metric)
        passed = usable(value) and value >= float(floor)
        details["guardrails"][metric] = {"value": value, "floor": float(floor), "passed": passed}
        if not passed:
            failed.append(f"{metric}={format_value(value)} < floor {float(floor):.4f}")
    return failed


def _against_baseline(primary: str, chal: float, baseline: Any, details: dict[str, Any]) -> Decision:
    """The first champion must beat the logistic-regression baseline trained beside it."""
    if not usable(baseline):
        return Decision(False, f"no champion and no usable baseline {primary} to compare with", details)
    details["improvement"] = chal - baseline
    if chal > baseline:
        return Decision(True, f"first champion: {primary} {chal:.4f} beats the logistic-regression baseline "
                              f"{baseline:.4f} (+{chal - baseline:.4f}); guardrails pass", details)
    return Decision(False, f"no champion yet and {primary} {chal:.4f} does not beat the baseline {baseline:.4f}",
                    details)


def _against_champion(primary: str, chal: float, champ: Any, min_improvement: float,
                      details: dict[str, Any]) -> Decision:
    if not usable(champ):
        details["improvement"] = None
        return Decision(True, f"champion has no usable {primary} on this holdout; challenger {chal:.4f} passes "
                              "guardrails", details)
    improvement = chal - champ
    details["improvement"] = improvement
    # A tie never promotes: swapping models that are equally good only adds risk.
    if improvement > 0 and improvement >= min_improvement:
        return Decision(True, f"{primary} {chal:.4f} beats champion {champ:.4f} by {improvement:+.4f} "
                              f"(needed >= {min_improvement:.4f}); guardrails pass", details)
    return Decision(False, f"{primary} {chal:.4f} vs champion {champ:.4f}: improvement {improvement:+.4f} is below "
                           f"the required {min_improvement:.4f} (and must be > 0)", details)


def decide(
    project: ProjectConfig,
    challenger_metrics: dict[str, float],
    champion_metrics: dict[str, float] | None,
    baseline_metrics: dict[str, float],
) -> Decision:
    """Apply the project's promotion gate to metrics measured on the same holdout rows."""
    promo = project.promotion
    primary = promo["primary_metric"]
    chal = challenger_metrics.get(primary)
    details: dict[str, Any] = {
        "primary_metric": primary,
        "min_improvement": float(promo["min_improvement"]),
        "challenger": chal,
        "champion": None if champion_metrics is None else champion_metrics.get(primary),
        "baseline": baseline_metrics.get(primary),
        "guardrails": {},
    }
    if not usable(chal):
        return Decision(False, f"challenger has no usable {primary} on the holdout (got {chal})", details)
    failed = _failed_guardrails(dict(promo.get("guardrails") or {}), challenger_metrics, details)
    if failed:
        return Decision(False, "challenger fails guardrails: " + "; ".join(failed), details)
    if champion_metrics is None:
        return _against_baseline(primary, chal, baseline_metrics.get(primary), details)
    return _against_champion(primary, chal, champion_metrics.get(primary), details["min_improvement"], details)
