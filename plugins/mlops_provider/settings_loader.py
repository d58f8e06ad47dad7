"""Apply ``airflow_settings.yaml`` (connections, pools, variables; Astro CLI format) without the Astro CLI.

``python -m mlops_provider.settings_loader airflow_settings.yaml [--dry-run]`` in an Airflow environment
(it writes to the metadata database, like ``airflow connections import``). Idempotent: an existing
connection, pool or variable with the same id is updated in place, nothing is duplicated.

String values may reference the environment as ``${NAME}`` or ``${NAME:-default}``; the file therefore
holds no host, port or secret of a real deployment. A reference to an unset variable without a default
is an error naming every missing variable (nothing is written then).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_CONN_FIELDS = {"conn_type": "conn_type", "conn_host": "host", "conn_schema": "schema", "conn_login": "login",
                "conn_password": "password", "conn_port": "port", "conn_extra": "extra",
                "conn_description": "description"}


def _typed(text: str) -> Any:
    """``true``/``false`` and integers as JSON types: a flag read from the environment must not stay ``"false"``."""
    if text.lower() in {"true", "false"}:
        return text.lower() == "true"
    return int(text) if re.fullmatch(r"-?[0-9]+", text) else text


def substitute(value: Any, env: dict[str, str], missing: set[str], typed: bool = False) -> Any:
    """``value`` with ``${NAME}`` references replaced from ``env`` (recursively in lists and dicts).

    With ``typed`` (connection extras), a string that referenced the environment and resolved to a
    boolean or integer literal becomes that boolean or integer.
    """
    if isinstance(value, str):
        def repl(match: re.Match[str]) -> str:
            name, default = match.group("name"), match.group("default")
            if name in env and env[name] != "":
                return env[name]
            if default is not None:
                return default
            missing.add(name)
            return ""

        result = _REF.sub(repl, value)
        return _typed(result) if typed and result != value else result
    if isinstance(value, list):
        return [substitute(v, env, missing, typed) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, env, missing, typed or k == "conn_extra") for k, v in value.items()}
    return value


def load(path: str | Path, env: dict[str, str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """The file's connections, pools and variables with references resolved; raises on missing variables."""
    import yaml

    path = Path(path)
    raw = yaml.safe_load(path.read_text()) or {}
    section = raw.get("airflow") or {}
    missing: set[str] = set()
    resolved = substitute({k: section.get(k) or [] for k in ("connections", "pools", "variables")},
                          dict(os.environ if env is None else env), missing)
    if missing:
        raise SystemExit(f"{path}: environment variable(s) not set: {', '.join(sorted(missing))}")
    for conn in resolved["connections"]:
        if not conn.get("conn_id") or not conn.get("conn_type"):
            raise SystemExit(f"{path}: every connection needs conn_id and conn_type: {conn.get('conn_id')!r}")
        unknown = set(conn) - set(_CONN_FIELDS) - {"conn_id"}
        if unknown:
            raise SystemExit(f"{path}: connection {conn['conn_id']!r}: unknown key(s) {sorted(unknown)}")
    return resolved


def _connection_fields(spec: dict[str, Any]) -> dict[str, Any]:
    fields = {attr: spec.get(key) for key, attr in _CONN_FIELDS.items()}
    fields = {k: (None if v == "" else v) for k, v in fields.items()}
    if fields["port"] is not None:
        fields["port"] = int(fields["port"])
    if isinstance(fields["extra"], (dict, list)):
        fields["extra"] = json.dumps(fields["extra"], sort_keys=True)
    return fields


def apply(settings: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """Create or update every connection, pool and variable; returns what changed, by kind."""
    # The ORM models, not airflow.sdk's: this writes the metadata database, as `airflow connections import` does.
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    report: dict[str, list[str]] = {"connections": [], "pools": [], "variables": []}
    with create_session() as session:
        for spec in settings["connections"]:
            fields = _connection_fields(spec)
            conn = session.scalar(select(Connection).where(Connection.conn_id == spec["conn_id"]))
            verb = "updated"
            if conn is None:
                conn, verb = Connection(conn_id=spec["conn_id"]), "created"
                session.add(conn)
            for attr, value in fields.items():
                if attr == "extra":
                    conn.set_extra(value)
                else:
                    setattr(conn, attr, value)
            report["connections"].append(f"{spec['conn_id']} ({fields['conn_type']}, {verb})")
        session.flush()
        for spec in settings["pools"]:
            Pool.create_or_update_pool(name=spec["pool_name"], slots=int(spec["pool_slot"]),
                                       description=spec.get("pool_description") or "",
                                       include_deferred=bool(spec.get("include_deferred", False)), session=session)
            report["pools"].append(f"{spec['pool_name']} ({spec['pool_slot']} slot(s))")
    for spec in settings["variables"]:
        value = spec.get("variable_value")
        serialize = not isinstance(value, str)
        Variable.set(spec["variable_name"], value, description=spec.get("variable_description"),
                     serialize_json=serialize)
        report["variables"].append(spec["variable_name"])
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_provider.settings_loader",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="airflow_settings.yaml")
    parser.add_argument("--dry-run", action="store_true", help="resolve and check the file, write nothing")
    args = parser.parse_args(argv)
    settings = load(args.path)
    if args.dry_run:
        for kind, items in settings.items():
            names = [i.get("conn_id") or i.get("pool_name") or i.get("variable_name") for i in items]
            print(f"{kind}: {', '.join(names) or '-'}")
        return 0
    report = apply(settings)
    for kind, items in report.items():
        print(f"{kind}: {', '.join(items) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
