"""The seed case: HiggsAudioModelWrapper, without shims and with the hand-written shim from a public fix note."""

from __future__ import annotations

from pathlib import Path

import pytest

import trainer_compat
from trainer_compat.findings import Severity
from trainer_compat.protocol.data import EVERY_N_LAYERS
from trainer_compat.targets import load_target
from trainer_compat.versions import VersionRange, installed_transformers

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "higgs_audio_wrapper.py"
CHECKPOINTING = {"gradient_checkpointing": True, "save_strategy": "steps", "save_steps": 500}


def findings(name: str, args: dict) -> dict[str, list]:
    report = trainer_compat.check(load_target(f"{EXAMPLE}:{name}"), args=args)
    assert report.transformers_version == str(installed_transformers())
    by_rule: dict[str, list] = {}
    for f in report.findings:
        by_rule.setdefault(f.rule, []).append(f)
    return by_rule


def test_plain_wrapper_reports_checkpointing_columns_config_and_save():
    found = findings("HiggsAudioModelWrapper", CHECKPOINTING)
    (missing,) = found["TC001"]
    assert missing.member == "gradient_checkpointing_enable"
    assert missing.severity is Severity.ERROR
    assert missing.call_site is not None and missing.call_site.file == "transformers/trainer.py"
    assert "higgs_audio_wrapper.py" in str(missing.location)
    assert found["TC101"][0].member == "forward"
    assert found["TC201"][0].member == "config"
    (save,) = found["TC301"]
    assert save.severity is Severity.ERROR and "model.lm_head.weight" in save.message


def test_save_hazard_is_a_warning_when_no_checkpoint_is_written():
    found = findings("HiggsAudioModelWrapper", {"save_strategy": "no"})
    assert [f.severity for f in found["TC301"]] == [Severity.WARNING]
    assert "TC001" not in found  # checkpointing is off: nothing calls it


def test_shim_is_flagged_as_able_to_fake_success_on_every_version():
    found = findings("HiggsAudioModelWrapperWithShim", CHECKPOINTING)
    (fake,) = found["TC402"]
    assert "catches every exception" in fake.message and "use_cache" in fake.message
    # The tiny example's inner model is a GPT-2 that checkpoints, so nothing is swallowed today: the real
    # Trainer checkpoints (tests/test_agreement.py, checkpointing_keep_columns), hence a warning, not an error.
    assert fake.severity is Severity.WARNING and "self.model (GPT2LMHeadModel)" in fake.message


def test_shim_around_a_model_that_cannot_checkpoint_is_an_error():
    from trainer_compat.checker import build_subject, check_subject
    from trainer_compat.features import build_setup

    model = load_target(f"{EXAMPLE}:HiggsAudioModelWrapperWithShim")()
    model.model.supports_gradient_checkpointing = False  # the inner call now raises, and the shim swallows it
    report = check_subject(build_subject(model), build_setup(CHECKPOINTING))
    (fake,) = [f for f in report.findings if f.rule == "TC402"]
    assert fake.severity is Severity.ERROR


@pytest.mark.skipif(installed_transformers() not in VersionRange(since=EVERY_N_LAYERS),
                    reason="the signature only breaks where Trainer passes every_n_layers/offload")
def test_shim_signature_breaks_on_5x():
    found = findings("HiggsAudioModelWrapperWithShim", CHECKPOINTING)
    (signature,) = found["TC002"]
    assert "every_n_layers" in signature.message
    assert "TC001" not in found


@pytest.mark.skipif(installed_transformers() in VersionRange(since=EVERY_N_LAYERS),
                    reason="before 5.16 Trainer calls gradient_checkpointing_enable(gradient_checkpointing_kwargs=...)")
def test_shim_signature_binds_on_4x():
    assert "TC002" not in findings("HiggsAudioModelWrapperWithShim", CHECKPOINTING)
