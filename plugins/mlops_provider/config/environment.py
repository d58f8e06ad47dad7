"""Environment variables set for the length of a block, then restored exactly (unset stays unset)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping


@contextlib.contextmanager
def patched_environ(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set each of ``values`` (``None`` or ``""``: unset it) inside the block; restore the previous state after.

    Libraries that read credentials only from the environment (MLflow's tracking login, s3fs under
    Feast) get them for the calls that need them and no longer.
    """
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value:
                os.environ[name] = value
            else:
                os.environ.pop(name, None)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
