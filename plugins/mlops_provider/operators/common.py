"""Small helpers every operator of the provider shares."""

from __future__ import annotations

from typing import Any


def json_safe(value: Any) -> Any:
    """NaN is not JSON: XCom consumers get ``None`` for a metric that could not be computed."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def int_or_none(value: Any) -> int | None:
    """A templated number: empty, ``None`` or ``"None"`` (an unset param) mean "use the default"."""
    return None if value in (None, "", "None") else int(value)
