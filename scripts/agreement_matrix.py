"""Confusion matrices of trainer-compat against the real Trainer, per check mode, as markdown.

    python scripts/agreement_matrix.py                 # the agreement corpus (tests/corpus/), four profiles
    python scripts/agreement_matrix.py --zoo           # and the zoo (tests/zoo.py), test_agreement.py's profiles
    python scripts/agreement_matrix.py --only simcse_bert,ultravox --modes static,preflight

Each model x profile is trained for two steps by the real Trainer (its own Trainer subclass, data and collator for the
corpus; tests/trainer_runner.py for the zoo) and classified ok / failed / silent; then each mode gives a verdict:

* static      trainer_compat.check(factory, args=fields, trainer=kind)
* probe       check(..., trainer=<Trainer subclass or kind>, probe=True)
* probe_data  check(..., probe=True, data=<the rows>, collator=<the collator>)
* preflight   trainer_compat.preflight(<the built Trainer>)

``fields`` are the profile's TrainingArguments fields; where a corpus repository has its own TrainingArguments
subclass (``ARGS_CLASS``, e.g. LLaVA's), the check gets that class built from them, as the user's script builds it.
"pass" is ``report.compatible``. A real ok with a tool fail is a false alarm; a real failure or silent run with a tool
pass is a miss. "inconclusive" counts the verdicts that carry a TC609 (probe-inconclusive, info) finding. A mode the
installed trainer_compat does not offer (an older check() without data=/collator=/a Trainer class) is reported n/a.
Works on every supported transformers line (4.46, 4.57, 5.x); a corpus model that needs a missing package is skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.corpus_runner import CorpusEntry
    from tests.trainer_runner import Profile
    from tests.zoo import Entry

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODES = ("static", "probe", "probe_data", "preflight")


@dataclass
class Cell:
    """One model x profile x mode."""

    source: str
    model: str
    profile: str
    mode: str
    real: str  # ok / failed / silent
    tool: str  # pass / fail / n/a / error
    inconclusive: bool = False
    detail: str = ""


@dataclass
class Matrix:
    cells: list[Cell] = field(default_factory=list)

    def table(self, source: str) -> str:
        lines = [f"### {source}", "",
                 "| mode | real ok, tool pass | real ok, tool FAIL (false alarm) | real bad, tool fail (caught) "
                 "| real bad, tool PASS (miss) | inconclusive (TC609) | n/a or error |",
                 "|---|---|---|---|---|---|---|"]
        for mode in MODES:
            cells = [c for c in self.cells if c.source == source and c.mode == mode]
            if not cells:
                continue
            count = Counter((c.real == "ok", c.tool) for c in cells)
            lines.append(f"| {mode} | {count[(True, 'pass')]} | {count[(True, 'fail')]} | {count[(False, 'fail')]} "
                         f"| {count[(False, 'pass')]} | {sum(c.inconclusive for c in cells)} "
                         f"| {sum(c.tool in ('n/a', 'error') for c in cells)} |")
        real = Counter(c.real for c in self.cells if c.source == source and c.mode == MODES[0])
        lines += ["", f"Real runs: {real['ok']} ok, {real['failed']} failed, {real['silent']} silent.", ""]
        wrong = [c for c in self.cells if c.source == source and (
            (c.real == "ok" and c.tool == "fail") or (c.real != "ok" and c.tool == "pass") or c.tool == "error")]
        if wrong:
            lines += ["| model | profile | mode | real | tool | detail |", "|---|---|---|---|---|---|"]
            for c in wrong:
                kind = "FALSE ALARM" if c.real == "ok" and c.tool == "fail" else (
                    "error" if c.tool == "error" else "miss")
                lines.append(f"| {c.model} | {c.profile} | {c.mode} | {c.real} | {kind} | "
                             f"{c.detail.replace('|', '/')[:400]} |")
            lines.append("")
        return "\n".join(lines)


def _report_cell(source: str, model: str, profile: str, mode: str, real: Any, *,
                 make_report: Callable[[], Any]) -> Cell:
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            report = make_report()
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc) or "trainer" in str(exc):
            return Cell(source, model, profile, mode, real.status, "n/a", detail=str(exc)[:200])
        return Cell(source, model, profile, mode, real.status, "error", detail=f"{type(exc).__name__}: {exc}"[:400])
    except Exception as exc:  # a crash of the tool is a result here
        return Cell(source, model, profile, mode, real.status, "error", detail=f"{type(exc).__name__}: {exc}"[:400])
    findings = "; ".join(f"{f.rule} {f.severity.value}: {f.message.splitlines()[0]}" for f in report.findings
                         if f.severity.value in ("error",) or f.rule == "TC609")
    detail = f"real: {real}; findings: {findings or '(none)'}"
    return Cell(source, model, profile, mode, real.status, "pass" if report.compatible else "fail",
                inconclusive=any(f.rule == "TC609" for f in report.findings), detail=detail)


def _preflight() -> Any:
    """trainer_compat.preflight, the function."""
    import trainer_compat

    return trainer_compat.preflight


def _corpus_verdict(mode: str, entry: CorpusEntry, profile: str, workdir: Path) -> Callable[[], Any]:
    """The call that gives ``mode``'s report on a corpus entry under ``profile``."""
    import trainer_compat

    fields = entry.check_args(profile, workdir / "check")
    return {
        "static": lambda: trainer_compat.check(entry.factory, args=fields, trainer=entry.kind),
        "probe": lambda: trainer_compat.check(entry.factory, args=fields, trainer=entry.trainer_argument, probe=True),
        "probe_data": lambda: trainer_compat.check(entry.factory, args=fields, trainer=entry.trainer_argument,
                                                   probe=True, data=entry.data(), collator=entry.collator),
        "preflight": lambda: _preflight()(entry.build_trainer(profile, workdir)),
    }[mode]


def corpus(matrix: Matrix, only: set[str] | None, modes: tuple[str, ...], profiles: set[str] | None) -> None:
    from tests.corpus import CORPUS
    from tests.corpus_runner import PROFILES, load, run

    for name in CORPUS:
        if only and name not in only:
            continue
        entry = load(name)
        reason = entry.skip_reason()
        if reason:
            print(f"skipped {name}: {reason}", file=sys.stderr)
            continue
        for profile in PROFILES:
            if profiles and profile not in profiles:
                continue
            started = time.time()
            with tempfile.TemporaryDirectory() as workdir, contextlib.redirect_stdout(io.StringIO()):
                real = run(entry, profile, Path(workdir))
            for mode in modes:
                with tempfile.TemporaryDirectory() as workdir:
                    make = _corpus_verdict(mode, entry, profile, Path(workdir))
                    matrix.cells.append(_report_cell("corpus", name, profile, mode, real, make_report=make))
            print(f"corpus {name} x {profile}: {real} ({time.time() - started:.0f}s)", file=sys.stderr)


def _zoo_trainer(entry: Entry, profile: Profile, workdir: str) -> Any:
    """The Trainer the zoo entry trains under ``profile``, built as test_agreement builds it."""
    import transformers

    from tests.trainer_runner import dataset

    seq2seq = entry.trainer == "seq2seq"
    args_cls = transformers.Seq2SeqTrainingArguments if seq2seq else transformers.TrainingArguments
    trainer_cls = transformers.Seq2SeqTrainer if seq2seq else transformers.Trainer
    args = args_cls(output_dir=workdir, **profile.fields())
    evaluates = str(getattr(args.eval_strategy, "value", args.eval_strategy)) != "no"
    return trainer_cls(model=entry.build(), args=args, train_dataset=dataset(entry.trainer, profile.dataset),
                       eval_dataset=dataset(entry.trainer, profile.dataset, n=4, seed=1) if evaluates else None)


def _zoo_verdict(mode: str, entry: Entry, profile: Profile, workdir: str) -> Callable[[], Any]:
    """The call that gives ``mode``'s report on a zoo entry under ``profile``."""
    import trainer_compat
    from tests.trainer_runner import dataset

    fields = profile.fields()
    return {
        "static": lambda: trainer_compat.check(entry.build, args=fields, trainer=entry.trainer),
        "probe": lambda: trainer_compat.check(entry.build, args=fields, trainer=entry.trainer, probe=True),
        "probe_data": lambda: trainer_compat.check(entry.build, args=fields, trainer=entry.trainer, probe=True,
                                                   data=dataset(entry.trainer, profile.dataset)),
        "preflight": lambda: _preflight()(_zoo_trainer(entry, profile, workdir)),
    }[mode]


def zoo(matrix: Matrix, only: set[str] | None, modes: tuple[str, ...], profiles: set[str] | None) -> None:
    import importlib.util

    from tests.test_agreement import PROFILES
    from tests.trainer_runner import run
    from tests.zoo import ZOO

    for entry in ZOO:
        if (only and entry.name not in only) or entry.missing():
            continue
        for profile in PROFILES:
            if profiles and profile.name not in profiles:
                continue
            if entry.trainer not in profile.trainers or any(importlib.util.find_spec(m) is None
                                                            for m in profile.needs):
                continue
            started = time.time()
            with tempfile.TemporaryDirectory() as workdir, contextlib.redirect_stdout(io.StringIO()):
                real = run(entry.build, entry.trainer, profile, Path(workdir))
            for mode in modes:
                with tempfile.TemporaryDirectory() as workdir:
                    make = _zoo_verdict(mode, entry, profile, workdir)
                    matrix.cells.append(_report_cell("zoo", entry.name, profile.name, mode, real, make_report=make))
            print(f"zoo {entry.name} x {profile.name}: {real} ({time.time() - started:.0f}s)", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", action="store_true", help="also the zoo under tests/test_agreement.py's profiles")
    parser.add_argument("--no-corpus", action="store_true", help="only the zoo")
    parser.add_argument("--only", default="", help="comma-separated model names")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: " + ", ".join(MODES))
    parser.add_argument("--profiles", default="", help="comma-separated profile names (corpus or zoo); default all")
    parser.add_argument("--details", action="store_true", help="every cell, not only the disagreements")
    ns = parser.parse_args(argv)
    modes = tuple(m for m in ns.modes.split(",") if m)
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown mode(s): {', '.join(sorted(unknown))}")
    only = set(filter(None, ns.only.split(","))) or None
    profiles = set(filter(None, ns.profiles.split(","))) or None
    logging.disable(logging.WARNING)
    import transformers

    import trainer_compat

    transformers.logging.set_verbosity_error()
    matrix = Matrix()
    if not ns.no_corpus:
        corpus(matrix, only, modes, profiles)
    if ns.zoo:
        zoo(matrix, only, modes, profiles)
    print(f"## Agreement with the real Trainer (transformers {transformers.__version__}, trainer-compat "
          f"{trainer_compat.__version__})\n")
    for source in ("corpus", "zoo"):
        if any(c.source == source for c in matrix.cells):
            print(matrix.table(source))
    if ns.details:
        print("| source | model | profile | mode | real | tool | inconclusive |\n|---|---|---|---|---|---|---|")
        for c in matrix.cells:
            print(f"| {c.source} | {c.model} | {c.profile} | {c.mode} | {c.real} | {c.tool} | {c.inconclusive} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
