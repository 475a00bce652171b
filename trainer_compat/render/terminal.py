"""``--format full``: the rich terminal report, findings grouped by feature, one verdict line per target."""

from __future__ import annotations

import io
from collections.abc import Sequence
from itertools import groupby

from rich.console import Console
from rich.table import Table
from rich.text import Text

from trainer_compat.findings import Finding, Severity
from trainer_compat.report import Report

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def render_terminal(reports: Sequence[Report], *, color: bool = False, width: int = 110) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, no_color=not color, width=width, highlight=False)
    for report in reports:
        _render_report(console, report)
    return buffer.getvalue().rstrip("\n")


def _render_report(console: Console, report: Report) -> None:
    style = "bold green" if report.compatible else "bold red"
    console.print(Text(report.verdict(), style=style))
    where = f" ({report.location})" if report.location else ""
    console.print(f"  features: {', '.join(report.features)}{where}")
    by_feature = sorted(report.findings, key=lambda f: (f.feature or "", -f.severity.rank, f.rule))
    for feature, group in groupby(by_feature, key=lambda f: f.feature or "general"):
        console.print(Text(f"\n  [{feature}]", style="bold"))
        for finding in group:
            _render_finding(console, finding)
    if report.members:
        console.print(_member_table(report))
    for note in report.skipped:
        console.print(Text(f"  skipped {note}", style="dim"))
    console.print()


def _render_finding(console: Console, f: Finding) -> None:
    head = Text(f"  {f.severity.value:7} ", style=_STYLE[f.severity])
    head.append(f"{f.rule} {f.name}", style="bold")
    if f.location:
        head.append(f"  {f.location}", style="dim")
    console.print(head)
    console.print(f"          {f.message}", soft_wrap=False)
    if f.fix:
        console.print(Text(f"          fix: {f.fix}", style="green"))


def _member_table(report: Report) -> Table:
    table = Table(title=None, show_edge=False, pad_edge=False, box=None, padding=(0, 2))
    table.add_column("  member")
    table.add_column("provenance")
    table.add_column("needed by these arguments")
    for row in report.members:
        needed = ", ".join(row.needed_by) or "-"
        style = "red" if row.provenance in ("missing", "broken") and row.needed_by else None
        table.add_row(f"  {row.name}", Text(row.detail, style=style or ""), needed)
    return table
