"""The dry-run through the real Trainer: the cases it must catch, and the promise that it leaves no trace."""

from __future__ import annotations

import hashlib
import random
import tempfile

import numpy as np
import pytest
import torch
from torch import nn

import trainer_compat
from tests.zoo import ZOO
from trainer_compat.testing import tiny_causal_lm

FULL_PROFILE = {"gradient_checkpointing": True, "gradient_accumulation_steps": 2, "eval_strategy": "steps",
                "eval_steps": 1, "save_strategy": "steps", "save_steps": 1}


def fingerprint(model: nn.Module) -> dict:
    """Everything training could change, computed independently of the probe's own snapshot code."""
    def digest(t: torch.Tensor | None) -> str | None:
        return None if t is None else hashlib.sha1(t.detach().cpu().contiguous().view(-1).view(torch.uint8)
                                                   .numpy().tobytes()).hexdigest()

    modules = dict(model.named_modules(remove_duplicate=False))
    return {
        "tensors": {k: digest(v) for k, v in model.state_dict(keep_vars=True).items()},
        "grads": {k: digest(p.grad) for k, p in model.named_parameters(remove_duplicate=False)},
        "requires_grad": {k: p.requires_grad for k, p in model.named_parameters(remove_duplicate=False)},
        "devices": {k: str(p.device) for k, p in model.named_parameters()},
        "modes": {k: m.training for k, m in modules.items()},
        "attributes": {k: sorted(m.__dict__) for k, m in modules.items()},
        "flags": {k: repr(m.__dict__.get("gradient_checkpointing")) for k, m in modules.items()},
        "hooks": {k: [len(getattr(m, h)) for h in dir(m) if h.endswith("_hooks") and isinstance(getattr(m, h), dict)]
                  for k, m in modules.items()},
        "forward": {k: m.__dict__.get("forward") is None for k, m in modules.items()},
        "rng": (digest(torch.get_rng_state()), hash(random.getstate()), digest(torch.from_numpy(
            np.random.get_state()[1].copy()))),
        "config": {k: sorted((a, repr(v)) for a, v in vars(m.config).items() if isinstance(v, (bool, int, str)))
                   for k, m in modules.items() if hasattr(m.__dict__.get("config"), "__dict__")},
    }


@pytest.mark.parametrize("entry", ZOO, ids=lambda e: e.name)
def test_probe_leaves_every_zoo_model_bitwise_unchanged(entry, tmp_path, monkeypatch):
    if entry.missing():
        pytest.skip(f"needs {', '.join(entry.missing())}")
    model = entry.build()
    before = fingerprint(model)
    workdir, private_tmp = tmp_path / "cwd", tmp_path / "tmp"
    workdir.mkdir()
    private_tmp.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))  # what the probe writes lands here, and only here
    args = dict(FULL_PROFILE, predict_with_generate=True) if entry.trainer == "seq2seq" else FULL_PROFILE
    report = trainer_compat.check(model, args=args, trainer=entry.trainer, probe=True)
    after = fingerprint(model)
    assert {k: v for k, v in after.items() if v != before[k]} == {}, entry.name
    assert "TC608" not in report.codes()
    assert list(workdir.iterdir()) == [], "the probe wrote into the working directory"
    # torch's per-user compile cache (torchinductor_<user>) is created once per process by torch itself
    left = [p.name for p in private_tmp.iterdir() if not p.name.startswith("torchinductor_")]
    assert left == [], "the probe left files in the temp directory"


# Cases the issue names, each with its silent twin.

class InnerWithoutCheckpointing(nn.Module):
    """A causal LM that cannot checkpoint (no gradient_checkpointing_enable) but has a config."""

    def __init__(self):
        super().__init__()
        lm = tiny_causal_lm(tie=False)
        self.config = lm.config
        self.embed = lm.transformer.wte
        self.head = lm.lm_head

    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        logits = self.head(self.embed(input_ids))
        loss = nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten())
        return {"loss": loss, "logits": logits}


class SeedShimOverInnerThatCannotCheckpoint(nn.Module):
    def __init__(self, inner=None):
        super().__init__()
        self.model = inner if inner is not None else InnerWithoutCheckpointing()

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None, **kwargs):
        try:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)
        except Exception as exc:
            print(f"Could not enable gradient checkpointing: {exc}")
            self.model.config.use_cache = False

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


class SeedShimOverGPT2(SeedShimOverInnerThatCannotCheckpoint):
    def __init__(self):
        super().__init__(tiny_causal_lm(tie=False))


class OnlyFlipsUseCache(SeedShimOverGPT2):
    def gradient_checkpointing_enable(self, *args, **kwargs):
        self.model.config.use_cache = False


class TiedWrapper(SeedShimOverGPT2):
    def __init__(self):
        nn.Module.__init__(self)
        self.model = tiny_causal_lm(tie=True)


CHECKPOINTING = {"gradient_checkpointing": True, "save_strategy": "no"}


def probe_codes(model, args) -> set[str]:
    return trainer_compat.check(model, args=args, probe=True).codes()


@pytest.mark.parametrize("model_class", [SeedShimOverInnerThatCannotCheckpoint, OnlyFlipsUseCache])
def test_checkpointing_claimed_without_effect_is_an_error(model_class):
    report = trainer_compat.check(model_class(), args=CHECKPOINTING, probe=True)
    (finding,) = [f for f in report.findings if f.rule == "TC604"]
    assert finding.severity.value == "error" and not report.compatible


def test_effective_checkpointing_is_proven_not_assumed():
    assert "TC604" not in probe_codes(SeedShimOverGPT2(), CHECKPOINTING)


def test_tied_embeddings_fail_at_save_in_the_real_trainer():
    report = trainer_compat.check(TiedWrapper(), args={"save_strategy": "steps"}, probe=True)
    saves = [f for f in report.findings if f.rule == "TC601" and f.details.get("phase") == "save_model"]
    assert saves and "share memory" in saves[0].message
    assert not [f for f in trainer_compat.check(SeedShimOverGPT2(), args={"save_strategy": "steps"},
                                                probe=True).findings if f.rule in ("TC601", "TC606")]


def test_sample_is_used_when_inputs_cannot_be_inferred(tmp_path):
    class Regressor(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 1)

        def forward(self, waveform, target=None):
            return {"loss": (self.proj(waveform).squeeze(-1) - target).pow(2).mean()}

    assert "TC600" in probe_codes(Regressor(), {})
    sample = tmp_path / "sample.json"
    sample.write_text('{"waveform": [0.1, 0.2, 0.3, 0.4], "target": 1.0}')
    report = trainer_compat.check(Regressor(), probe=True, sample=str(sample))
    assert "TC600" not in report.codes() and report.compatible, str(report)
