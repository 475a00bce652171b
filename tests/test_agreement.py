"""Agreement with the real Trainer: for every zoo model and argument profile, the check's verdict is what
Trainer / Seq2SeqTrainer really does in two steps (tests/trainer_runner.py says what counts as wrong)."""

from __future__ import annotations

import importlib.util

import pytest

import trainer_compat
from tests.trainer_runner import Profile, run
from tests.zoo import ZOO, Entry

PROFILES: tuple[Profile, ...] = (
    # Trainer's defaults: save_strategy="steps" (a checkpoint at every step of the run), remove_unused_columns
    Profile("defaults", {}),
    Profile("defaults_datasets", {}, dataset="datasets", needs=("datasets",)),
    Profile("checkpointing", {"gradient_checkpointing": True, "save_strategy": "no"}),
    # the same for forwards that take **kwargs (the seed case): columns kept, so checkpointing decides
    Profile("checkpointing_keep_columns", {"gradient_checkpointing": True, "remove_unused_columns": False,
                                           "save_strategy": "no"}),
    # columns kept, so saving, evaluation and loading the best model decide (defaults covers the columns)
    Profile("save_eval_best", {"eval_strategy": "steps", "save_strategy": "steps", "load_best_model_at_end": True,
                               "remove_unused_columns": False}),
    Profile("grad_accum", {"gradient_accumulation_steps": 2, "save_strategy": "no"}),
    Profile("keep_columns", {"remove_unused_columns": False, "save_strategy": "no"}),
    Profile("save_keep_columns", {"remove_unused_columns": False, "save_strategy": "steps"}),
    Profile("generate", {"predict_with_generate": True, "eval_strategy": "steps", "save_strategy": "no"},
            trainers=("seq2seq",), predict=True),
)


def _cases() -> list:
    return [pytest.param(entry, profile, id=f"{entry.name}-{profile.name}")
            for entry in ZOO for profile in PROFILES if entry.trainer in profile.trainers]


def _missing(entry: Entry, profile: Profile) -> list[str]:
    return entry.missing() + [m for m in profile.needs if importlib.util.find_spec(m) is None]


@pytest.mark.parametrize(("entry", "profile"), _cases())
def test_check_agrees_with_trainer(entry: Entry, profile: Profile, tmp_path) -> None:
    missing = _missing(entry, profile)
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    report = trainer_compat.check(entry.build(), args=profile.fields(), trainer=entry.trainer)
    outcome = run(entry.build, entry.trainer, profile, tmp_path)
    findings = "\n".join(f"  {f.rule} {f.severity.value}: {f.message}" for f in report.findings) or "  (none)"
    assert report.compatible == outcome.ok, (
        f"{entry.name} x {profile.name}: the check says {'compatible' if report.compatible else 'NOT compatible'}, "
        f"the real {entry.trainer} run: {outcome}\nfindings:\n{findings}")


def test_zoo_covers_the_required_kinds() -> None:
    names = {e.name for e in ZOO}
    assert len(ZOO) >= 22
    assert {"higgs_wrapper", "higgs_wrapper_with_shim", "gpt2", "t5", "peft_lora_gpt2"} <= names
    assert {e.trainer for e in ZOO} == {"trainer", "seq2seq"}
