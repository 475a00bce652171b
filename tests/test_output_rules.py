"""TC101/TC102 severities and the forward-output rules (TC104-TC106) against the real Trainer: each example that
the rule reports as an error fails (or silently does the wrong thing) in a real two-step run with its arguments,
and each silent example trains; a Trainer subclass that overrides compute_loss silences the output rules."""

from __future__ import annotations

import tempfile
import warnings
from typing import Any

import pytest
import torch

import trainer_compat
from tests.trainer_runner import RUN_SCALE, rows
from trainer_compat.catalog import find_rule
from trainer_compat.findings import Severity
from trainer_compat.returns import DICT, LOGITS, LOSS, OTHER, TUPLE, forward_returns
from trainer_compat.rules import Example
from trainer_compat.rules.forward import KWARGS_READER
from trainer_compat.targets import load_target


def _run(model: Any, args: dict[str, Any], *, audio: bool = False, trainer_class: Any = None) -> str:
    """'ok', 'silent: ...' or 'failed: <exception>' for two real Trainer steps on rows with labels."""
    import transformers

    fields = {**RUN_SCALE, "save_strategy": "no", **args}
    data = rows("trainer", 8)
    if audio:
        for row in data:
            row["audio_features"] = torch.randn(row["input_ids"].shape[0], 32)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("audio_proj")}
    evaluates = fields.get("eval_strategy", "no") != "no"
    with tempfile.TemporaryDirectory() as out, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            trainer = (trainer_class or transformers.Trainer)(
                model=model, args=transformers.TrainingArguments(output_dir=out, **fields), train_dataset=data,
                eval_dataset=rows("trainer", 4, seed=1) if evaluates else None)
            trainer.train()
        except Exception as exc:  # the outcome under test
            return f"failed: {type(exc).__name__}: {exc}"
        evaluations = [e for e in trainer.state.log_history if any(k.startswith("eval_") for k in e)]
    if evaluates and not all("eval_loss" in e for e in evaluations):
        return "silent: evaluation reported no eval_loss"
    if before and all(torch.equal(p, dict(model.named_parameters())[n]) for n, p in before.items()):
        return "silent: audio_proj never trained (audio_features never reached the forward)"
    return "ok"


# (code, "fires"/"silent", index, the real run's outcome starts with, the batch carries audio_features)
CASES = [
    ("TC101", "fires", 1, "silent: audio_proj never trained", True),
    ("TC101", "silent", 2, "ok", True),
    ("TC102", "fires", 0, "failed: KeyError", False),
    ("TC102", "fires", 1, "silent: evaluation reported no eval_loss", False),
    ("TC102", "silent", 1, "ok", False),
    ("TC104", "fires", 0, "failed: ValueError: The model did not return a loss", False),
    ("TC104", "silent", 0, "ok", False),
    ("TC104", "silent", 1, "ok", False),
    ("TC105", "fires", 0, "failed: RuntimeError: grad can be implicitly created only for scalar outputs", False),
    ("TC105", "fires", 1, "failed: RuntimeError: grad can be implicitly created only for scalar outputs", False),
    ("TC105", "fires", 2, "failed: IndexError: invalid index of a 0-dim tensor", False),
    ("TC105", "fires", 3, "failed: RuntimeError: The size of tensor a", False),
    ("TC105", "silent", 0, "ok", False),
    ("TC105", "silent", 3, "ok", False),
    ("TC106", "fires", 0, "failed: AttributeError: 'NoneType' object has no attribute 'log_softmax'", False),
    ("TC106", "fires", 1, "failed: KeyError: 'logits'", False),
    ("TC106", "silent", 1, "ok", False),
    ("TC106", "silent", 2, "ok", False),
    # the user's Trainer subclass: its compute_loss / prediction_step decides, and trains
    ("TC102", "silent", 2, "ok", False),
    ("TC104", "silent", 2, "ok", False),
    ("TC105", "silent", 4, "ok", False),
    ("TC105", "silent", 5, "ok", False),
    ("TC106", "silent", 3, "ok", False),
]


@pytest.mark.parametrize(("code", "kind", "index", "outcome", "audio"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_the_verdict_is_the_real_trainers(code, kind, index, outcome, audio, *, tmp_path) -> None:
    example: Example = getattr(find_rule(code), kind)[index]
    model = example.load(tmp_path)
    options = example.options(tmp_path)
    report = trainer_compat.check(model(), **{**options, "args": {**RUN_SCALE, "save_strategy": "no", **example.args}})
    errors = {f.rule for f in report.findings if f.severity is Severity.ERROR}
    assert (code in errors) == (kind == "fires"), report.findings
    trainer_class = options["trainer"] if example.trainer_code else None
    assert _run(model(), example.args, audio=audio, trainer_class=trainer_class).startswith(outcome)


_COLLATOR = """
import torch

def Collator(rows):
    batch = {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
    batch["audio_features"] = torch.randn(*batch["input_ids"].shape, 32)
    return batch
"""


def test_a_custom_collator_that_may_build_the_key_makes_tc101_a_warning(tmp_path) -> None:
    """The collator sees only the kept columns, but may build the key from them: the real run then trains it."""
    import transformers

    model = Example(KWARGS_READER).load(tmp_path)
    path = tmp_path / "collator.py"
    path.write_text(_COLLATOR, encoding="utf-8")
    collator = load_target(f"{path}:Collator")
    report = trainer_compat.check(model(), args={"save_strategy": "no"}, collator=collator)
    assert {(f.rule, f.severity) for f in report.findings if f.rule == "TC101"} == {("TC101", Severity.WARNING)}
    before = model().audio_proj.weight.detach().clone()
    with tempfile.TemporaryDirectory() as out, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trained = model()
        transformers.Trainer(model=trained, args=transformers.TrainingArguments(output_dir=out, **RUN_SCALE,
                                                                                save_strategy="no"),
                             train_dataset=rows("trainer", 8), data_collator=collator).train()
    assert not torch.equal(before, trained.audio_proj.weight.detach())


def _shapes(source: str) -> list[tuple[str, str | None]]:
    with tempfile.TemporaryDirectory() as directory:
        path = f"{directory}/shapes.py"
        with open(path, "w", encoding="utf-8") as file:
            file.write(source)
        forward = load_target(f"{path}:forward")
        return [(r.kind, r.first) for r in forward_returns(forward) or []]


@pytest.mark.parametrize(("source", "expected"), [
    ("def forward(x):\n    out = m(x)\n    return out.logits\n", [(LOGITS, None)]),
    ("def forward(x):\n    loss = None\n    if x:\n        loss = F.cross_entropy(a, b)\n    return loss\n",
     [(LOSS, None)]),
    ("def forward(x):\n    lm_logits, loss = o.logits, o.loss\n    return (lm_logits, loss, v)\n", [(TUPLE, LOGITS)]),
    ("def forward(x):\n    output = (logits,) + rest\n    return ((loss,) + output) if loss is not None else output\n",
     [(OTHER, None)]),
    ("def forward(x):\n    loss = (a, b)\n    return loss\n", [(TUPLE, OTHER)]),  # the literal, not the name
    ("def forward(x):\n    out = {'loss': l}\n    return out\n", [(DICT, None)]),
    ("def forward(x):\n    def inner():\n        return logits\n    return o\n", [(OTHER, None)]),
])
def test_returns_are_classified_only_when_the_source_is_certain(source, expected) -> None:
    assert _shapes(source) == expected


def test_the_audio_example_trains_the_audio_projection_when_the_column_is_kept(tmp_path) -> None:
    model = Example(KWARGS_READER).load(tmp_path)
    assert _run(model(), {"remove_unused_columns": False}, audio=True) == "ok"


def test_a_trainer_subclass_that_may_add_the_key_makes_tc101_a_warning(tmp_path) -> None:
    from trainer_compat.rules.outputs import OWN_COMPUTE_LOSS

    model = Example(KWARGS_READER).load(tmp_path)
    trainer_class = Example(KWARGS_READER, trainer_code=OWN_COMPUTE_LOSS).options(tmp_path)["trainer"]
    found = [f for f in trainer_compat.check(model(), trainer=trainer_class).findings if f.rule == "TC101"]
    assert [f.severity for f in found] == [Severity.WARNING] and "MyTrainer.compute_loss" in found[0].message
