"""Progress on stderr, for a person watching: one line as each target (or rule example) starts and finishes.

Only when stderr is a terminal: never in a pipe, a CI log or a file, never on stdout (the report's place).
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any


class Progress:
    """``start(i, what)`` and ``done(i, outcome)`` for step i of ``total`` (0-based), timed."""

    def __init__(self, total: int, stream: IO[str] | None = None, *, enabled: bool | None = None,
                 prefix: str = "trainer-compat") -> None:
        self.total, self.prefix = total, prefix
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = enabled if enabled is not None else bool(isatty and isatty())
        self.started: dict[int, tuple[str, float]] = {}

    def _write(self, text: str) -> None:
        if self.enabled:
            self.stream.write(f"{self.prefix}: {text}\n")
            self.stream.flush()

    def start(self, index: int, what: str) -> None:
        self.started[index] = (what, time.monotonic())
        self._write(f"[{index + 1}/{self.total}] {what} ...")

    def done(self, index: int, outcome: str) -> None:
        what, began = self.started.pop(index, ("", time.monotonic()))
        self._write(f"[{index + 1}/{self.total}] {what}: {outcome} ({time.monotonic() - began:.1f} s)")


class TargetProgress(Progress):
    """``check``: targets by name, each finishing with its verdict."""

    def __init__(self, targets: list[str], **kwargs: Any) -> None:
        super().__init__(len(targets), **kwargs)
        self.targets = targets

    def start_target(self, index: int) -> None:
        if index < self.total:
            self.start(index, f"checking {self.targets[index]}")

    def done_target(self, index: int, report: Any) -> None:
        errors, warnings = len(report.errors), len(report.warnings)
        head = "compatible" if report.compatible else "NOT compatible"
        self.done(index, f"{head} ({errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)})")
