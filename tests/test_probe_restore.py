"""The dry-run leaves no trace, Python state included (issue #16): a deep snapshot taken independently of the
probe's own code is compared before and after, on models that mutate lists and config in forward, under
full_determinism and through preflight; and ModelState itself on what a forward can do to a module."""

from __future__ import annotations

import hashlib
import io
import os
import random

import pytest
import torch
import transformers
from torch import nn

import trainer_compat
from trainer_compat.probe import process
from trainer_compat.probe.state import ModelState
from trainer_compat.testing import tiny_causal_lm

_STRUCTURE = {"_parameters", "_buffers", "_modules"}


def _plain(value, depth=0):
    """A comparable picture of a value: containers by contents, configs by attributes, tensors by bytes."""
    if depth > 8:
        return ("deep", id(value))
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return _plain_container(value, depth)
    if isinstance(value, torch.Tensor):
        data = value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        return ("tensor", hashlib.sha1(data).hexdigest())
    if isinstance(value, (transformers.PretrainedConfig, transformers.GenerationConfig)):
        return ("config", _plain(vars(value), depth + 1))
    if isinstance(value, (bool, int, float, str, bytes, type(None), torch.dtype, torch.device)):
        return value
    return ("object", id(value))


def _plain_container(value, depth):
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_plain(v, depth + 1) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((repr(k), _plain(v, depth + 1)) for k, v in value.items()))
    return ("set", tuple(sorted(map(repr, value))))


def deep_fingerprint(model: nn.Module) -> dict:
    modules = dict(model.named_modules(remove_duplicate=False))
    return {
        "state": {k: _plain(v) for k, v in model.state_dict(keep_vars=True).items()},
        "python": {name: {k: _plain(v) for k, v in vars(m).items() if k not in _STRUCTURE}
                   for name, m in modules.items()},
        "flags": (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
                  torch.backends.cudnn.benchmark, torch.is_grad_enabled(), torch.get_default_dtype()),
        "environ": dict(os.environ),
        "rng": (hashlib.sha1(torch.get_rng_state().numpy().tobytes()).hexdigest(), hash(random.getstate())),
    }


def _changed(before: dict, after: dict) -> dict:
    return {k: v for k, v in after.items() if v != before[k]}


class Mutating(nn.Module):
    """A forward that appends to a list, bumps a counter, fills a dict and writes its config."""

    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=False)
        self.config = self.model.config
        self.seen: list[int] = []
        self.stats = {"calls": 0}
        self.counter = 0

    def forward(self, input_ids, attention_mask=None, labels=None):
        self.seen.append(int(input_ids.shape[0]))
        self.stats["calls"] += 1
        self.stats.setdefault("shapes", []).append(tuple(input_ids.shape))
        self.counter += 1
        self.config.history = [*getattr(self.config, "history", []), len(self.seen)]
        self.model.generation_config.max_length = 7
        self.last_batch = input_ids.detach().clone()
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


@pytest.mark.parametrize("args", [{}, {"full_determinism": True}], ids=["plain", "full_determinism"])
def test_check_probe_restores_python_state_flags_and_environment(args, monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # the caller's own value comes back, too
    model = Mutating()
    model.seen.append(-1)
    before = deep_fingerprint(model)
    report = trainer_compat.check(model, args=args, probe=True)
    assert _changed(before, deep_fingerprint(model)) == {}
    assert not any(f.rule in ("TC601", "TC608") for f in report.findings), str(report)
    assert model.seen == [-1] and not hasattr(model.config, "history") and "last_batch" not in vars(model)


def test_preflight_restores_python_state(tmp_path):
    model = Mutating()
    rows = [{"input_ids": torch.tensor([5, 6, 7, 8]), "labels": torch.tensor([5, 6, 7, 8])}] * 4
    args = transformers.TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True,
                                          per_device_train_batch_size=2)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=rows)
    before = deep_fingerprint(model)
    report = trainer_compat.preflight(trainer)
    assert _changed(before, deep_fingerprint(model)) == {}
    assert "TC608" not in report.codes(), str(report)


SHAPES_SEEN: list = []


class CountsOnTheClass(Mutating):
    calls = 0

    def forward(self, input_ids, attention_mask=None, labels=None):
        type(self).calls += 1
        SHAPES_SEEN.append(tuple(input_ids.shape))
        return super().forward(input_ids, attention_mask, labels)


def test_state_shared_outside_the_instance_is_reported_not_hidden():
    report = trainer_compat.check(CountsOnTheClass(), probe=True)
    (finding,) = [f for f in report.findings if f.rule == "TC608"]
    assert finding.severity.value == "warning", str(report)
    assert "class attribute CountsOnTheClass.calls" in finding.message
    assert f"module global {__name__}.SHAPES_SEEN" in finding.message


# ModelState alone: what a forward can do to a module, undone and proven undone (no Trainer: fast).

def test_model_state_restores_containers_in_place_structure_class_and_hooks():
    model = Mutating()
    seen, stats = model.seen, model.stats
    hook = model.register_forward_hook(lambda *a: None)
    state = ModelState.capture(model)
    model.seen.append(3)
    model.stats["new"] = {"x": [1]}
    model.config.history = [1]
    model.config.vocab_size += 1
    model.model.generation_config.max_length = 3
    model.register_buffer("extra", torch.ones(2))
    model.extra_attr = object()
    hook.remove()
    model.register_forward_pre_hook(lambda *a: None)
    with torch.no_grad():
        model.model.lm_head.weight.add_(1)
    assert len(state.differences(model)) >= 8
    state.restore(model)
    assert state.differences(model) == []
    assert model.seen is seen and seen == [] and model.stats is stats and "new" not in stats
    assert not hasattr(model.config, "history") and len(model._forward_hooks) == 1 and not model._forward_pre_hooks


def test_model_state_puts_a_lazy_module_back_and_compares_odd_tensors():
    model = nn.Sequential(nn.LazyLinear(3))
    model.register_buffer("sparse", torch.eye(3).to_sparse())
    model.register_buffer("quantized", torch.quantize_per_tensor(torch.randn(4), 0.1, 0, torch.qint8))
    state = ModelState.capture(model)
    model(torch.ones(2, 5))  # materializes: LazyLinear becomes Linear with real parameters
    with torch.no_grad():
        model.sparse.copy_((torch.eye(3) * 2).to_sparse())
        model.quantized.copy_(torch.quantize_per_tensor(torch.randn(4) + 3, 0.1, 0, torch.qint8))
    diffs = state.differences(model)
    assert "class of 0" in diffs and "tensor buffer:sparse" in diffs and "tensor buffer:quantized" in diffs
    state.restore(model)
    assert state.differences(model) == [] and type(model[0]) is nn.LazyLinear


class Uncopyable(torch.Tensor):
    """A tensor subclass that refuses to be cloned (some quantization libraries' tensors do)."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch.Tensor.clone:
            raise NotImplementedError("clone is not supported for this tensor type")
        return super().__torch_function__(func, types, args, kwargs or {})


def test_a_tensor_that_cannot_be_copied_is_listed_as_not_proven_not_crashed_on():
    model = nn.Linear(2, 2)
    model.register_buffer("packed", torch.ones(3).as_subclass(Uncopyable))
    state = ModelState.capture(model)
    assert any("buffer:packed" in note and "cannot be copied" in note for note in state.unverified)
    state.restore(model)
    assert state.differences(model) == []


def test_process_state_restores_flags_and_environment(monkeypatch):
    monkeypatch.delenv("CUDA_LAUNCH_BLOCKING", raising=False)
    saved = process.ProcessState.capture()
    transformers.enable_full_determinism(7)
    torch.set_grad_enabled(False)
    try:
        diffs = saved.differences()
        assert {"torch flag deterministic algorithms", "torch flag cudnn.deterministic", "torch flag grad mode",
                "environment variable CUDA_LAUNCH_BLOCKING", "RNG state"} <= set(diffs)
    finally:
        saved.restore()
    assert saved.differences() == [] and "CUDA_LAUNCH_BLOCKING" not in os.environ
    assert torch.is_grad_enabled() and not torch.are_deterministic_algorithms_enabled()


def test_one_rng_snapshot_that_never_initialises_cuda(monkeypatch, tmp_path):
    """preflight's and the probe's RNG snapshot are one helper, and it reads CUDA's state only once initialised."""
    def initialises(*args):
        raise AssertionError("reading the CUDA RNG state would initialise CUDA")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", initialises)
    assert "cuda" not in process.rng_state()
    from trainer_compat.trainer_check import preserved

    trainer = type("Stub", (), {})()
    with preserved(trainer):
        random.random()
    assert ModelState.capture(nn.Linear(2, 2)).process.rng.keys() == process.rng_state().keys()


# Progress: the probe's phases on a terminal, nothing elsewhere.

class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_probe_phases_are_shown_on_a_terminal_only():
    from trainer_compat.render.progress import PhaseProgress

    quiet = io.StringIO()
    silent = PhaseProgress("m", stream=quiet, after=0)
    silent.phase("training step")
    silent.close()
    assert quiet.getvalue() == ""
    terminal = _Terminal()
    shown = PhaseProgress("m", stream=terminal, after=0)
    for phase in ("building the Trainer", "training step"):
        shown.phase(phase)
    shown.close()
    lines = terminal.getvalue().splitlines()
    assert lines[0].startswith("trainer-compat: probe m: building the Trainer ...") and "training step" in lines[1]
    assert lines[-1].startswith("trainer-compat: probe m: done")
    fast = _Terminal()
    quick = PhaseProgress("m", stream=fast, after=60)
    quick.phase("training step")
    quick.close()
    assert fast.getvalue() == ""  # a probe that ends before the threshold prints nothing


def test_a_slow_phase_is_shown_while_it_runs():
    import time

    from trainer_compat.render.progress import PhaseProgress

    terminal = _Terminal()
    progress = PhaseProgress("m", stream=terminal, after=0.05)
    progress.phase("building the Trainer")
    time.sleep(0.3)  # the timer shows the running phase without waiting for the next one
    assert "building the Trainer ..." in terminal.getvalue()
    progress.close()


def test_the_dry_run_reports_its_phases(monkeypatch):
    from trainer_compat.render import progress

    terminal = _Terminal()
    monkeypatch.setattr(progress.sys, "stderr", terminal)
    original = progress.PhaseProgress.__init__

    def immediately(self, what, stream=None, **kwargs):
        original(self, what, stream, after=0)

    monkeypatch.setattr(progress.PhaseProgress, "__init__", immediately)
    trainer_compat.check(tiny_causal_lm(), probe=True)
    text = terminal.getvalue()
    for phase in ("building the Trainer", "training step", "checkpoint save and reload", "restoring the model"):
        assert phase in text, text
