"""What every view needs: where a finding points (in the user's project), names as the user wrote them, counts."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path, PurePath

from trainer_compat.findings import Finding, Location, Severity
from trainer_compat.report import Report

_LIBRARY_DIRS = frozenset({"site-packages", "dist-packages"})
_INSTALLED = re.compile(r"[^\s'\"()]*?[/\\](?:site|dist)-packages[/\\]")  # up to the library's own path
_MINTED = re.compile(r"_trainer_compat_target_\d+")  # module names trainer_compat.targets gives path targets


def where(finding: Finding | None, report: Report) -> Location:
    """The finding's place, else the target's class, else the target's own definition, else its file (line 1);
    a place inside an installed library (a factory's transformers class) gives way to the user's frame."""
    for loc in (finding.location if finding else None, report.location):
        if loc and in_users_code(loc.file):
            return loc
    return target_location(report.target)


def in_users_code(file: str) -> bool:
    """False for files of installed libraries (site-packages, the standard library), which a PR cannot annotate."""
    parts = set(PurePath(file).parts)
    if parts & _LIBRARY_DIRS:
        return False
    path = Path(file)
    if not path.is_absolute():
        return True
    stdlib = Path(sys.base_prefix) / "lib"
    return not path.is_relative_to(stdlib)


def target_location(target: str) -> Location:
    """Where the target ``file.py:Name`` or ``package.module:Name`` defines ``Name`` (its file, line 1, when the
    definition cannot be found)."""
    module_part, _, name = target.rpartition(":")
    if not module_part:
        return Location(target, 1)
    file = module_part if module_part.endswith(".py") else _module_file(module_part)
    if file is None:
        return Location(module_part, 1)
    return Location(file, _definition_line(file, name.split(".")[0]))


def _module_file(dotted: str) -> str | None:
    module = sys.modules.get(dotted)
    file = getattr(module, "__file__", None)
    if file is None:
        try:
            spec = importlib.util.find_spec(dotted)
        except (ImportError, ValueError):
            return None
        file = spec.origin if spec and spec.has_location else None
    return relative_uri(file) if file else None


def _definition_line(file: str, name: str) -> int:
    try:
        tree = ast.parse(Path(file).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return 1
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return node.lineno
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return node.lineno
    return 1


def relative_uri(file: str) -> str:
    """A project-relative POSIX path when the file lies under the working directory (else absolute, as given)."""
    path = Path(file)
    if path.is_absolute():
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            return PurePath(file).as_posix()
    return path.as_posix().replace(os.sep, "/")


def place(loc: Location) -> str:
    return f"{relative_uri(loc.file)}:{loc.line or 1}"


def clean(text: str) -> str:
    """No internal module names (one minted for a path target reads as the target's file), and a file of an
    installed library as the library's own path (``transformers/trainer.py:517``), as call sites are shown."""
    def file_of(match: re.Match[str]) -> str:
        module = sys.modules.get(match.group(0))
        file = getattr(module, "__file__", None)
        return relative_uri(file) if file else "<target file>"

    if "_trainer_compat_target_" in text:
        text = _MINTED.sub(file_of, text)
    return _INSTALLED.sub("", text) if "-packages" in text else text


def short_target(report: Report, loc: Location | None = None) -> str:
    """The target as the line needs it: ``Name`` when the line already shows the target's file."""
    module_part, _, name = report.target.rpartition(":")
    if loc is not None and module_part.endswith(".py") and relative_uri(module_part) == relative_uri(loc.file):
        return name
    return report.target


def counts(reports: Sequence[Report]) -> dict[str, int]:
    findings = [f for r in reports for f in r.findings]
    return {
        "targets": len(reports),
        "incompatible": sum(not r.compatible for r in reports),
        "errors": sum(f.severity is Severity.ERROR for f in findings),
        "warnings": sum(f.severity is Severity.WARNING for f in findings),
        "infos": sum(f.severity is Severity.INFO for f in findings),
        "skipped": sum(len(r.skipped) for r in reports),
    }


def summary(reports: Sequence[Report]) -> str:
    """The closing line of every human format."""
    n = counts(reports)
    skipped = f"; {plural(n['skipped'], 'check')} skipped" if n["skipped"] else ""
    if not n["errors"] and not n["warnings"] and not n["infos"]:
        if n["skipped"]:  # not a silent pass: say what was not checked
            return (f"No problems found in {plural(n['targets'], 'target')}, but {plural(n['skipped'], 'check')} "
                    f"{'was' if n['skipped'] == 1 else 'were'} skipped.")
        return f"All checks passed ({plural(n['targets'], 'target')})."
    infos = f", {plural(n['infos'], 'note')}" if n["infos"] else ""
    return (f"Found {plural(n['errors'], 'error')}, {plural(n['warnings'], 'warning')}{infos} in "
            f"{plural(n['targets'], 'target')} ({n['incompatible']} not compatible{skipped}).")


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"
