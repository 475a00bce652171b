"""Every valid nn.Module gets a verdict (issue #16): odd tensors and containers are reported in findings, never
end the run. Each case was an internal error (or a segfault) before; the verdicts are those of the real Trainer."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import trainer_compat
from trainer_compat.testing import tiny_causal_lm


class Wrapper(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=False)
        self.config = self.model.config

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


class SparseBuffer(Wrapper):
    def __init__(self):
        super().__init__()
        self.register_buffer("mask", torch.eye(3).to_sparse())


class QuantizedBuffer(Wrapper):
    def __init__(self):
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # quantized tensor creation is deprecated in recent torch
            self.register_buffer("scales", torch.quantize_per_tensor(torch.randn(4), 0.1, 0, torch.qint8))


class Lazy(Wrapper):
    def __init__(self):
        super().__init__()
        self.adapter = nn.LazyLinear(4)  # never called: stays uninitialized


class ListStateDict(Wrapper):
    def state_dict(self, *args, **kwargs):
        return list(super().state_dict(*args, **kwargs).items())


class RaisingNamedParameters(Wrapper):
    def named_parameters(self, *args, **kwargs):
        raise RuntimeError("parameters are sharded elsewhere")


class CatchAll(Wrapper):
    """Every missing name is a no-op callable: gradient_checkpointing_enable 'works' and does nothing."""

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return lambda *args, **kwargs: None


class CatchAllCheckpointing(Wrapper):
    """A no-op callable for every missing checkpointing name: Trainer() gets through, checkpointing stays off."""

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if "checkpointing" not in name:
                raise
            return lambda *args, **kwargs: None


def _by_rule(report) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in report.findings:
        out.setdefault(f.rule, set()).add(f.severity.value)
    return out


@pytest.mark.parametrize(("model_class", "what"), [(SparseBuffer, "mask (sparse_coo)"),
                                                    (QuantizedBuffer, "scales (qint8)"),
                                                    (ListStateDict, "returns a list")])
def test_a_state_dict_safetensors_refuses_is_an_error_where_trainer_saves(model_class, what):
    report = trainer_compat.check(model_class())  # default arguments save checkpoints
    (finding,) = [f for f in report.findings if f.rule == "TC301"]
    assert finding.severity.value == "error" and what in finding.message
    assert _by_rule(trainer_compat.check(model_class(), args={"save_strategy": "no"}))["TC301"] == {"warning"}


def test_lazy_parameters_are_said_to_be_unchecked_and_the_probe_runs_the_real_trainer():
    static = trainer_compat.check(Lazy(), args={"save_strategy": "no"})
    assert _by_rule(static).get("TC301") == {"info"}
    model = Lazy()
    report = trainer_compat.check(model, args={"save_strategy": "no"}, probe=True)
    assert "TC608" not in report.codes() and type(model.adapter) is nn.LazyLinear
    (failure,) = [f for f in report.findings if f.rule == "TC601" and f.details.get("phase") == "train"]
    assert "uninitialized parameter" in failure.message  # Trainer itself refuses an unused lazy layer


def test_a_quantized_buffer_is_snapshotted_and_compared_under_the_probe():
    report = trainer_compat.check(QuantizedBuffer(), args={"save_strategy": "no"}, probe=True)
    assert "TC608" not in report.codes()
    saves = [f for f in report.findings if f.rule == "TC601" and f.details.get("phase") == "save_model"]
    assert saves and saves[0].severity.value == "warning"  # save_model really raises; no checkpoint scheduled


def test_named_parameters_that_raises_gets_the_real_trainers_verdict():
    report = trainer_compat.check(RaisingNamedParameters(), args={"save_strategy": "no"}, probe=True)
    assert "sharded elsewhere" in str(report) and not report.compatible
    assert not {"TC600", "TC608"} & report.codes()


def test_a_catch_all_getattr_with_checkpointing_is_settled_by_the_probe():
    report = trainer_compat.check(CatchAll(), args={"gradient_checkpointing": True, "save_strategy": "no"},
                                  probe=True)
    assert not report.compatible, str(report)
    # 5.x's Trainer() compares a no-op from model.tp_size with 1 (TC601); where it gets further, the probe proves
    # checkpointing silently off (TC604)
    assert {"TC601", "TC604"} & {f.rule for f in report.errors}
    quieter = trainer_compat.check(CatchAllCheckpointing(), probe=True,
                                   args={"gradient_checkpointing": True, "save_strategy": "no"})
    (proof,) = [f for f in quieter.errors if f.rule == "TC604"]
    assert "reached through the class's __getattr__, is a callable that does nothing" in proof.message


def test_a_no_op_is_told_from_a_callable_that_does_something():
    from trainer_compat.noop import does_nothing

    class Shim:
        def documented(self, *args, **kwargs):
            """Enable checkpointing."""

        def flips_a_flag(self, *args, **kwargs):
            self.use_cache = False

        def returns_text(self):
            return "done"

    assert all(does_nothing(f) for f in (lambda *a, **k: None, Shim().documented, Shim.documented))
    assert not any(does_nothing(f) for f in (Shim().flips_a_flag, Shim().returns_text, print, lambda: 1, object()))
