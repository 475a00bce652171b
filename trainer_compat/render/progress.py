"""Progress on stderr, for a person watching: one line as each target (or rule example) starts and finishes, and
the phases of a dry-run that takes longer than about a second.

Only when stderr is a terminal: never in a pipe, a CI log or a file, never on stdout (the report's place).
"""

from __future__ import annotations

import sys
import threading
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

    def relay(self, line: str) -> None:
        """A line an isolated child wrote for this terminal (its probe's phases), as it wrote it."""
        if self.enabled:
            self.stream.write(f"{line}\n")
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


class PhaseProgress:
    """A dry-run's phases, once it has run longer than ``after`` seconds: the phase running at that moment (from a
    timer), then each later phase as it starts, and a closing line. Nothing for a probe that finishes sooner, and
    nothing at all unless the stream is a terminal."""

    def __init__(self, what: str, stream: IO[str] | None = None, *, enabled: bool | None = None,
                 after: float = 1.0, prefix: str = "trainer-compat") -> None:
        self.what, self.after, self.prefix = what, after, prefix
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = enabled if enabled is not None else bool(isatty and isatty())
        self.began = time.monotonic()
        self.current: str | None = None
        self.shown = self.closed = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def phase(self, name: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            self.current = name
            wait = self.after - (time.monotonic() - self.began)
        if wait <= 0:
            self._show()
        elif self._timer is None:
            self._timer = threading.Timer(wait, self._show)
            self._timer.daemon = True
            self._timer.start()

    def _show(self) -> None:
        with self._lock:
            if self.closed or self.current is None:
                return
            self.shown = True
            self._write(f"{self.current} ... ({time.monotonic() - self.began:.1f} s)")

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self.closed = True
            if self.shown:
                self._write(f"done ({time.monotonic() - self.began:.1f} s)")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(f"{self.prefix}: probe {self.what}: {text}\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: progress is never worth an error
            pass
