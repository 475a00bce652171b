"""The output formats: every one a view of the same findings (``render.RENDERERS`` maps each to its renderer)."""

from __future__ import annotations

import enum


class OutputFormat(str, enum.Enum):
    """``--format`` / the ``format`` key of ``[tool.trainer-compat]``."""

    CONCISE = "concise"  # one line per finding (ruff's default view)
    FULL = "full"  # the terminal report: findings by feature, the member table, skipped checks
    JSON = "json"
    SARIF = "sarif"
    GITHUB = "github"  # workflow commands: pull-request annotations
    JUNIT = "junit"

    def __str__(self) -> str:  # the value, as a plain str would print (Enum's is "Class.NAME")
        return str.__str__(self)

    def __format__(self, format_spec: str) -> str:
        return str.__format__(self, format_spec)

    @classmethod
    def parse(cls, text: str) -> OutputFormat:
        """A format by name (``text``: the 0.1 name of ``concise``); ValueError for an unknown one."""
        return cls(ALIASES.get(text, text))


ALIASES = {"text": "concise"}
FORMATS = tuple(f.value for f in OutputFormat)
CI_FORMATS = frozenset({OutputFormat.SARIF, OutputFormat.GITHUB, OutputFormat.JUNIT, OutputFormat.CONCISE})
