"""``trainer-compat``: exit 0 when every target passes, 1 when one fails the gate, 2 for bad input.

Each subcommand is a pair in COMMANDS: a function that adds its parser and one that runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from trainer_compat import __version__
from trainer_compat.cli.common import error_line as _error
from trainer_compat.cli.common import parse_init_kwargs as _init_kwargs
from trainer_compat.cli.fix import add_fix_parser, run_fix
from trainer_compat.errors import TargetError, UsageError
from trainer_compat.formats import FORMATS, OutputFormat
from trainer_compat.guard import quiet_libraries as _quiet

EXIT_OK, EXIT_INCOMPATIBLE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input in one line (exit 2), like every other usage error."""

    def error(self, message: str) -> NoReturn:
        _error(f"{message} (see `{self.prog} --help`)")
        raise SystemExit(EXIT_USAGE)


# -- check ------------------------------------------------------------------------------------------------

def _add_check(sub: Any) -> None:
    check = sub.add_parser("check", help="check targets against the installed transformers' Trainer")
    check.add_argument("targets", nargs="*", metavar="TARGET",
                       help="package.module:Name or path/file.py:Name (default: [tool.trainer-compat] targets)")
    check.add_argument("--config", metavar="PYPROJECT", help="read [tool.trainer-compat] from this file")
    check.add_argument("--args", dest="training_args", metavar="JSON|FILE",
                       help="TrainingArguments fields: a JSON object or a .json/.yaml file")
    check.add_argument("--trainer", metavar="KIND|MODULE:CLASS",
                       help="trainer (default), seq2seq, sft (TRL's SFTTrainer), or your Trainer subclass as "
                            "module:Name or path/file.py:Name (its compute_loss and prediction_step are judged)")
    check.add_argument("--data", metavar="MODULE:NAME",
                       help="your training examples: a Dataset, a list of examples or a zero-argument function "
                            "returning one; checked as preflight does (columns, collator, batch), and the probe "
                            "runs on them")
    check.add_argument("--collator", metavar="MODULE:NAME", help="the data collator your run uses (with --data)")
    check.add_argument("--world-size", type=int, metavar="N",
                       help="the run is launched on N processes in all (a hazard that fails every multi-process "
                            "run is then an error)")
    check.add_argument("--nnodes", type=int, metavar="N", help="the run is launched on N machines")
    check.add_argument("--launcher", choices=("torchrun", "accelerate", "deepspeed"),
                       help="what launches the run")
    check.add_argument("--transformers-version", metavar="X.Y.Z",
                       help="the verdict for this transformers release instead of the installed one (a forecast)")
    check.add_argument("--peft", metavar="JSON|FILE", help="the adapter config (LoraConfig fields) the model will get")
    check.add_argument("--init-kwargs", metavar="JSON", help="keyword arguments for a class or factory target")
    check.add_argument("--probe", action="store_true", default=None,
                       help="also dry-run the real Trainer on a tiny batch (the model is restored bitwise)")
    check.add_argument("--sample", metavar="FILE", help="one example for the probe: a .pt or .json mapping")
    check.add_argument("--format", choices=(*FORMATS, "text"), help="output format (default: full)")
    check.add_argument("--output", "-o", metavar="FILE", help="write the output to FILE instead of stdout")
    check.add_argument("--select", metavar="CODES", help="only these codes or prefixes, comma-separated")
    check.add_argument("--ignore", metavar="CODES", help="leave out these codes or prefixes, comma-separated")
    check.add_argument("--fail-on", choices=("error", "warning"), help="lowest severity that fails (default error)")
    check.add_argument("--exit-zero", action="store_true", help="exit 0 even when a target fails")
    check.add_argument("--color", action="store_true",
                       help="colour the full report even off a terminal (default: on a terminal, unless NO_COLOR)")
    check.add_argument("-v", "--verbose", action="store_true", help="full: every protocol member, not only the needed")
    check.add_argument("-q", "--quiet", action="store_true", help="concise/full: findings and the summary only")
    check.add_argument("--debug", action="store_true", help="show tracebacks")
    _add_isolation_options(check)  # --isolate/--no-isolate, --static, --timeout, --memory-limit


def _add_isolation_options(check: Any) -> None:
    """``--isolate/--no-isolate``, ``--static``, ``--timeout``, ``--memory-limit`` on the check parser."""
    from trainer_compat.formats import CI_FORMATS
    from trainer_compat.isolate import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S

    check.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                       help="check each target in a child process with a timeout and a memory cap "
                            f"(default: on for {', '.join(sorted(CI_FORMATS))}, and for --probe)")
    check.add_argument("--static", action="store_true",
                       help="check classes from their source alone: import and run none of the target's code")
    check.add_argument("--timeout", type=float, metavar="SECONDS", default=DEFAULT_TIMEOUT_S,
                       help=f"per target, in every mode: import, build and check (default {DEFAULT_TIMEOUT_S:g})")
    check.add_argument("--memory-limit", type=int, metavar="MB", default=DEFAULT_MEMORY_MB,
                       help=f"address-space cap of the isolated check (default {DEFAULT_MEMORY_MB}; 0: none)")


def _codes(text: str | None) -> list[str] | None:
    return None if text is None else [c for c in text.replace(" ", "").split(",") if c]


def _cli_overrides(options: argparse.Namespace) -> dict[str, Any]:
    if options.sample and not options.probe:
        raise UsageError("--sample is for the probe: add --probe")
    if options.collator and not options.data:
        raise UsageError("--collator collates --data: add --data")
    return {"args": _args(options.training_args), "trainer": options.trainer, "data": options.data,
            "collator": options.collator, "world-size": options.world_size, "nnodes": options.nnodes,
            "launcher": options.launcher,
            "init-kwargs": _init_kwargs(options.init_kwargs), "probe": options.probe, "sample": options.sample,
            "select": _codes(options.select), "ignore": _codes(options.ignore), "fail-on": options.fail_on,
            "peft": options.peft, "transformers-version": options.transformers_version}


def _run_check(options: argparse.Namespace) -> int:
    _quiet()
    from trainer_compat.config import load_config

    config = load_config(options.config)
    return _check_targets(options, config)


def _check_targets(options: argparse.Namespace, config: Any) -> int:
    from trainer_compat.catalog import Selection
    from trainer_compat.config import settings_for
    from trainer_compat.verdict import exit_code

    Selection.of(_codes(options.select), _codes(options.ignore), where="--")  # bad codes before any import
    overrides = _cli_overrides(options)
    if options.output:  # against the cwd at start, whatever a target does to it
        options.output = os.path.abspath(options.output)
    targets = options.targets or config.targets
    if not targets:
        raise UsageError("no targets: name them (module:Name or path/file.py:Name), "
                         "or list them as `targets` under [tool.trainer-compat] in pyproject.toml")
    settings = [settings_for(t, config, overrides, from_config=not options.targets) for t in targets]
    if any(s.sample for s in settings):
        from trainer_compat.probe.batch import load_sample

        for s in {s.sample for s in settings if s.sample}:
            load_sample(s)  # bad samples are usage errors, before any target is imported
    from trainer_compat.isolate import run_checks
    from trainer_compat.render.progress import TargetProgress

    progress = TargetProgress([s.target for s in settings], stream=sys.stderr)  # stderr on a terminal only
    with _stdout_to_stderr():  # what targets print (or the libraries they import) never mixes into the report
        reports = run_checks(settings, options, options.format or config.get("format") or "full", progress)
    peft = bool(options.peft or config.peft())
    reports = [r.with_not_run(probe=bool(s.probe), peft=peft, data=bool(s.data),
                              sft=s.trainer == "sft" or ":" in s.trainer,  # a Trainer subclass may be TRL's
                              trl_rl=s.trainer in ("dpo", "reward", "grpo") or ":" in s.trainer)
               for r, s in zip(reports, settings, strict=True)]
    if config.path is not None:  # run from a subfolder of the project: locations as the project shows them
        reports = [r.under(config.root) for r in reports]
    _emit(_render(reports, options, config), options.output)
    code = exit_code(reports, [s.fail_on for s in settings])
    return EXIT_OK if options.exit_zero else code


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Point stdout, Python's and file descriptor 1 (for native code and isolated children), at stderr."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no real descriptor 1 (an embedding host): Python's stdout alone
        saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def _render(reports: list[Any], options: argparse.Namespace, config: Any) -> str:
    from trainer_compat.render import RENDERERS, render_concise, render_junit, render_terminal
    from trainer_compat.render.full import Terminal

    name = options.format or config.get("format") or "full"
    try:
        fmt = OutputFormat.parse(name)
    except ValueError:
        raise UsageError(f"format: unknown format {name!r} (choose from {', '.join(FORMATS)})") from None
    verbosity = -1 if getattr(options, "quiet", False) else int(bool(getattr(options, "verbose", False)))
    # FULL: rich's own view of stdout (width, colour, NO_COLOR/FORCE_COLOR); a file: plain, soft-wrapped
    if fmt is OutputFormat.FULL:
        terminal = Terminal.detect(force_color=options.color) if options.output is None else \
            Terminal(color=options.color)
        return render_terminal(reports, verbosity=verbosity, terminal=terminal)
    if fmt is OutputFormat.CONCISE:
        return render_concise(reports, verbosity=verbosity)
    if fmt is OutputFormat.JUNIT:
        return render_junit(reports, fail_on=options.fail_on or config.get("fail-on") or "error")
    return RENDERERS[fmt](reports)


def _emit(text: str, output: str | None) -> None:
    if output is None:
        try:
            print(text, flush=True)
        except BrokenPipeError:  # `... | head`: the reader left; the exit code still tells the verdict
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    try:
        Path(output).write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--output: cannot write {output}: {exc.strerror or exc}") from exc


def _args(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    from trainer_compat.features import load_args_spec

    return load_args_spec(text)


# -- rules / rule -----------------------------------------------------------------------------------------

def _add_rules(sub: Any) -> None:
    rules = sub.add_parser("rules", help="list the rules")
    rules.add_argument("--format", choices=("text", "json"), default="text")


def _run_rules(options: argparse.Namespace) -> int:
    from trainer_compat.catalog import all_rules

    rules = all_rules()
    if options.format == "json":
        print(json.dumps([{"code": r.code, "name": r.name, "severity": r.severity.value, "summary": r.summary,
                           "explanation": r.explanation} for r in rules], indent=2))
    else:
        for r in rules:
            print(f"{r.code:7}{r.name:31}{r.severity.value:8} {r.summary}")
    return EXIT_OK


def _add_rule(sub: Any) -> None:
    rule = sub.add_parser("rule", help="explain a rule: examples, call sites and fix, from the rule itself")
    rule.add_argument("code", nargs="?", metavar="CODE", help="a rule code (TC301) or name (unsafe-state-dict)")
    rule.add_argument("--all", action="store_true", help="every rule")
    rule.add_argument("--format", choices=("text", "json"), default="text")
    rule.add_argument("--no-run", action="store_true", help="do not run the examples on the installed transformers")
    rule.add_argument("--debug", action="store_true", help="show tracebacks")


def _run_rule(options: argparse.Namespace) -> int:
    from trainer_compat.catalog import all_rules, find_rule
    from trainer_compat.render.rule import render_rule_json, render_rule_text, rule_document

    if options.all == bool(options.code):
        raise UsageError("rule: give one CODE, or --all")
    _quiet()
    rules = all_rules() if options.all else (find_rule(options.code),)
    docs = [rule_document(r, run_examples=not options.no_run) for r in rules]
    if options.format == "json":
        print(render_rule_json(docs))
    else:
        print("\n\n".join(render_rule_text(d) for d in docs))
    return EXIT_OK


# -- main -------------------------------------------------------------------------------------------------

COMMANDS: dict[str, tuple[Callable[[Any], object], Callable[[argparse.Namespace], int]]] = {
    "check": (_add_check, _run_check),
    "rules": (_add_rules, _run_rules),
    "rule": (_add_rule, _run_rule),
    "fix": (add_fix_parser, run_fix),
}


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="trainer-compat",
                     description="Check torch modules against the Hugging Face Trainer protocol.")
    parser.add_argument("--version", action="version", version=f"trainer-compat {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(argv)
    except KeyboardInterrupt:  # the user's Ctrl-C (target code's own KeyboardInterrupt is a finding or a line)
        code = EXIT_INTERRUPTED
    if argv is None:  # the program: a non-daemon thread a target started never keeps it alive
        from trainer_compat.guard import exit_now_if_threads_remain

        exit_now_if_threads_remain(code)
    return code


def _main(argv: Sequence[str] | None) -> int:
    options = _parser().parse_args(argv)
    run = COMMANDS[options.command][1]
    debug = getattr(options, "debug", False)
    try:
        return run(options)
    except BrokenPipeError:  # `trainer-compat ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except UsageError as exc:
        if debug:
            raise
        _error(str(exc))
        return EXIT_USAGE
    except Exception as exc:
        if debug:
            raise
        _error(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
        return EXIT_USAGE


__all__ = ["COMMANDS", "FORMATS", "TargetError", "main"]
