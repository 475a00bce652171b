"""``trainer-compat``: exit 0 when every target is compatible, 1 when one is not, 2 for bad input."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from trainer_compat import __version__
from trainer_compat.errors import TargetError, UsageError
from trainer_compat.shims.fix import add_fix_parser, run_fix

EXIT_OK, EXIT_INCOMPATIBLE, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainer-compat",
                                     description="Check torch modules against the Hugging Face Trainer protocol.")
    parser.add_argument("--version", action="version", version=f"trainer-compat {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check targets against the installed transformers' Trainer")
    check.add_argument("targets", nargs="+", metavar="TARGET", help="package.module:Name or path/file.py:Name")
    check.add_argument("--args", dest="training_args", metavar="JSON|FILE",
                       help="TrainingArguments fields: a JSON object or a .json/.yaml file")
    check.add_argument("--trainer", choices=("trainer", "seq2seq"), default="trainer")
    check.add_argument("--init-kwargs", metavar="JSON", help="keyword arguments for a class or factory target")
    check.add_argument("--probe", action="store_true",
                       help="also dry-run the real Trainer on a tiny batch (the model is restored bitwise)")
    check.add_argument("--sample", metavar="FILE", help="one example for the probe: a .pt or .json mapping")
    check.add_argument("--format", choices=("full", "text", "json"), default="full")
    check.add_argument("--color", action="store_true", help="colour the full report")
    check.add_argument("--debug", action="store_true", help="show tracebacks")
    add_fix_parser(sub)
    rules = sub.add_parser("rules", help="list the rules")
    rules.add_argument("--format", choices=("text", "json"), default="text")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    if options.command == "rules":
        return _list_rules(options.format)
    if options.command == "fix":
        return run_fix(options)
    try:
        return _check(options)
    except UsageError as exc:
        _error(str(exc))
        if options.debug:
            raise
        return EXIT_USAGE
    except Exception as exc:
        if options.debug:
            raise
        _error(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
        return EXIT_USAGE


def _error(message: str) -> None:
    print(f"trainer-compat: error: {message}", file=sys.stderr)


def _quiet() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)


def _check(options: argparse.Namespace) -> int:
    _quiet()
    from trainer_compat.checker import build_subject, check_subject
    from trainer_compat.features import build_setup, load_args_spec
    from trainer_compat.render import RENDERERS
    from trainer_compat.targets import load_target

    fields = load_args_spec(options.training_args) if options.training_args else None
    if options.sample and not options.probe:
        raise UsageError("--sample is for the probe: add --probe")
    if options.sample:
        from trainer_compat.probe.batch import load_sample

        load_sample(options.sample)  # bad samples are usage errors, before any target is imported
    init_kwargs = _init_kwargs(options.init_kwargs)
    setup = build_setup(fields, options.trainer)
    reports = []
    for spec in options.targets:
        obj = load_target(spec)
        subject = build_subject(obj, target=spec, init_kwargs=init_kwargs)
        reports.append(check_subject(subject, setup, probe=options.probe, sample=options.sample))
    if options.format == "full":
        from trainer_compat.render.terminal import render_terminal

        output = render_terminal(reports, color=options.color)
    else:
        output = RENDERERS[options.format](reports)
    print(output)
    return EXIT_OK if all(r.compatible for r in reports) else EXIT_INCOMPATIBLE


def _init_kwargs(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--init-kwargs: invalid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise UsageError("--init-kwargs: expected a JSON object")
    return value


def _list_rules(fmt: str) -> int:
    from trainer_compat.rules import ALL_RULES

    if fmt == "json":
        print(json.dumps([{"code": r.code, "name": r.name, "severity": r.severity.value, "summary": r.summary,
                           "explanation": r.explanation} for r in ALL_RULES], indent=2))
    else:
        for r in ALL_RULES:
            print(f"{r.code}  {r.name:30} {r.severity.value:8} {r.summary}")
    return EXIT_OK


__all__ = ["main", "TargetError"]
