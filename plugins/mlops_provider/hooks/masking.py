"""Secrets inside URI-valued connection fields, registered with Airflow's secrets masker.

Airflow masks a connection's ``password`` and the extra values whose *key* sounds secret
(``password``, ``connection_string``, ...), but not a password inside a URI under an innocent key:
``{"tracking_uri": "postgresql://user:s3cret@db/mlflow"}``, Feast's ``registry.path``, a lake URI.
:func:`mask_connection_secrets` finds those (the userinfo password of every URI, secret query
parameters, ``password=...`` pairs of a Redis-style connection string) and hands each one to
``airflow.sdk.log.mask_secret``, so the task log, the supervisor's log and rendered templates show
``***`` instead. The hooks call it when they read their connection; their own log lines print URIs
through :func:`safe_uri` (no ``user:password@``, no credential query parameters).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from mlops_provider.domain.alerts import strip_userinfo

# The same parameter names alerts strip from links (presigned S3 URLs, tokens in links).
_SECRET_KEY = re.compile(r"(pass|pwd|secret|token|signature|credential|sig$|^key$|apikey|api_key)", re.I)
_URI = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")
# ``host:6379,password=...`` (Redis), ``...;Password=...`` (ODBC-style) outside any URI.
_PAIR = re.compile(r"(?:^|[,;&\s])(?P<key>[A-Za-z_]*(?:pass|pwd|secret|token)[A-Za-z_]*)=(?P<value>[^,;&\s]+)", re.I)


def uri_secrets(uri: str) -> list[str]:
    """The secrets of one URI: its userinfo password and the values of its credential query parameters."""
    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:  # e.g. a port that is not a number: fall back to the raw userinfo
        netloc = uri.split("://", 1)[-1].split("/", 1)[0]
        password = netloc.rsplit("@", 1)[0].partition(":")[2] if "@" in netloc else None
        parts = None
    found = [password] if password else []
    queries = [] if parts is None else [parts.query, parts.fragment.partition("?")[2]]
    for query in queries:
        found += [v for k, v in parse_qsl(query, keep_blank_values=False) if _SECRET_KEY.search(k)]
    return [s for secret in found for s in dict.fromkeys((secret, unquote(secret))) if s]


def secrets_in(value: Any) -> Iterator[str]:
    """Every URI / key=value secret inside ``value`` (a string, or dicts and lists of them, walked)."""
    if isinstance(value, str):
        for match in _URI.finditer(value):
            yield from uri_secrets(match.group(0))
        for match in _PAIR.finditer(_URI.sub(" ", value)):
            yield match["value"]
    elif isinstance(value, dict):
        for item in value.values():
            yield from secrets_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from secrets_in(item)


def mask_connection_secrets(*values: Any) -> list[str]:
    """Register every secret found in ``values`` (connection extras, hosts) with Airflow's secrets masker."""
    from airflow.sdk.log import mask_secret

    found = list(dict.fromkeys(s for value in values for s in secrets_in(value)))
    for secret in found:
        mask_secret(secret)
    return found


def safe_uri(uri: Any) -> str:
    """``uri`` fit for a log line or a UI message: no ``user:password@``, no credential query parameters.

    A URI with neither comes back unchanged (``sqlite:////abs/path`` keeps its four slashes).
    """
    text = "" if uri is None else str(uri)
    netloc = text.split("://", 1)[-1].split("/", 1)[0]
    return strip_userinfo(text) if "@" in netloc or uri_secrets(text) else text
