"""Views of the same findings: every output format renders a list of Reports."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from trainer_compat.formats import ALIASES, OutputFormat
from trainer_compat.render.concise import render_concise
from trainer_compat.render.full import render_terminal
from trainer_compat.render.github import render_github
from trainer_compat.render.json import render_json
from trainer_compat.render.junit import render_junit
from trainer_compat.render.sarif import render_sarif
from trainer_compat.render.text import render_text
from trainer_compat.report import Report

Renderer = Callable[[Sequence[Report]], str]

RENDERERS: dict[OutputFormat, Renderer] = {
    OutputFormat.CONCISE: render_concise,
    OutputFormat.FULL: render_terminal,
    OutputFormat.JSON: render_json,
    OutputFormat.SARIF: render_sarif,
    OutputFormat.GITHUB: render_github,
    OutputFormat.JUNIT: render_junit,
}

__all__ = ["ALIASES", "RENDERERS", "OutputFormat", "Renderer", "render_concise", "render_github", "render_json",
           "render_junit", "render_sarif", "render_terminal", "render_text"]
