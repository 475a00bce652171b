"""What a Trainer subclass replaces is read from the first class in its MRO that defines the method, for an
imported class and for ``--static``'s stand-in alike (trainer_class.overrides / kind_of)."""

from __future__ import annotations

import pytest
import transformers

from trainer_compat.trainer_class import TrainerKind, kind_of, overrides


class OwnLoss(transformers.Trainer):
    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
        return super().compute_loss(model, inputs, return_outputs, **kwargs)


class Plain(transformers.Seq2SeqTrainer):
    pass


def test_a_user_override_counts_and_the_stock_method_does_not():
    assert overrides(OwnLoss, "trainer", "compute_loss")
    assert not overrides(OwnLoss, "trainer", "prediction_step")
    assert not overrides(Plain, "seq2seq", "prediction_step")  # Seq2SeqTrainer's own: the stock one
    assert kind_of(Plain) is TrainerKind.SEQ2SEQ and kind_of(OwnLoss) is TrainerKind.TRAINER


def test_a_trl_trainer_replaces_trainers_loss_but_not_its_own():
    trl = pytest.importorskip("trl")

    class MySft(trl.SFTTrainer):
        pass

    assert kind_of(MySft) is TrainerKind.SFT
    assert not overrides(MySft, "sft", "compute_loss")  # SFTTrainer's own: stock for this kind
    assert overrides(trl.DPOTrainer, "trainer", "compute_loss")  # DPO replaces Trainer's
