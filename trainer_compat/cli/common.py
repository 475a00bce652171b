"""What the subcommands share: the one-line error and the --init-kwargs parser."""

from __future__ import annotations

import sys
from typing import Any


def error_line(message: str) -> None:
    print(f"trainer-compat: error: {message}", file=sys.stderr)


def parse_init_kwargs(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    from trainer_compat.features import parse_json_object

    return parse_json_object(text, "--init-kwargs", "keyword arguments")
