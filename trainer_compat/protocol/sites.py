"""Resolve a protocol Site to ``file:line`` in the transformers that is installed."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from trainer_compat.findings import Location
from trainer_compat.library_source import module_file
from trainer_compat.protocol.model import Site

if TYPE_CHECKING:
    from packaging.version import Version


@cache
def _source_lines(module: str) -> tuple[str, tuple[str, ...]] | None:
    path = module_file(module)  # never imported: a check that runs no Trainer code need not load transformers
    if path is None or path.suffix != ".py":
        return None
    return str(path), tuple(path.read_text(encoding="utf-8").splitlines())


def _display_path(path: str, module: str) -> str:
    # transformers/trainer.py rather than an absolute site-packages path
    parts = Path(path).parts
    if "transformers" in parts:
        return "/".join(parts[parts.index("transformers"):])
    return path


def resolve(site: Site, forecast: Version | None = None) -> Location | None:
    """The site in the installed transformers, or in the ``forecast`` release (``--transformers-version``)."""
    if forecast is not None:
        from trainer_compat.forecast import forecast_site

        return forecast_site(site.pattern, site.modules, forecast)
    return resolve_installed(site)


@cache
def resolve_installed(site: Site) -> Location | None:
    """First line matching the site's pattern, in the first of its modules that has one."""
    regex = re.compile(site.pattern)
    for module in site.modules:
        source = _source_lines(module)
        if source is None:
            continue
        path, lines = source
        for number, line in enumerate(lines, start=1):
            if reads_at(regex, line):
                return Location(_display_path(path, module), number)
    return None


def reads_at(regex: re.Pattern[str], line: str) -> bool:
    """The site's pattern matches code on this line: not a comment, and not the target of an assignment the
    pattern does not itself spell (``self.model.generation_config = gen_config`` is a write, not the read)."""
    match = regex.search(line)
    if match is None or line.lstrip().startswith("#") or "#" in line[: match.start()]:
        return False
    return not re.match(r"\s*=(?!=)", line[match.end():])


def library_site(module: str, pattern: str) -> Location | None:
    """``file:line`` of ``pattern`` in a module of an installed library (peft, trl): ``peft/peft_model.py:2083``."""
    source = _source_lines(module)
    if source is None:
        return None
    regex = re.compile(pattern)
    for number, line in enumerate(source[1], start=1):
        if reads_at(regex, line):
            return Location("/".join(module.split(".")) + ".py", number)
    return None
