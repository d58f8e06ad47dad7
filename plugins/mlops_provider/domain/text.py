"""Text from outside (file contents, parser errors, data values) made safe to print in a log line or an email."""

from __future__ import annotations

#: Default cut of one untrusted value (a parser's error line, one failed expectation).
MAX_CHARS = 300


def printable(value: object, limit: int | None = MAX_CHARS, *, newlines: bool = False) -> str:
    """``value`` as text with every non-printable character escaped (``\\x00``, ``\\x1b``, ``\\ufeff``), cut to ``limit``.

    Bytes are decoded as UTF-8 with invalid bytes escaped. Raw binary from a broken file would otherwise
    reach the task log and the on-call email as control characters (terminal escapes, NULs, a BOM).
    ``newlines=True`` keeps line breaks and tabs (a multi-line message); otherwise they are escaped too.
    """
    text = value.decode("utf-8", "backslashreplace") if isinstance(value, bytes | bytearray) else str(value)
    out = []
    for ch in text:
        if ch.isprintable() or (newlines and ch in "\n\t"):
            out.append(ch)
        elif ch == "\r" and newlines:
            continue
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    safe = "".join(out)
    if limit is not None and len(safe) > limit:
        safe = safe[:limit] + f"... [cut, {len(safe)} characters]"
    return safe
