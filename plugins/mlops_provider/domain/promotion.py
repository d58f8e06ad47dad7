"""The promotion gate: may a challenger replace the champion, judged on the same holdout rows?

Every comparison respects the metric's direction (``config/tasks.py``): for a lower-is-better metric
(``rmse``, ``mae``, ``log_loss``) the improvement is how much *lower* the challenger is, and a guardrail
is a ceiling instead of a floor.

Under persistent drift every nightly challenger may beat the champion a little: the policy
``promotion.min_hours_between_promotions`` keeps the champion at least that long (in data time: the
days the two models were trained up to, like the retrain cooldown, so a backfill decides like live
runs), and the refusal says when the next promotion can happen.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_provider.config.tasks import PRIMARY_METRICS
from mlops_provider.domain.metrics import format_value, higher_is_better, usable

if TYPE_CHECKING:
    from mlops_provider.config.project import ProjectConfig


#: The baseline trained beside every model (``domain/training.py``), as reasons name it.
BASELINES = {"binary": "logistic-regression", "multiclass": "logistic-regression", "regression": "linear-regression"}


@dataclass
class Decision:
    """Outcome of the promotion gate: whether to promote, why (for a log line) and the numbers behind it."""

    promote: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


def improvement(metric: str, new: float, old: float) -> float:
    """How much better ``new`` is than ``old`` in ``metric``'s direction (positive: better)."""
    return new - old if higher_is_better(metric) else old - new


def _direction_note(metric: str) -> str:
    return "" if higher_is_better(metric) else " (lower is better)"


def _failed_guardrails(guardrails: dict[str, Any], metrics: dict[str, float], details: dict[str, Any]) -> list[str]:
    """Each guardrail is a floor (higher-is-better metric) or a ceiling (lower-is-better): the failed ones, described."""
    failed = []
    for metric, bound in sorted(guardrails.items()):
        value, bound = metrics.get(metric), float(bound)
        floor = higher_is_better(metric)
        passed = usable(value) and (value >= bound if floor else value <= bound)
        details["guardrails"][metric] = {"value": value, "floor" if floor else "ceiling": bound, "passed": passed}
        if not passed:
            failed.append(f"{metric}={format_value(value)} < floor {bound:.4f}" if floor
                          else f"{metric}={format_value(value)} > ceiling {bound:.4f}")
    return failed


def _against_baseline(primary: str, chal: float, baseline: Any, details: dict[str, Any],
                      baseline_name: str) -> Decision:
    """The first champion must beat the simple baseline (``baseline_name``) trained beside it."""
    if not usable(baseline):
        return Decision(False, f"no champion and no usable baseline {primary} to compare with", details)
    gain = improvement(primary, chal, baseline)
    details["improvement"] = gain
    note = _direction_note(primary)
    if gain > 0:
        change = f"+{chal - baseline:.4f}" if higher_is_better(primary) else f"{chal - baseline:+.4f}"
        return Decision(True, f"first champion: {primary} {chal:.4f} beats the {baseline_name} baseline "
                              f"{baseline:.4f} ({change}){note}; guardrails pass", details)
    return Decision(False, f"no champion yet and {primary} {chal:.4f} does not beat the baseline {baseline:.4f}{note}",
                    details)


def _against_champion(primary: str, chal: float, champ: Any, min_improvement: float,
                      details: dict[str, Any]) -> Decision:
    if not usable(champ):
        details["improvement"] = None
        return Decision(True, f"champion has no usable {primary} on this holdout; challenger {chal:.4f} passes "
                              "guardrails", details)
    gain = improvement(primary, chal, champ)
    details["improvement"] = gain
    note = _direction_note(primary)
    # A tie never promotes: swapping models that are equally good only adds risk.
    if gain > 0 and gain >= min_improvement:
        return Decision(True, f"{primary} {chal:.4f} beats champion {champ:.4f} by {gain:+.4f}{note} "
                              f"(needed >= {min_improvement:.4f}); guardrails pass", details)
    return Decision(False, f"{primary} {chal:.4f} vs champion {champ:.4f}: improvement {gain:+.4f}{note} is below "
                           f"the required {min_improvement:.4f} (and must be > 0)", details)


def _too_soon(project: ProjectConfig, decision: Decision, challenger_as_of: Any, champion_as_of: Any,
              champion: str | None) -> Decision:
    """A passing decision refused when the champion served less than ``promotion.min_hours_between_promotions``."""
    from mlops_provider.domain.layout import as_date

    hours = float(project.promotion.get("min_hours_between_promotions") or 0)
    if not decision.promote or hours <= 0 or not challenger_as_of or not champion_as_of:
        return decision
    challenger_day, champion_day = as_date(challenger_as_of), as_date(champion_as_of)
    served = dt.datetime.combine(challenger_day, dt.time()) - dt.datetime.combine(champion_day, dt.time())
    if served >= dt.timedelta(hours=hours):
        return decision
    earliest = dt.datetime.combine(champion_day, dt.time()) + dt.timedelta(hours=hours)
    next_day = earliest.date() + dt.timedelta(days=1 if earliest.time() != dt.time() else 0)
    details = {**decision.details, "min_hours_between_promotions": hours, "champion_as_of": champion_day.isoformat(),
               "challenger_as_of": challenger_day.isoformat(), "next_promotion_as_of": next_day.isoformat()}
    who = f"champion v{champion}" if champion else "the champion"
    return Decision(False, f"{decision.reason}; but {who} (trained as of {champion_day}) has served "
                           f"{served.total_seconds() / 3600:g} h of data time and promotion.min_hours_between_promotions "
                           f"is {hours:g} h: the next promotion can happen for a challenger trained as of {next_day} "
                           f"or later (this one: as of {challenger_day})", details)


def decide(
    project: ProjectConfig,
    challenger_metrics: dict[str, float],
    champion_metrics: dict[str, float] | None,
    baseline_metrics: dict[str, float],
    *,
    challenger_as_of: Any = None,
    champion_as_of: Any = None,
    champion: str | None = None,
) -> Decision:
    """Apply the project's promotion gate to metrics measured on the same holdout rows.

    ``challenger_as_of`` / ``champion_as_of`` (the days each model was trained up to, the runs'
    ``training_as_of``) let the gate apply ``promotion.min_hours_between_promotions``; without them the
    policy does not apply. ``champion`` (its version) only names it in the reason.
    """
    promo = project.promotion
    primary = promo.get("primary_metric") or PRIMARY_METRICS[project.task][0]
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
        return _against_baseline(primary, chal, baseline_metrics.get(primary), details, BASELINES[project.task])
    decision = _against_champion(primary, chal, champion_metrics.get(primary), details["min_improvement"], details)
    return _too_soon(project, decision, challenger_as_of, champion_as_of, champion)
