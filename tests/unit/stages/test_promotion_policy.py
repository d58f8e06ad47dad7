"""promotion.min_hours_between_promotions through the promote stage on a real MLflow store: the gate reads both
models' training day (their runs' ``training_as_of``) and holds a better challenger back until the champion has
served long enough, naming the day from which it may promote."""

from __future__ import annotations

from mlops_provider.stages.promote import gate_and_promote

from tests.unit.stages.test_promote import MODEL, aliases, client, template  # noqa: F401 (fixtures)


def with_policy(project, hours: float):
    from mlops_provider.config.project import ProjectConfig

    return ProjectConfig(project.path, {**project.raw, "promotion": {**project.promotion,
                                                                     "min_hours_between_promotions": hours}})


def test_a_better_challenger_waits_until_the_champion_served_its_minimum(client, template):  # noqa: F811
    from mlops_provider.io import model_store

    project = with_policy(template["project"], 72)
    model_store.promote(client, MODEL, "2", reason="setup: a weak champion")
    client.set_tag(template["bad"]["run_id"], "training_as_of", "2024-03-08")
    client.set_tag(template["good"]["run_id"], "training_as_of", "2024-03-09")

    held = gate_and_promote(project, client, version=1)
    assert held["promoted"] is False and aliases(client)["champion"] == "2"
    assert "beats champion" in held["reason"]  # the better model, held back by the policy alone
    assert ("champion v2 (trained as of 2024-03-08) has served 24 h of data time and "
            "promotion.min_hours_between_promotions is 72 h: the next promotion can happen for a challenger "
            "trained as of 2024-03-11 or later (this one: as of 2024-03-09)") in held["reason"]
    assert client.get_model_version(MODEL, "1").tags["promotion_reason"] == held["reason"]

    client.set_tag(template["good"]["run_id"], "training_as_of", "2024-03-11")  # a challenger 72 h later
    promoted = gate_and_promote(project, client, version=1)
    assert promoted["promoted"] and aliases(client)["champion"] == "1"


def test_without_the_policy_the_same_challenger_promotes_at_once(client, template):  # noqa: F811
    from mlops_provider.io import model_store

    model_store.promote(client, MODEL, "2", reason="setup: a weak champion")
    client.set_tag(template["bad"]["run_id"], "training_as_of", "2024-03-08")
    client.set_tag(template["good"]["run_id"], "training_as_of", "2024-03-09")
    assert gate_and_promote(with_policy(template["project"], 0), client, version=1)["promoted"]
