"""``--format json``: one document for all targets."""

from __future__ import annotations

import json
from collections.abc import Sequence

from trainer_compat.render.common import counts
from trainer_compat.report import Report
from trainer_compat.versions import installed_torch, installed_transformers


def render_json(reports: Sequence[Report]) -> str:
    document = {
        "transformers": str(installed_transformers()),
        "torch": installed_torch(),
        "summary": counts(reports),
        "results": [r.to_dict() for r in reports],
    }
    return json.dumps(document, indent=2)
