"""``--format full``: the rich terminal report, findings grouped by feature, one verdict line per target, one
summary line at the end.

On a terminal, rich decides width (COLUMNS too) and colour (NO_COLOR, FORCE_COLOR) and wraps at word
boundaries with the indentation kept; anywhere else (a pipe, a file, ``render_terminal`` without a width) lines
are soft-wrapped: never broken, never padded with trailing spaces.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import IO

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from trainer_compat.findings import Finding, Severity
from trainer_compat.render.common import clean, place, summary, where
from trainer_compat.report import MemberRow, Report

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
_SOFT_WIDTH = 10_000  # wide enough that a table never wraps when lines are not wrapped at all


@dataclass(frozen=True)
class Terminal:
    """How the report is drawn: colour, and the width to wrap at (None: soft wrap, no width)."""

    color: bool = False
    width: int | None = None

    @classmethod
    def detect(cls, stream: IO[str] | None = None, *, force_color: bool = False) -> Terminal:
        """What rich makes of ``stream`` (stdout): colour on a TTY unless NO_COLOR, or with FORCE_COLOR or
        ``force_color`` (``--color``, which wins over NO_COLOR); a width only on a real terminal."""
        stream = stream if stream is not None else sys.stdout
        console = Console(file=stream, force_terminal=True if force_color else None,
                          no_color=False if force_color else None)
        color = console.color_system is not None and not console.no_color and console.is_terminal
        tty = bool(getattr(stream, "isatty", lambda: False)())
        return cls(color=color, width=console.width if tty else None)


def render_terminal(reports: Sequence[Report], *, color: bool = False, width: int | None = None,
                    verbosity: int = 0, terminal: Terminal | None = None) -> str:
    """``verbosity`` -1 (``-q``): findings and the summary; 0: members the arguments need, skipped checks;
    1 (``-v``): every protocol member."""
    terminal = terminal or Terminal(color=color, width=width)
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=terminal.color, no_color=not terminal.color,
                      color_system="standard" if terminal.color else None, highlight=False, emoji=False,
                      width=terminal.width or _SOFT_WIDTH, soft_wrap=terminal.width is None)
    for report in reports:
        _render_report(console, report, verbosity)
    console.print(Text(summary(reports), style="bold"))
    text = buffer.getvalue().rstrip("\n")
    return text if terminal.width else "\n".join(line.rstrip() for line in text.split("\n"))


def _indented(console: Console, text: Text | str, indent: int) -> None:
    text = text if isinstance(text, Text) else Text(text)
    if console.soft_wrap:
        console.print(Text(" " * indent) + text)
    else:
        console.print(Padding(text, (0, 0, 0, indent)))


def _render_report(console: Console, report: Report, verbosity: int) -> None:
    style = "bold green" if report.compatible else "bold red"
    console.print(Text(report.verdict(), style=style))
    if verbosity >= 0:
        _indented(console, f"features: {', '.join(report.features)} ({place(where(None, report))})", 2)
    by_feature = sorted(report.findings, key=lambda f: (f.feature or "", -f.severity.rank, f.rule))
    for feature, group in groupby(by_feature, key=lambda f: f.feature or "general"):
        console.print(Text(f"\n  [{feature}]", style="bold"))
        for finding in group:
            _render_finding(console, finding, report)
    rows = _rows(report, verbosity)
    if rows:
        console.print(_member_table(rows))
    if verbosity >= 0:
        for note in report.skipped:
            _indented(console, Text(f"skipped {clean(note)}", style="dim"), 2)
    console.print()


def _render_finding(console: Console, f: Finding, report: Report) -> None:
    head = Text(f"  {f.severity.value:7} ", style=_STYLE[f.severity])
    head.append(f"{f.rule} {f.name}", style="bold")
    head.append(f"  {place(where(f, report))}", style="dim")
    console.print(head)
    _indented(console, clean(f.message), 10)
    if f.fix:
        _indented(console, Text(f"fix: {clean(f.fix)}", style="green"), 10)


def _rows(report: Report, verbosity: int) -> list[MemberRow]:
    """The members the enabled features need and those a finding names; every member with ``-v``; none with -q."""
    if verbosity < 0:
        return []
    named = {f.member for f in report.findings if f.member}
    return [row for row in report.members if verbosity > 0 or row.needed_by or row.name in named]


def _member_table(rows: list[MemberRow]) -> Table:
    table = Table(title=None, show_edge=False, pad_edge=False, box=None, padding=(0, 2))
    for header in ("  member", "provenance", "needed by these arguments"):  # narrow: wrapped, never cut with "…"
        table.add_column(header, overflow="fold")
    for row in rows:
        needed = ", ".join(row.needed_by) or "-"
        style = "red" if row.provenance in ("missing", "broken") and row.needed_by else None
        table.add_row(f"  {row.name}", Text(clean(row.detail), style=style or ""), needed)
    return table
