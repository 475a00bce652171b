"""Record, for every call site the rules report, its line in each release's source: protocol/lines.json.

    python scripts/record_site_lines.py [--src /work/tf-src] [--check]

``--src`` holds one directory per release (4.46.3/trainer.py, ...). ``--check`` fails (exit 1) when the
committed file differs from what the sources give. A forecast (``--transformers-version``) reads these lines.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import re
import sys
from pathlib import Path

from packaging.version import InvalidVersion, Version

import trainer_compat.rules
from trainer_compat.forecast import LINES, module_file, site_key
from trainer_compat.protocol.data import REQUIREMENTS
from trainer_compat.protocol.model import Site
from trainer_compat.protocol.sites import reads_at


def all_sites() -> list[Site]:
    sites = {r.site for r in REQUIREMENTS}
    for info in pkgutil.iter_modules(trainer_compat.rules.__path__):
        module = importlib.import_module(f"trainer_compat.rules.{info.name}")
        sites.update(v for v in vars(module).values() if isinstance(v, Site))
    return sorted(sites, key=lambda s: (s.pattern, s.modules))


def releases(src: Path) -> list[tuple[Version, Path]]:
    found = []
    for path in src.iterdir():
        try:
            found.append((Version(path.name), path))
        except InvalidVersion:
            continue
    return sorted(found)


def line_of(site: Site, root: Path) -> list[object] | None:
    regex = re.compile(site.pattern)
    for name in filter(None, map(module_file, site.modules)):
        path = root / name
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if reads_at(regex, line):
                return [name, number]
    return None


def record_release(sites: list[Site], root: Path) -> dict[str, list[object]]:
    """The lines of ``sites`` in one release's source directory (sites it lacks are left out)."""
    lines = {site_key(s.pattern, s.modules): line_of(s, root) for s in sites}
    return {k: v for k, v in lines.items() if v}


def record(src: Path) -> dict[str, object]:
    sites = all_sites()
    versions = {str(version): record_release(sites, root) for version, root in releases(src)}
    return {"source": "scripts/record_site_lines.py", "versions": versions}


def render(data: dict[str, object]) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--src", default="/work/tf-src", type=Path)
    parser.add_argument("--check", action="store_true")
    options = parser.parse_args()
    text = render(record(options.src))
    if options.check:
        same = LINES.is_file() and LINES.read_text(encoding="utf-8") == text
        print("up to date" if same else f"{LINES} is stale: rerun scripts/record_site_lines.py")
        return 0 if same else 1
    LINES.write_text(text, encoding="utf-8")
    print(f"wrote {LINES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
