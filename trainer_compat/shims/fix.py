"""``trainer-compat fix TARGET... [--diff | --write]``: write the shims into the wrapper classes' source.

``--diff`` (the default) prints a unified diff and exits 1 when a file would change (a CI gate); its ``a/`` ``b/``
paths are relative to the file's git work tree (else to the current directory), so ``git apply`` takes it; several
classes of one file make one diff of that file. Only the members the given arguments need are written (what their
features read, and what a finding names); ``--all`` writes every shim the wrapper could take. ``--write`` re-parses
the result, imports and re-checks every target in one subprocess (bounded by ``--verify-timeout``), then writes
every file or none, byte-faithfully (shims/commit.py); a second run changes nothing. Files of installed libraries
(site-packages, the standard library) are refused.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer_compat.errors import TargetError

if TYPE_CHECKING:  # shims/commit.py is imported when fix runs: the CLI's start stays light
    from trainer_compat.shims.commit import SourceFile

EXIT_OK, EXIT_CHANGES, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
VERIFY_TIMEOUT = 120.0  # seconds the check of the fixed files may take (--verify-timeout)


@dataclass
class Proposal:
    """What one target class gets: its block (empty: nothing), the methods it replaces, the imports it needs."""
    spec: str
    qualname: str
    source: SourceFile
    block: str
    remove: set[str]
    needs: tuple[str, ...]
    notes: Any
    before: Any


@dataclass
class FileEdit:
    """One file's change: the blocks of every target class it defines, applied in one edit."""
    source: SourceFile
    proposals: list[Proposal] = field(default_factory=list)
    new: bytes = b""

    @property
    def changed(self) -> bool:
        return self.new != self.source.raw

    def diff(self) -> bytes:
        name = display_path(self.source.real).encode("utf-8", "surrogateescape")
        lines = difflib.diff_bytes(difflib.unified_diff, self.source.raw.splitlines(True), self.new.splitlines(True),
                                   b"a/" + name, b"b/" + name)
        # a last line without its newline: git's marker, so the diff stays applyable
        return b"".join(line if line.endswith((b"\n", b"\r")) else line + b"\n\\ No newline at end of file\n"
                        for line in lines)


def display_path(path: Path) -> str:
    """``path`` as a diff names it: relative to its git work tree, else to the current directory, else as given
    without its root (POSIX separators)."""
    path = path.resolve()
    for folder in path.parents:
        if (folder / ".git").exists():
            return path.relative_to(folder).as_posix()
    try:
        return path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix().lstrip("/")


def needed_members(report: Any) -> set[str]:
    """What the enabled features read of the model (the report's member rows) and what its findings name."""
    return {row.name for row in report.members if row.needed_by} | {f.member for f in report.findings if f.member}


def _source_of(spec: str, cls: type, read: Callable[[Path], SourceFile]) -> SourceFile:
    """The class's file, read as bytes; TargetError for a class without one or in an installed library."""
    from trainer_compat.shims.commit import installed_library

    try:
        path = Path(inspect.getsourcefile(cls) or "")
    except TypeError:
        path = Path("")
    if not path.name or not path.is_file():
        raise TargetError(spec, f"{cls.__qualname__} has no Python source file to edit")
    if installed_library(path):
        raise TargetError(spec, f"{cls.__qualname__} is defined in an installed library ({path}); fix edits only "
                                "your project's files: subclass it in your code and fix that class")
    try:
        return read(path)
    except OSError as exc:
        raise TargetError(spec, f"cannot read {path}: {exc.strerror or exc}") from exc


def source_reader(sources: dict[Path, SourceFile]) -> Callable[[Path], SourceFile]:
    """Each file read once, whatever the number of its target classes."""
    from trainer_compat.shims.commit import read_source

    def read(path: Path) -> SourceFile:
        real = path.resolve()
        if real not in sources:
            sources[real] = read_source(path)
        return sources[real]

    return read


def propose(spec: str, *, delegate_to: str | None, fields: Any, trainer: str, init_kwargs: dict[str, Any] | None,
            all_members: bool = False, read: Callable[[Path], SourceFile] | None = None) -> Proposal:
    from trainer_compat.checker import build_subject, check_subject
    from trainer_compat.features import build_setup
    from trainer_compat.shims.plan import make_plan, restrict
    from trainer_compat.shims.source import render
    from trainer_compat.targets import load_target

    cls = load_target(spec)
    if not isinstance(cls, type):
        raise TargetError(spec, "fix edits a class: name the wrapper class, not a factory or an instance")
    source = _source_of(spec, cls, read or source_reader({}))
    subject = build_subject(cls, target=spec, init_kwargs=init_kwargs)
    if subject.instance is None:
        raise TargetError(spec, f"{cls.__qualname__} could not be built ({subject.not_built}); pass --init-kwargs")
    before = check_subject(subject, build_setup(fields, trainer))
    plan, notes = make_plan(subject.instance, cls, delegate_to)
    if not all_members:
        plan = restrict(plan, needed_members(before))
        notes.replaced = {m: why for m, why in notes.replaced.items() if m in plan.members}
    activation_ok = all(hasattr(type(_resolve(subject.instance, p)), "activation_checkpointing_enable")
                        for p in plan.carriers)
    block = render(plan, activation_ok=activation_ok,
                   forward_in_body=_defines(spec, source, cls.__qualname__, "forward"))
    remove = {m for m in notes.replaced if _defines(spec, source, cls.__qualname__, m)} if block else set()
    needs = ("inspect",) if block and plan.forward_params else ()
    return Proposal(spec, cls.__qualname__, source, block, remove, needs, notes, before)


def _defines(spec: str, source: SourceFile, qualname: str, name: str) -> bool:
    from trainer_compat.shims.edit import NotFaithful, defines

    try:
        return defines(source.raw, qualname, name)
    except NotFaithful as exc:
        raise TargetError(spec, f"{source.path}: {exc}; not edited") from exc
    except Exception as exc:  # LibCST cannot parse what Python imported (a newer syntax): one line, no traceback
        raise TargetError(spec, f"{source.path}: cannot be parsed for editing: {type(exc).__name__}") from exc


def edit_files(proposals: list[Proposal]) -> list[FileEdit]:
    """One FileEdit per file, in the order the targets came: the blocks of all its classes added in one edit."""
    from trainer_compat.shims.edit import ClassNotFound, add_blocks

    edits: dict[Path, FileEdit] = {}
    for proposal in proposals:
        edits.setdefault(proposal.source.real, FileEdit(proposal.source)).proposals.append(proposal)
    for edit in edits.values():
        blocks = {p.qualname: (p.block, p.remove) for p in edit.proposals if p.block}
        needs = tuple(sorted({name for p in edit.proposals for name in p.needs}))
        try:
            edit.new = add_blocks(edit.source.raw, blocks, needs) if blocks else edit.source.raw
        except ClassNotFound as exc:
            raise TargetError(edit.proposals[0].spec, str(exc)) from exc
    return list(edits.values())


def _resolve(model: Any, path: str) -> Any:
    from trainer_compat.shims.discover import resolve

    return resolve(model, path)


def notes_of(proposal: Proposal) -> list[str]:
    notes = proposal.notes
    lines = [f"{proposal.spec}: replaced {m}: {why}" for m, why in notes.replaced.items()]
    if notes.ambiguous:
        lines.append(f"{proposal.spec}: ambiguous language model ({', '.join(notes.ambiguous)}): pass --delegate-to")
    lines += [f"{proposal.spec}: cannot delegate {m}: {why}" for m, why in notes.undelegable.items()]
    return lines


