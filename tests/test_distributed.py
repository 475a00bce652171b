"""The distributed rules (TC12xx) against the real libraries, on CPU: accelerate's FSDP plugin and torch FSDP /
DDP on a single-process gloo group, transformers' from_pretrained under ZeRO-3 and its recursive unwrap. Each
`fires` case really fails where the check predicts it; each silent case really works."""

from __future__ import annotations

import copy
import inspect
import os
import socket
import tempfile
from contextlib import contextmanager
from typing import Any

import pytest
import torch
import torch.distributed as dist
from packaging.version import Version

import trainer_compat
from trainer_compat.features import environment_kept
from trainer_compat.protocol.data import RECURSIVE_UNWRAP, RECURSIVE_UNWRAP_EVERY_RUN_UNTIL
from trainer_compat.rules.distributed import FsdpMixedRequiresGrad, FsdpNoSplitModules, Zero3DeviceMap
from trainer_compat.rules.distributed_ddp import (
    DdpReentrantCheckpointing,
    DdpUnusedParameters,
    InnerModelNamedModule,
)
from trainer_compat.versions import installed_transformers


@pytest.fixture(scope="module")
def gloo():
    """One process, world size 1: enough for FSDP to flatten and for DDP's reducer to run."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    saved = {k: os.environ.get(k) for k in ("MASTER_ADDR", "MASTER_PORT")}
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def _codes(model, **kwargs) -> set[str]:
    return {f.rule for f in trainer_compat.check(model, **kwargs).findings}


def _load(example, tmp_path):
    return example.load(tmp_path)


def _plugin(fields: dict):
    """accelerate's FSDP plugin as Trainer gets it: 5.x from args.fsdp_plugin_args, 4.x from the environment
    that TrainingArguments exports."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from transformers import TrainingArguments

    with environment_kept():
        args = TrainingArguments(output_dir=tempfile.mkdtemp(), report_to="none", **copy.deepcopy(fields))
        plugin_args = getattr(args, "fsdp_plugin_args", None)
        # sync_module_states needs an accelerator device to broadcast from; it plays no part in the wrap policy
        if plugin_args:
            return FullyShardedDataParallelPlugin(**{**plugin_args, "sync_module_states": False})
        os.environ["FSDP_SYNC_MODULE_STATES"] = "false"
        return FullyShardedDataParallelPlugin()


def _wrapped_layers(plugin, model) -> int:
    """How many modules below the root the real FSDP wraps as units of their own."""
    if getattr(plugin, "fsdp_version", 1) == 2:
        from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy

        policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
        return sum(1 for m in list(model.modules())[1:] if policy is not None and policy(m))
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    plugin.set_auto_wrap_policy(model)
    wrapped = FSDP(model, auto_wrap_policy=plugin.auto_wrap_policy, use_orig_params=plugin.use_orig_params,
                   device_id=torch.device("cpu"))
    return sum(1 for m in wrapped.modules() if isinstance(m, FSDP)) - 1


# --- TC1201 fsdp-no-split-modules -------------------------------------------------------------------------------

def _prepare_policy(plugin: Any, model: Any) -> Any:
    if getattr(plugin, "fsdp_version", 1) == 2:
        from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy

        return fsdp2_prepare_auto_wrap_policy(plugin, model)
    plugin.set_auto_wrap_policy(model)
    return plugin.auto_wrap_policy


def test_no_split_modules_naming_a_missing_class_against_the_installed_accelerate(gloo, tmp_path) -> None:
    """accelerate < 1.16 raises ValueError (an error); 1.16+ leaves the name out and wraps no layer (a warning)."""
    from trainer_compat.rules.distributed import _accelerate_drops_absent

    example = FsdpNoSplitModules.fires[1]
    Model = _load(example, tmp_path)
    report = trainer_compat.check(Model, args=example.args)
    (finding,) = [f for f in report.findings if f.rule == "TC1201"]
    if not _accelerate_drops_absent():
        assert finding.severity.value == "error"
        with pytest.raises(ValueError, match="Could not find the transformer layer class LlamaDecoderLayer"):
            _prepare_policy(_plugin(example.args), Model())
        return
    assert finding.severity.value == "warning" and "whole model is one unit" in finding.message
    _prepare_policy(_plugin(example.args), Model())  # no raise
    assert _wrapped_layers(_plugin(example.args), Model()) == 0


def test_missing_no_split_modules_wraps_no_layer(gloo, tmp_path) -> None:
    example = FsdpNoSplitModules.fires[0]
    Model = _load(example, tmp_path)
    report = trainer_compat.check(Model, args=example.args)
    finding = next(f for f in report.findings if f.rule == "TC1201")
    assert finding.severity.value == "warning" and "['GPT2Block']" in finding.fix
    assert _wrapped_layers(_plugin(example.args), Model()) == 0  # one unit: the whole model


@pytest.mark.parametrize(("kind", "index", "units"), [("fires", 2, 2), ("silent", 3, 3)])
def test_a_partial_list_leaves_the_encoder_layers_in_the_root_unit(gloo, tmp_path, kind, index, units) -> None:
    """_no_split_modules naming the LM's blocks but not the audio encoder's layer: the real FSDP wraps the two
    GPT2Blocks only (TC1201 warns); naming both wraps the WhisperEncoderLayer too (silent)."""
    example = getattr(FsdpNoSplitModules, kind)[index]
    Model = _load(example, tmp_path)
    assert ("TC1201" in _codes(Model, args=example.args)) == (kind == "fires")
    assert _wrapped_layers(_plugin(example.args), Model()) == units


@pytest.mark.parametrize("index", [0, 1])
def test_aggregated_or_explicit_layer_classes_wrap_every_block(gloo, tmp_path, index) -> None:
    example = FsdpNoSplitModules.silent[index]
    Model = _load(example, tmp_path)
    assert "TC1201" not in _codes(Model, args=example.args)
    assert _wrapped_layers(_plugin(example.args), Model()) == 2  # the two GPT2Blocks


_NAMES_MISSING_CLASS = """
import torch.nn as nn
from trainer_compat.testing import tiny_causal_lm

class Model(nn.Module):
    _no_split_modules = ["LlamaDecoderLayer"]

    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=False)

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
"""


@pytest.mark.parametrize("source", [FsdpNoSplitModules.fires[0].code, _NAMES_MISSING_CLASS],
                         ids=["missing", "names-a-class-not-in-the-model"])
def test_patch_declares_the_sub_models_layer_classes(gloo, tmp_path, source) -> None:
    """The shim's `_no_split_modules` is the aggregate TC1201 asks for: after patch() the rule is silent and
    the real FSDP wraps every block (a missing list, or a class attribute naming a class not in the model)."""
    from trainer_compat.rules.base import Example
    from trainer_compat.shims import patch, unpatch

    example = Example(source, args=FsdpNoSplitModules.fires[0].args)
    model = _load(example, tmp_path)()
    assert "TC1201" in _codes(model, args=example.args)
    result = patch(model)
    try:
        assert "TC1201" not in _codes(model, args=example.args)
        assert model._no_split_modules == ["GPT2Block"] and "_no_split_modules" in result.applied
        assert _wrapped_layers(_plugin(example.args), model) == 2
    finally:
        unpatch(model)


def test_patch_says_what_to_write_for_an_instance_attribute(tmp_path) -> None:
    from trainer_compat.shims import patch, unpatch

    example = FsdpNoSplitModules.fires[1]  # self._no_split_modules = ['LlamaDecoderLayer'] in __init__
    model = _load(example, tmp_path)()
    result = patch(model)
    try:
        assert "self._no_split_modules = ['GPT2Block']" in result.notes.undelegable["_no_split_modules"]
        assert "TC1201" in _codes(model, args=example.args)  # said, not hidden
    finally:
        unpatch(model)


# --- TC1202 fsdp-mixed-requires-grad ----------------------------------------------------------------------------

def _fsdp1(fields: dict, model):
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    plugin = _plugin(fields)
    plugin.set_auto_wrap_policy(model)
    return FSDP(model, auto_wrap_policy=plugin.auto_wrap_policy, use_orig_params=plugin.use_orig_params,
                device_id=torch.device("cpu"))


def test_mixed_requires_grad_in_one_unit_fails_in_fsdp(gloo, tmp_path) -> None:
    example = FsdpMixedRequiresGrad.fires[0]
    Model = _load(example, tmp_path)
    assert "TC1202" in _codes(Model, args=example.args)
    with pytest.raises(ValueError, match="uniform `requires_grad`"):
        _fsdp1(example.args, Model())


@pytest.mark.parametrize("index", [0, 1])
def test_uniform_units_or_orig_params_flatten_and_train(gloo, tmp_path, index) -> None:
    example = FsdpMixedRequiresGrad.silent[index]
    Model = _load(example, tmp_path)
    assert "TC1202" not in _codes(Model, args=example.args)
    wrapped = _fsdp1(example.args, Model())
    ids = torch.randint(1, 100, (2, 8))
    wrapped(input_ids=ids, labels=ids).loss.backward()


# --- TC1203 zero3-device-map ------------------------------------------------------------------------------------

@contextmanager
def _zero(stage: int):
    """What TrainingArguments(deepspeed=...) registers (accelerate's HfDeepSpeedConfig, no deepspeed needed)."""
    from accelerate.utils.deepspeed import HfDeepSpeedConfig
    from transformers.integrations import deepspeed as hf_deepspeed

    config = HfDeepSpeedConfig({"zero_optimization": {"stage": stage}, "train_micro_batch_size_per_gpu": 1})
    hf_deepspeed.set_hf_deepspeed_config(config)
    try:
        assert hf_deepspeed.is_deepspeed_zero3_enabled() is (stage == 3)
        yield
    finally:
        hf_deepspeed.unset_hf_deepspeed_config()


def test_device_map_under_zero3_fails_in_from_pretrained(tmp_path) -> None:
    example = Zero3DeviceMap.fires[0]
    Model = _load(example, tmp_path)
    assert "TC1203" in _codes(Model, args=example.args)
    built = Model()  # built before the arguments: loads, and carries the map
    assert "TC1203" in _codes(built, args=example.args)
    with _zero(3), pytest.raises(ValueError, match="DeepSpeed Zero-3 is not compatible with"):
        Model()


def test_device_map_under_zero2_loads(tmp_path) -> None:
    example = Zero3DeviceMap.silent[0]
    Model = _load(example, tmp_path)
    assert "TC1203" not in _codes(Model, args=example.args)
    with _zero(2):
        Model()  # device_map without ZeRO-3: from_pretrained places the weights


# --- TC1204 ddp-unused-parameters -------------------------------------------------------------------------------

def _ddp_steps(model, find_unused: bool, steps: int = 2) -> None:
    from torch.nn.parallel import DistributedDataParallel as DDP

    wrapped = DDP(model.train(), find_unused_parameters=find_unused)
    ids = torch.randint(1, 100, (2, 8))
    for _ in range(steps):
        wrapped(input_ids=ids, labels=ids).loss.backward()


def test_unused_trainable_head_fails_under_ddp_without_find_unused(gloo, tmp_path) -> None:
    example = DdpUnusedParameters.fires[0]
    Model = _load(example, tmp_path)
    assert "TC1204" in _codes(Model, args=example.args, probe=True)
    with pytest.raises(RuntimeError, match="Expected to have finished reduction in the prior iteration"):
        _ddp_steps(Model(), find_unused=False)


def test_unused_trainable_head_trains_with_the_wrapper_default(gloo, tmp_path) -> None:
    example = DdpUnusedParameters.silent[0]
    Model = _load(example, tmp_path)
    assert "TC1204" not in _codes(Model, args=example.args, probe=True)
    _ddp_steps(Model(), find_unused=True)  # Trainer's default for a module that is not a PreTrainedModel


def test_every_parameter_used_trains_without_find_unused(gloo, tmp_path) -> None:
    example = DdpUnusedParameters.silent[1]
    Model = _load(example, tmp_path)
    assert "TC1204" not in _codes(Model, args=example.args, probe=True)
    _ddp_steps(Model(), find_unused=False)


# --- TC1205 ddp-reentrant-checkpointing -------------------------------------------------------------------------

def _checkpointed(Model, reentrant: bool):
    model = Model()
    model.gradient_checkpointing_enable({"use_reentrant": reentrant})
    return model


def test_reentrant_checkpointing_with_find_unused_fails_under_ddp(gloo, tmp_path) -> None:
    example = DdpReentrantCheckpointing.fires[0]
    Model = _load(example, tmp_path)
    assert "TC1205" in _codes(Model, args=example.args)
    with pytest.raises(RuntimeError, match="Expected to mark a variable ready only once"):
        _ddp_steps(_checkpointed(Model, reentrant=True), find_unused=True)


@pytest.mark.parametrize(("index", "reentrant", "find_unused"), [(0, False, True), (1, True, False)])
def test_non_reentrant_or_static_find_unused_trains_under_ddp(gloo, tmp_path, index, reentrant, find_unused) -> None:
    example = DdpReentrantCheckpointing.silent[index]
    Model = _load(example, tmp_path)
    assert "TC1205" not in _codes(Model, args=example.args)
    _ddp_steps(_checkpointed(Model, reentrant=reentrant), find_unused=find_unused)


# --- TC1206 inner-model-named-module ----------------------------------------------------------------------------

def _recursive_unwrap_in_trainer() -> bool:
    from transformers import Trainer

    return "unwrap_model(self.model, recursive=True)" in inspect.getsource(Trainer)


def test_inner_model_in_module_is_replaced_by_the_recursive_unwrap(tmp_path) -> None:
    from transformers.modeling_utils import unwrap_model

    example = InnerModelNamedModule.fires[1]  # FSDP + auto_find_batch_size: every release since 4.47
    Model = _load(example, tmp_path)
    version = installed_transformers()
    expected = version >= Version(RECURSIVE_UNWRAP)
    assert ("TC1206" in _codes(Model, args=example.args)) is expected
    assert _recursive_unwrap_in_trainer() is expected
    if version < Version(RECURSIVE_UNWRAP_EVERY_RUN_UNTIL) and expected:
        assert "TC1206" in _codes(Model, args={k: v for k, v in example.args.items() if k != "auto_find_batch_size"})
    wrapper = Model()
    unwrapped = unwrap_model(wrapper, recursive=True)  # the call Trainer makes under FSDP
    assert unwrapped is wrapper.module and type(unwrapped).__name__ == "GPT2LMHeadModel"


def test_inner_model_under_another_name_survives_the_recursive_unwrap(tmp_path) -> None:
    from transformers.modeling_utils import unwrap_model

    example = InnerModelNamedModule.silent[0]
    Model = _load(example, tmp_path)
    assert "TC1206" not in _codes(Model, args=example.args)
    wrapper = Model()
    assert unwrap_model(wrapper, recursive=True) is wrapper


def test_patch_completes_a_partial_list(gloo, tmp_path) -> None:
    from trainer_compat.rules.base import Example
    from trainer_compat.shims import patch, unpatch

    source = FsdpNoSplitModules.fires[2].code.replace(
        "        self._no_split_modules = ['GPT2Block']\n", "").replace(
        "class Model(nn.Module):\n", "class Model(nn.Module):\n    _no_split_modules = ['GPT2Block']\n")
    example = Example(source, args=FsdpNoSplitModules.fires[2].args)
    model = _load(example, tmp_path)()
    assert "TC1201" in _codes(model, args=example.args)
    patch(model)
    try:
        assert model._no_split_modules == ["GPT2Block", "WhisperEncoderLayer"]
        assert "TC1201" not in _codes(model, args=example.args)
        assert _wrapped_layers(_plugin(example.args), model) == 3
    finally:
        unpatch(model)


# --- TC1207 device-map-hidden ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "index"), [("fires", 0), ("silent", 0), ("silent", 1), ("silent", 2)])
def test_trainer_takes_a_hidden_dispatch_for_an_unplaced_model(tmp_path, kind, index) -> None:
    """The real Trainer's own decision (what it does next on GPUs: move every layer to args.device); on 4.x the
    wrapper's is_parallelizable + model_parallel flags tell it too."""
    from transformers import Trainer, TrainingArguments

    from trainer_compat.rules.distributed_ddp import DeviceMapHidden

    example = getattr(DeviceMapHidden, kind)[index]
    if installed_transformers() not in example.versions:
        pytest.skip(f"example holds for transformers {example.versions}")
    model = _load(example, tmp_path)()
    fires = "TC1207" in _codes(model)
    assert fires == (kind == "fires")
    trainer = Trainer(model=model, args=TrainingArguments(str(tmp_path / "out"), report_to="none", use_cpu=True))
    dispatched = getattr(model.model, "hf_device_map", None) is not None
    assert trainer.is_model_parallel == (dispatched and not fires)
    assert trainer.place_model_on_device == (not dispatched or fires)
