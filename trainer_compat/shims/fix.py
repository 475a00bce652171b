"""``trainer-compat fix TARGET [--diff | --write]``: write the shims into the wrapper class's source.

``--diff`` (the default) prints a unified diff and exits 1 when the file would change (a CI gate); its ``a/`` ``b/``
paths are relative to the file's git work tree (else to the current directory), so ``git apply`` takes it. Only the
members the given arguments need are written (what their features read, and what a finding names); ``--all`` writes
every shim the wrapper could take. ``--write``
re-parses the result, imports and re-checks it in a subprocess, refuses if the file changed since it was read, and
replaces it atomically; a second run changes nothing.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import inspect
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer_compat.errors import TargetError, UsageError

EXIT_OK, EXIT_CHANGES, EXIT_USAGE = 0, 1, 2


def add_fix_parser(subparsers: Any) -> argparse.ArgumentParser:
    fix = subparsers.add_parser("fix", help="add the missing shims to a wrapper class's source (LibCST)")
    fix.add_argument("targets", nargs="+", metavar="TARGET", help="path/file.py:Class or package.module:Class")
    mode = fix.add_mutually_exclusive_group()
    mode.add_argument("--diff", action="store_true", help="print the change; exit 1 if there is one (default)")
    mode.add_argument("--write", action="store_true", help="check the result in a subprocess, then write it")
    fix.add_argument("--all", action="store_true", dest="all_members",
                     help="write every shim the wrapper can take, not only those the arguments need")
    fix.add_argument("--delegate-to", metavar="PATH", help="submodule path of the language model (e.g. model.lm)")
    fix.add_argument("--args", dest="training_args", metavar="JSON|FILE", help="TrainingArguments for the re-check")
    fix.add_argument("--trainer", choices=("trainer", "seq2seq"), default="trainer")
    fix.add_argument("--init-kwargs", metavar="JSON", help="keyword arguments to build the class")
    fix.add_argument("--debug", action="store_true", help="show tracebacks")
    fix.set_defaults(handler=run_fix)
    return fix


@dataclass
class Proposal:
    spec: str
    path: Path
    qualname: str
    text: str
    new_text: str
    notes: Any
    before: Any

    @property
    def changed(self) -> bool:
        return self.new_text != self.text

    def diff(self) -> str:
        name = display_path(self.path)
        lines = difflib.unified_diff(self.text.splitlines(True), self.new_text.splitlines(True), f"a/{name}",
                                     f"b/{name}")
        # a last line without its newline: git's marker, so the diff stays applyable
        return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


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


def run_fix(options: argparse.Namespace) -> int:
    from trainer_compat.cli import _error, _init_kwargs, _quiet

    _quiet()
    try:
        fields = _fields(options.training_args)
        init_kwargs = _init_kwargs(options.init_kwargs)
        worst = EXIT_OK
        for spec in options.targets:
            proposal = propose(spec, options.delegate_to, fields, options.trainer, init_kwargs,
                               all_members=getattr(options, "all_members", False))
            rc = _write(proposal, fields, options.trainer) if options.write else _show(proposal)
            worst = max(worst, rc)
        return worst
    except (UsageError, TargetError, FixRefused) as exc:
        if options.debug:
            raise
        _error(str(exc))
        return EXIT_USAGE


def _fields(spec: str | None) -> Any:
    from trainer_compat.features import load_args_spec

    return load_args_spec(spec) if spec else None


class FixRefused(UsageError):
    pass


def needed_members(report: Any) -> set[str]:
    """What the enabled features read of the model (the report's member rows) and what its findings name."""
    return {row.name for row in report.members if row.needed_by} | {f.member for f in report.findings if f.member}


def propose(spec: str, delegate_to: str | None, fields: Any, trainer: str, init_kwargs: dict[str, Any],
            all_members: bool = False) -> Proposal:
    from trainer_compat.checker import build_subject, check_subject
    from trainer_compat.features import build_setup
    from trainer_compat.shims.edit import ClassNotFound, add_block, defines
    from trainer_compat.shims.plan import make_plan, restrict
    from trainer_compat.shims.source import render
    from trainer_compat.targets import load_target

    cls = load_target(spec)
    if not isinstance(cls, type):
        raise TargetError(spec, "fix edits a class: name the wrapper class, not a factory or an instance")
    path = Path(inspect.getsourcefile(cls) or "")
    text = path.read_text(encoding="utf-8")
    subject = build_subject(cls, target=spec, init_kwargs=init_kwargs)
    if subject.instance is None:
        raise TargetError(spec, f"{cls.__qualname__} could not be built ({subject.not_built}); pass --init-kwargs")
    before = check_subject(subject, build_setup(fields, trainer))
    plan, notes = make_plan(subject.instance, cls, delegate_to)
    if not all_members:
        plan = restrict(plan, needed_members(before))
        notes.replaced = {m: why for m, why in notes.replaced.items() if m in plan.members}
    in_body = defines(text, cls.__qualname__, "forward")
    activation_ok = all(hasattr(type(_resolve(subject.instance, p)), "activation_checkpointing_enable")
                        for p in plan.carriers)
    block = render(plan, activation_ok=activation_ok, forward_in_body=in_body)
    if not block:
        return Proposal(spec, path, cls.__qualname__, text, text, notes, before)
    remove = {m for m in notes.replaced if defines(text, cls.__qualname__, m)}
    try:
        new_text = add_block(text, cls.__qualname__, block, remove, ("inspect",) if plan.forward_params else ())
    except ClassNotFound as exc:
        raise TargetError(spec, str(exc)) from exc
    return Proposal(spec, path, cls.__qualname__, text, new_text, notes, before)


def _resolve(model: Any, path: str) -> Any:
    from trainer_compat.shims.discover import resolve

    return resolve(model, path)


def _notes(proposal: Proposal) -> list[str]:
    notes = proposal.notes
    lines = [f"{proposal.spec}: replaced {m}: {why}" for m, why in notes.replaced.items()]
    if notes.ambiguous:
        lines.append(f"{proposal.spec}: ambiguous language model ({', '.join(notes.ambiguous)}): pass --delegate-to")
    lines += [f"{proposal.spec}: cannot delegate {m}: {why}" for m, why in notes.undelegable.items()]
    return lines


def _show(proposal: Proposal) -> int:
    for line in _notes(proposal):
        print(line, file=sys.stderr)
    if not proposal.changed:
        print(f"{proposal.spec}: nothing to change", file=sys.stderr)
        return EXIT_OK
    sys.stdout.write(proposal.diff())
    return EXIT_CHANGES


_VERIFY = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import trainer_compat
from trainer_compat.targets import load_target
obj = load_target(sys.argv[1])
report = trainer_compat.check(obj, args=json.loads(sys.argv[2]), trainer=sys.argv[3])
print(json.dumps([[f.rule, f.severity.value, f.member, f.message.splitlines()[0]] for f in report.findings]))
"""


def verify(candidate: Path, qualname: str, fields: Any, trainer: str) -> list[list[Any]]:
    """Import and check the candidate file in a fresh interpreter: its findings, or FixRefused."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", TRANSFORMERS_VERBOSITY="error")
    done = subprocess.run([sys.executable, "-c", _VERIFY, f"{candidate}:{qualname}", json.dumps(fields),
                           trainer], capture_output=True, text=True, env=env, cwd=os.getcwd(), timeout=600)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise FixRefused(f"{candidate.name}: the fixed file does not import and check cleanly: {tail}; "
                         "the original is unchanged (rerun with --diff to see the change)")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _write(proposal: Proposal, fields: Any, trainer: str) -> int:
    import libcst as cst

    for line in _notes(proposal):
        print(line)
    if not proposal.changed:
        print(f"{proposal.spec}: nothing to change")
        return EXIT_OK
    cst.parse_module(proposal.new_text)  # re-parse: raises on a broken result before anything is written
    path = proposal.path
    candidate = path.with_name(f".{path.stem}.trainer-compat-{os.getpid()}.py")
    try:
        candidate.write_text(proposal.new_text, encoding="utf-8")
        os.chmod(candidate, path.stat().st_mode & 0o7777)
        after = verify(candidate, proposal.qualname, fields, trainer)
        if _digest(path.read_text(encoding="utf-8")) != _digest(proposal.text):
            raise FixRefused(f"{path}: changed since it was read; nothing written (run fix again)")
        os.replace(candidate, path)
    finally:
        candidate.unlink(missing_ok=True)
    _report(proposal, after)
    return EXIT_OK


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _report(proposal: Proposal, after: list[list[Any]]) -> None:
    left = {(rule, member) for rule, _, member, _ in after}
    print(f"{proposal.path}: wrote the shims into {proposal.qualname}")
    for f in proposal.before.findings:
        if (f.rule, f.member) not in left:
            print(f"  fixed {f.rule} {f.member or ''}: {f.message.splitlines()[0][:140]}")
    for rule, severity, member, message in after:
        print(f"  left  {rule} {severity} {member or ''}: {message[:140]}")
    errors = [a for a in after if a[1] == "error"]
    print(f"  {proposal.qualname} is {'still NOT ' if errors else 'now '}compatible")
