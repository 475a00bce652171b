"""preflight(trainer): real Trainers over a datasets.Dataset and a list of dicts; the data hazards it must
catch (columns dropped, a collator that returns no mapping, a batch that does not bind, labels), and a
trainer, model and RNG that are exactly as they were afterwards."""

from __future__ import annotations

import random

import pytest
import torch
import transformers
from torch import nn

import trainer_compat
from trainer_compat.probe.state import ModelState
from trainer_compat.testing import tiny_causal_lm

datasets = pytest.importorskip("datasets")
IDS = [5, 6, 7, 8, 9, 10]


class HiddenInputs(nn.Module):
    """forward(**kwargs): remove_unused_columns drops every column."""

    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=False)
        self.config = self.model.config

    def forward(self, **kwargs):
        return self.model(**kwargs)


class Named(HiddenInputs):
    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


def _args(tmp_path, **fields):
    fields = {"output_dir": str(tmp_path / "out"), "report_to": "none", "per_device_train_batch_size": 2,
              "use_cpu": True, **fields}
    return transformers.TrainingArguments(**fields)


def _rows(n=4, **extra):
    return [{"input_ids": torch.tensor(IDS), "labels": torch.tensor(IDS), **extra} for _ in range(n)]


def _codes(report):
    return {f.rule: f.severity.value for f in report.findings}


def test_compatible_trainer_over_a_dataset_passes_and_probes_its_own_batch(tmp_path):
    ds = datasets.Dataset.from_dict({"input_ids": [IDS] * 4, "labels": [IDS] * 4, "text": ["a"] * 4})
    trainer = transformers.Trainer(model=tiny_causal_lm(), args=_args(tmp_path), train_dataset=ds)
    report = trainer_compat.preflight(trainer)
    assert report.compatible, str(report)
    assert _codes(report).get("TC701") == "info"  # "text" is dropped, as it should be
    assert not any(f.rule.startswith("TC6") for f in report.findings), str(report)
    assert not any("synthetic" in note for note in report.skipped)


def test_column_hazard_over_a_dataset_raises_one_exception_with_the_report(tmp_path):
    ds = datasets.Dataset.from_dict({"input_ids": [IDS] * 4, "labels": [IDS] * 4})
    trainer = transformers.Trainer(model=HiddenInputs(), args=_args(tmp_path), train_dataset=ds)
    with pytest.raises(trainer_compat.IncompatibleTrainerError) as caught:
        trainer_compat.preflight(trainer, probe=False, raise_on_error=True)
    assert caught.value.report.compatible is False
    assert "TC701" in str(caught.value) and "no column of the Dataset" in str(caught.value)
    assert str(caught.value) == str(caught.value.report)


def test_non_mapping_collator_over_a_list_of_dicts(tmp_path):
    def collate(examples):
        return torch.stack([e["input_ids"] for e in examples]), torch.stack([e["labels"] for e in examples])

    trainer = transformers.Trainer(model=Named(), args=_args(tmp_path), train_dataset=_rows(),
                                   data_collator=collate)
    report = trainer_compat.preflight(trainer, probe=False)
    assert _codes(report)["TC702"] == "error"
    assert "returns a tuple, not a mapping" in str(report)


def test_batch_that_does_not_bind_and_labels_missing_for_evaluation(tmp_path):
    args = _args(tmp_path, remove_unused_columns=False, eval_strategy="steps", eval_steps=1,
                 label_names=["target_ids"])
    rows = _rows(extra_key=torch.tensor([1]))
    trainer = transformers.Trainer(model=Named(), args=args, train_dataset=rows, eval_dataset=rows)
    report = trainer_compat.preflight(trainer, probe=False)
    codes = _codes(report)
    assert codes["TC703"] == "error" and "extra_key not accepted" in str(report)
    assert codes["TC704"] == "error"  # evaluation is scheduled: its eval_loss silently goes missing


def test_labels_missing_for_an_evaluation_nobody_scheduled_is_a_warning(tmp_path):
    args = _args(tmp_path, remove_unused_columns=False, label_names=["target_ids"])
    trainer = transformers.Trainer(model=Named(), args=args, train_dataset=_rows(), eval_dataset=_rows())
    assert _codes(trainer_compat.preflight(trainer, probe=False))["TC704"] == "warning"


def test_select_ignore_and_fail_on(tmp_path):
    ds = datasets.Dataset.from_dict({"input_ids": [IDS] * 4, "labels": [IDS] * 4})
    trainer = transformers.Trainer(model=HiddenInputs(), args=_args(tmp_path), train_dataset=ds)
    report = trainer_compat.preflight(trainer, probe=False, ignore=["TC7", "TC1"], raise_on_error=True)
    assert not any(f.rule.startswith(("TC7", "TC1")) for f in report.findings)
    with pytest.raises(trainer_compat.UsageError, match="unknown rule code"):
        trainer_compat.preflight(trainer, probe=False, select=["TC77"])


def test_the_trainer_model_and_rng_are_unchanged(tmp_path):
    model = tiny_causal_lm()
    ds = datasets.Dataset.from_dict({"input_ids": [IDS] * 4, "labels": [IDS] * 4})
    trainer = transformers.Trainer(model=model, args=_args(tmp_path, gradient_checkpointing=True), train_dataset=ds)
    attributes = dict(trainer.__dict__)
    output_dir = tmp_path / "out"
    written = sorted(output_dir.rglob("*")) if output_dir.exists() else None
    state = trainer.state.to_json_string() if hasattr(trainer.state, "to_json_string") else repr(trainer.state)
    random.seed(3)
    torch.manual_seed(3)
    snapshot = ModelState.capture(model)
    rng = (random.getstate(), torch.get_rng_state())
    report = trainer_compat.preflight(trainer, probe=True)
    assert report.compatible, str(report)
    assert rng[0] == random.getstate() and torch.equal(rng[1], torch.get_rng_state())
    assert trainer.__dict__.keys() == attributes.keys()
    assert all(trainer.__dict__[k] is v for k, v in attributes.items())
    now = trainer.state.to_json_string() if hasattr(trainer.state, "to_json_string") else repr(trainer.state)
    assert now == state
    assert snapshot.differences(model) == []
    assert (sorted(output_dir.rglob("*")) if output_dir.exists() else None) == written
    first = next(iter(trainer.get_train_dataloader()))  # the dataloader still starts at the start
    assert set(first) == {"input_ids", "labels"}
