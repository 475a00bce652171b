"""Errors that end a run with exit code 2: bad input, never a verdict."""

from __future__ import annotations


class UsageError(Exception):
    """Bad command-line input or API arguments (exit 2, one line)."""


class TargetError(UsageError):
    """A target that cannot be imported, found or used (exit 2, one line naming the target)."""

    def __init__(self, target: str, cause: str) -> None:
        super().__init__(f"{target}: {cause}")
        self.target = target
        self.cause = cause
