"""TC404 against the real TrainingArguments and Trainer: where it fires, checkpointing really stays off."""

from __future__ import annotations

import pytest
import torch
from packaging.version import Version

import trainer_compat
from trainer_compat.protocol.data import NEW_NAMES
from trainer_compat.rules.arguments import DeprecatedAliasOverridden
from trainer_compat.testing import tiny_causal_lm
from trainer_compat.versions import installed_transformers

pytestmark = pytest.mark.skipif(installed_transformers() < Version(NEW_NAMES),
                                reason=f"activation_checkpointing exists from transformers {NEW_NAMES}")


def _checkpointing_after_one_step(fields: dict, workdir) -> bool:
    from transformers import Trainer, TrainingArguments

    model = tiny_causal_lm(tie=False)
    rows = [{"input_ids": torch.randint(1, 50, (8,)), "labels": torch.randint(1, 50, (8,))} for _ in range(2)]
    args = TrainingArguments(str(workdir), max_steps=1, save_strategy="no", report_to="none", use_cpu=True,
                             per_device_train_batch_size=2, disable_tqdm=True, **fields)
    Trainer(model=model, args=args, train_dataset=rows).train()
    return bool(model.is_gradient_checkpointing)


@pytest.mark.parametrize("kind", ["fires", "silent"])
def test_checkpointing_is_off_exactly_where_tc404_fires(kind, tmp_path) -> None:
    for example in getattr(DeprecatedAliasOverridden, kind):
        if installed_transformers() not in example.versions:
            continue
        report = trainer_compat.check(example.load(tmp_path), args=example.args)
        fires = "TC404" in {f.rule for f in report.findings}
        assert fires == (kind == "fires")
        assert _checkpointing_after_one_step(example.args, tmp_path / "out") == (not fires)


def test_a_training_arguments_object_is_judged_as_resolved(tmp_path) -> None:
    """An object has already lost what was asked: nothing to compare, nothing said."""
    from transformers import TrainingArguments

    args = TrainingArguments(str(tmp_path), gradient_checkpointing=True, activation_checkpointing=False,
                             report_to="none")
    example = DeprecatedAliasOverridden.fires[0]
    assert "TC404" not in {f.rule for f in trainer_compat.check(example.load(tmp_path), args=args).findings}
