"""``trainer-compat fix TARGET... [--diff | --write]``: the subcommand over ``shims.fix`` (proposals and edits)
and ``shims.commit`` (the bounded check of the fixed files, then every file written or none)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer_compat.cli.common import error_line as _error
from trainer_compat.cli.common import parse_init_kwargs as _init_kwargs
from trainer_compat.errors import TargetError, UsageError
from trainer_compat.guard import quiet_libraries as _quiet
from trainer_compat.shims.fix import (
    EXIT_CHANGES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    VERIFY_TIMEOUT,
    FileEdit,
    Proposal,
    edit_files,
    notes_of,
    propose,
    source_reader,
)

if TYPE_CHECKING:
    from trainer_compat.shims.commit import SourceFile


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return value


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
    fix.add_argument("--verify-timeout", type=_seconds, default=VERIFY_TIMEOUT, metavar="SECONDS",
                     help=f"how long --write waits for the check of the fixed files (default {VERIFY_TIMEOUT:g})")
    fix.add_argument("--debug", action="store_true", help="show tracebacks")
    fix.set_defaults(handler=run_fix)
    return fix


def run_fix(options: argparse.Namespace) -> int:
    from trainer_compat.shims.commit import Interrupted, interruptible

    _quiet()
    written: list[bool] = []
    try:
        with interruptible():
            fields = _fields(options.training_args)
            init_kwargs = _init_kwargs(options.init_kwargs)
            sources: dict[Path, SourceFile] = {}
            proposals = [propose(spec, delegate_to=options.delegate_to, fields=fields, trainer=options.trainer,
                                 init_kwargs=init_kwargs, all_members=getattr(options, "all_members", False),
                                 read=source_reader(sources))
                         for spec in options.targets]
            edits = edit_files(proposals)
            if not options.write:
                return _show(edits)
            return _write(edits, fields, options.trainer, getattr(options, "verify_timeout", VERIFY_TIMEOUT),
                          written)
    except (UsageError, TargetError) as exc:
        if options.debug:
            raise
        _error(str(exc))
        return EXIT_USAGE
    except (KeyboardInterrupt, Interrupted) as exc:  # Ctrl-C, SIGTERM, SIGHUP: quiet, the candidates are gone
        _error("interrupted; " + ("the fixed files were written" if written else "no file was changed"))
        return 128 + exc.signum if isinstance(exc, Interrupted) else EXIT_INTERRUPTED


def _fields(spec: str | None) -> Any:
    from trainer_compat.features import load_args_spec

    return load_args_spec(spec) if spec else None


def _show(edits: list[FileEdit]) -> int:
    worst = EXIT_OK
    for edit in edits:
        for proposal in edit.proposals:
            for line in notes_of(proposal):
                print(line, file=sys.stderr)
            if not proposal.block:
                print(f"{proposal.spec}: nothing to change", file=sys.stderr)
        if edit.changed:
            _emit(edit.diff())
            worst = EXIT_CHANGES
    return worst


def _emit(data: bytes) -> None:
    """The diff as the file's own bytes (its encoding, its line ends), so it applies to the file."""
    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        sys.stdout.write(data.decode("utf-8", "replace"))
        return
    buffer.write(data)
    buffer.flush()


def _write(edits: list[FileEdit], fields: Any, trainer: str, timeout: float, written: list[bool]) -> int:
    from trainer_compat.shims.commit import verify, write_all

    for edit in edits:
        for proposal in edit.proposals:
            for line in notes_of(proposal):
                print(line)
            if not proposal.block:
                print(f"{proposal.spec}: nothing to change")
    changed = [edit for edit in edits if edit.changed]
    if not changed:
        return EXIT_OK
    after = verify({edit.source.real: edit.new for edit in changed},
                   [p.spec for edit in changed for p in edit.proposals], fields, trainer, timeout)
    write_all([(edit.source, edit.new) for edit in changed], written)
    for edit in changed:
        for proposal in edit.proposals:
            if proposal.block:
                _report(proposal, after.get(proposal.spec, []))
    return EXIT_OK


def _report(proposal: Proposal, after: list[list[Any]]) -> None:
    """What the write fixed and what is left; each message's first line whole (never cut inside a word)."""
    left = {(rule, member) for rule, _, member, _ in after}
    print(f"{proposal.source.path}: wrote the shims into {proposal.qualname}")
    for f in proposal.before.findings:
        if (f.rule, f.member) not in left:
            print(f"  fixed {f.rule} {f.member or ''}: {(f.message.splitlines() or ['-'])[0]}")
    for rule, severity, member, message in after:
        print(f"  left  {rule} {severity} {member or ''}: {message}")
    errors = [a for a in after if a[1] == "error"]
    print(f"  {proposal.qualname} is {'still NOT ' if errors else 'now '}compatible")
