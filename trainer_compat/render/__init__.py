"""Views of the same findings: every output format renders a list of Reports."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from trainer_compat.render.concise import render_concise
from trainer_compat.render.github import render_github
from trainer_compat.render.json import render_json
from trainer_compat.render.junit import render_junit
from trainer_compat.render.sarif import render_sarif
from trainer_compat.render.terminal import render_terminal
from trainer_compat.render.text import render_text
from trainer_compat.report import Report

Renderer = Callable[[Sequence[Report]], str]

RENDERERS: dict[str, Renderer] = {
    "concise": render_concise,
    "full": render_terminal,
    "json": render_json,
    "sarif": render_sarif,
    "github": render_github,
    "junit": render_junit,
}
ALIASES = {"text": "concise"}  # the 0.1 name of the one-line-per-finding view

__all__ = ["ALIASES", "RENDERERS", "Renderer", "render_concise", "render_github", "render_json", "render_junit",
           "render_sarif", "render_terminal", "render_text"]
