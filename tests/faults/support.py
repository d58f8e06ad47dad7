"""The fault cases' results, kept in one module that the conftest (the table) and the tests share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RESULTS: list[tuple[str, str, str, bool]] = []


@dataclass
class Case:
    """One fault case: its rows of the table, and the assertion of all of them at the end."""

    fault: str
    stage: str
    failed: list[str] = field(default_factory=list)

    def check(self, invariant: str, held: bool, detail: Any = "") -> bool:
        RESULTS.append((self.fault, self.stage, invariant, bool(held)))
        if not held:
            self.failed.append(f"{invariant}: {detail}")
        return bool(held)

    def verify(self) -> None:
        assert not self.failed, f"{self.fault} / {self.stage}: invariants broken:\n" + "\n".join(self.failed)
