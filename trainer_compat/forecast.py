"""``--transformers-version X``: the verdict for a release that is not installed.

The rules read the version from ``Context.version``; the protocol data is keyed by version, so setting it to X
gives X's verdict. Only the call sites cannot be read from X's source (it is not installed): their lines come from
``protocol/lines.json`` (recorded from the sources of every release by ``scripts/record_site_lines.py``), and a
site that file does not know is reported as "line unknown".
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from trainer_compat.errors import UsageError
from trainer_compat.findings import Location

OLDEST = Version("4.46.0")
LINES = Path(__file__).resolve().parent / "protocol" / "lines.json"


def parse(text: str) -> Version:
    try:
        version = Version(str(text))
    except InvalidVersion as exc:
        raise UsageError(f"--transformers-version: {text!r} is not a version") from exc
    if Version(version.base_version) < OLDEST:
        raise UsageError(f"--transformers-version: {text} is older than {OLDEST}, the oldest release supported")
    return version


def requested(explicit: str | None = None) -> Version | None:
    """The version asked for, or None for the installed one."""
    return parse(explicit) if explicit else None


def module_file(module: str) -> str | None:
    """transformers.trainer -> trainer.py (the path inside the transformers package)."""
    if not module.startswith("transformers."):
        return None
    return "/".join(module.split(".")[1:]) + ".py"


@lru_cache(maxsize=1)
def _lines() -> dict[str, Any]:
    if not LINES.is_file():
        return {}
    return json.loads(LINES.read_text(encoding="utf-8"))


def site_key(pattern: str, modules: tuple[str, ...]) -> str:
    return f"{pattern} @ {','.join(modules)}"


def forecast_site(pattern: str, modules: tuple[str, ...], version: Version) -> Location:
    """The site's ``file:line`` in ``version`` as recorded, or the file with "line unknown"."""
    recorded = _lines().get("versions", {}).get(str(version), {}).get(site_key(pattern, modules))
    if recorded:
        return Location(f"transformers/{recorded[0]}", int(recorded[1]))
    first = next((f for f in map(module_file, modules) if f), modules[0])
    return Location(f"transformers/{first} (transformers {version}: line unknown)")


def note(version: Version, installed: Version) -> str:
    return (f"verdict forecast for transformers {version} from the version-keyed protocol data (installed: "
            f"{installed}); the model is checked as built with the installed transformers")
