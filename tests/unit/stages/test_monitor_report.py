"""The saved Evidently HTML cannot be broken out of by a data value (issue 14): a category value
``</script><img ...>`` stays inside the report's embedded JSON."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from devkit.datagen import fraud

EVIL = "</script><img src=x onerror=alert(1)>"


def test_a_category_value_cannot_break_out_of_the_report_script(tmp_path):
    from mlops_provider.config.project import load_project
    from mlops_provider.domain.drift import monitor_day
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages.monitor import save_report

    project = load_project("fraud")
    features = list(project.features["record"]["columns"])
    reference = fraud.generate(dt.date(2024, 1, 1), 1500)
    current = fraud.generate(dt.date(2024, 1, 9), 1500)
    current.loc[current.index[:300], "merchant_category"] = EVIL  # a new, frequent category: drift names it
    for frame in (reference, current):
        frame["champion_score"] = 0.1
    result = monitor_day(project, reference=reference, current=current, feature_columns=features)

    uris = save_report(result, Lake(tmp_path.as_uri()), "fraud/monitoring/dt=2024-01-09/report")
    html = Path(uris["html"].removeprefix("file://")).read_text()
    assert "</script><img" not in html and "<img src=x" not in html
    # The value is still in the report, and the embedded data read back identically.
    data = re.search(r"^\s*var ([A-Za-z_$][\w$]*) = (\{.*\});\s*$", html, re.M)
    assert data and EVIL in json.dumps(json.loads(data[2]), ensure_ascii=False) + json.dumps(
        json.loads(re.search(rf"^\s*var additional_graphs_{data[1]} = (.*);\s*$", html, re.M)[1]), ensure_ascii=False)
    # The first script ends after the data, not inside it.
    assert html.index("</script>") > html.index("var additional_graphs_")
