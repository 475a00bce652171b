"""``--format json``: one document for all targets."""

from __future__ import annotations

import json
from collections.abc import Sequence

from trainer_compat.render.common import counts
from trainer_compat.report import Report


def render_json(reports: Sequence[Report]) -> str:
    """The header names the release the verdicts are for (a forecast's, not the installed one), read from the
    reports themselves: a view of the findings, never of the environment that renders them."""
    document = {
        "transformers": _shared([r.transformers_version for r in reports]),
        "torch": _shared([r.torch_version for r in reports]),
        "summary": counts(reports),
        "results": [r.to_dict() for r in reports],
    }
    return json.dumps(document, indent=2)


def _shared(values: Sequence[str]) -> str | None:
    """The one value every report carries; with none (no target) or several, null (each result has its own)."""
    distinct = {v for v in values if v}
    return distinct.pop() if len(distinct) == 1 else None
