"""Views of the same findings: every output format renders a list of Reports."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from trainer_compat.render.json import render_json
from trainer_compat.render.terminal import render_terminal
from trainer_compat.render.text import render_text
from trainer_compat.report import Report

RENDERERS: dict[str, Callable[[Sequence[Report]], str]] = {
    "full": render_terminal,
    "text": render_text,
    "json": render_json,
}

__all__ = ["RENDERERS", "render_json", "render_terminal", "render_text"]
