"""Runtime shims: the seed case end to end through the real Trainer, the zoo, and the promises of patch()."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

import trainer_compat
from tests.trainer_runner import Profile, run
from tests.zoo import ZOO, ExplicitWrapper, KwargsForward, TiedWrapper, higgs, higgs_class
from trainer_compat.shims import is_patched, patch, unpatch
from trainer_compat.shims.members import accepted
from trainer_compat.testing import tiny_causal_lm

SEED = {"gradient_checkpointing": True, "eval_strategy": "steps", "save_strategy": "steps",
        "load_best_model_at_end": True}
PROFILE = Profile("patched", SEED)
# zoo failures that delegation cannot fix: no inner model to delegate to, a top-level PEFT / compiled model
NOT_DELEGABLE = {"peft_lora_gpt2", "compiled_gpt2", "pure_own_loss", "pure_no_loss", "pure_flag_only",
                 "pure_flag_unread", "pure_normalising"}


def _fields(entry):
    return dict(PROFILE.fields(), predict_with_generate=True) if entry.trainer == "seq2seq" else PROFILE.fields()


def _recomputed(model, args) -> set[str]:
    from trainer_compat.checker import build_subject
    from trainer_compat.features import build_setup
    from trainer_compat.probe.batch import infer_inputs
    from trainer_compat.probe.runner import probe

    subject, setup = build_subject(model), build_setup(args)
    seen = probe(subject, setup, infer_inputs(subject, "trainer"))
    assert not seen.failures, seen.failures
    return set(seen.step.recomputed)


@pytest.mark.parametrize("name", ["HiggsAudioModelWrapper", "HiggsAudioModelWrapperWithShim"])
def test_seed_patched_trains_checkpoints_saves_reloads_and_evaluates(name, tmp_path):
    model = higgs(name)()
    result = patch(model, args=SEED)
    assert result.compatible, str(result)
    assert {"gradient_checkpointing_enable", "config", "state_dict", "forward"} <= set(result.applied)
    if name.endswith("Shim"):
        assert "gradient_checkpointing_enable" in result.replaced
    report = trainer_compat.check(model, args=SEED, probe=True)
    assert "TC604" not in report.codes() and report.compatible, str(report.findings)
    recomputed = _recomputed(model, SEED)
    assert any(n.startswith("model.transformer.h.") for n in recomputed), recomputed
    # two steps, checkpointing proven (torch.utils.checkpoint ran, no parameter lost its update), a checkpoint
    # saved and the best one reloaded, evaluation with eval_loss: the real Trainer, judged by tests/trainer_runner
    outcome = run(lambda: patch(higgs(name)(), args=SEED).model, "trainer", PROFILE, tmp_path)
    assert outcome.ok, str(outcome)


def test_save_model_and_reload_tied_wrapper(tmp_path):
    import transformers
    from safetensors.torch import load_file

    model = patch(TiedWrapper()).model
    trainer = transformers.Trainer(model=model, args=transformers.TrainingArguments(
        output_dir=str(tmp_path), report_to="none", use_cpu=True))
    trainer.save_model(str(tmp_path / "saved"))
    fresh = patch(TiedWrapper()).model
    fresh.load_state_dict(load_file(str(tmp_path / "saved" / "model.safetensors")), strict=True)
    assert fresh.model.lm_head.weight is fresh.model.transformer.wte.weight  # still tied after loading
    for key, value in model.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[key]), key


@pytest.mark.parametrize("entry", ZOO, ids=lambda e: e.name)
def test_zoo_after_patch(entry, tmp_path):
    if entry.missing():
        pytest.skip(f"needs {', '.join(entry.missing())}")
    fields = _fields(entry)
    profile = Profile("patched", fields)
    after = run(lambda: patch(entry.build(), args=fields, trainer=entry.trainer).model, entry.trainer, profile,
                tmp_path / "after")
    if entry.name not in NOT_DELEGABLE:
        assert after.ok, f"{entry.name} after patch: {after}"
        return
    before = run(entry.build, entry.trainer, profile, tmp_path / "before")
    assert after.status == before.status, f"{entry.name}: before {before}, after {after}"


@pytest.mark.parametrize("entry", ZOO, ids=lambda e: e.name)
def test_unpatch_restores_the_original_class(entry):
    if entry.missing():
        pytest.skip(f"needs {', '.join(entry.missing())}")
    model = entry.build()
    cls, keys = type(model), list(model.state_dict())
    before = trainer_compat.check(model, args=_fields(entry), trainer=entry.trainer)
    patch(model, args=_fields(entry), trainer=entry.trainer)
    assert list(model.state_dict()) == keys
    assert unpatch(model) is model and type(model) is cls and not is_patched(model)
    again = trainer_compat.check(model, args=_fields(entry), trainer=entry.trainer)
    assert [(f.rule, f.member) for f in again.findings] == [(f.rule, f.member) for f in before.findings]


def test_idempotent_and_instance_scoped():
    a, b = ExplicitWrapper(), ExplicitWrapper()
    first = patch(a)
    cls = type(a)
    second = patch(a)
    assert type(a) is cls and second.unchanged and second.applied == first.applied
    assert type(b) is ExplicitWrapper and not hasattr(b, "gradient_checkpointing_enable")
    assert "gradient_checkpointing_enable" not in vars(ExplicitWrapper)
    patch(b)
    assert type(b) is cls  # one class per plan, shared
    assert vars(a).keys() == vars(ExplicitWrapper()).keys()  # nothing written on the instance


def test_pickle_and_deepcopy_keep_the_patch_and_the_ties():
    model = patch(TiedWrapper()).model
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert type(clone) is type(model) and is_patched(clone)
        assert clone.model.lm_head.weight is clone.model.transformer.wte.weight
        assert clone.model.lm_head.weight is not model.model.lm_head.weight
        assert list(clone.state_dict()) == list(model.state_dict())
        assert type(unpatch(clone)) is TiedWrapper
    plain = pickle.loads(pickle.dumps(TiedWrapper()))
    assert type(plain) is TiedWrapper


def test_config_reads_and_writes_through_and_a_dict_config_comes_back():
    from tests.zoo import DictConfig

    model = DictConfig()
    patch(model)
    assert model.config is model.model.config
    replacement = copy.deepcopy(model.model.config)
    model.config = replacement
    assert model.model.config is replacement
    unpatch(model)
    assert isinstance(model.config, dict)


def test_forward_signature_keeps_columns_and_labels():
    from transformers.utils.generic import find_labels

    model = KwargsForward().eval()
    patch(model)
    import inspect

    names = list(inspect.signature(model.forward).parameters)
    assert {"input_ids", "attention_mask", "labels"} <= set(names)
    assert find_labels(type(model)) == ["labels"]
    batch = {"input_ids": torch.randint(2, 100, (1, 8))}
    assert torch.equal(model(**batch, labels=batch["input_ids"]).logits,
                       model.model(**batch, labels=batch["input_ids"]).logits)


class TwoLMs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.left = tiny_causal_lm(tie=False)
        self.right = tiny_causal_lm(tie=False)

    def forward(self, input_ids, labels=None):
        out = self.left(input_ids=input_ids, labels=labels)
        return {"loss": out.loss + self.right(input_ids=input_ids, labels=labels).loss}


def test_ambiguity_is_reported_and_delegate_to_settles_it():
    model = TwoLMs()
    result = patch(model)
    assert set(result.notes.ambiguous) == {"left", "right"} and "config" not in result.applied
    assert "delegate_to" in str(result)
    assert set(result.plan.carriers) == {"left", "right"}  # checkpointing goes to both anyway
    chosen = patch(model, delegate_to="right")
    assert model.config is model.right.config and not chosen.notes.ambiguous


def test_shims_never_swallow_errors():
    model = patch(ExplicitWrapper()).model

    def broken(*args, **kwargs):
        raise RuntimeError("inner failure")

    model.model.gradient_checkpointing_enable = broken
    with pytest.raises(RuntimeError, match="inner failure"):
        model.gradient_checkpointing_enable()

    def narrow(gradient_checkpointing_kwargs=None):
        return None

    assert accepted(narrow, {"gradient_checkpointing_kwargs": None, "every_n_layers": 1}) == {
        "gradient_checkpointing_kwargs": None}
    with pytest.raises(TypeError, match="every_n_layers=2"):
        accepted(narrow, {"every_n_layers": 2})


def test_undelegable_member_comes_with_code_to_write():
    from tests.zoo import TinyLM

    result = patch(TinyLM(), args={"gradient_checkpointing": True})
    assert "torch.utils.checkpoint.checkpoint" in result.undelegable["gradient_checkpointing_enable"]
    assert not result.compatible and "TC001" in {f.rule for f in result.left}


def test_exported_from_the_package_root():
    assert trainer_compat.patch is patch and trainer_compat.unpatch is unpatch
    assert higgs_class("HiggsAudioModelWrapper") is not None


def test_patch_lets_a_causal_lm_adapter_build_and_train():
    """TC1001: PeftModelForCausalLM reads prepare_inputs_for_generation; the shim delegates it to the inner LM."""
    peft = pytest.importorskip("peft")
    config = {"r": 2, "target_modules": ["c_attn"], "task_type": "CAUSAL_LM"}
    model = KwargsForward()
    with pytest.raises(AttributeError, match="prepare_inputs_for_generation"):
        peft.get_peft_model(copy.deepcopy(model), peft.LoraConfig(**config))
    assert "TC1001" in {f.rule for f in trainer_compat.check(model, peft=config).findings}
    patch(model)
    assert "TC1001" not in {f.rule for f in trainer_compat.check(model, peft=config).findings}
    adapted = peft.get_peft_model(model, peft.LoraConfig(**config))
    ids = torch.randint(1, 50, (2, 8))
    adapted(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids).loss.backward()
    assert all(p.grad is not None for n, p in adapted.named_parameters() if "lora_B" in n)


class _PromptWrapper(nn.Module):
    """A plain wrapper: no device, no prepare_inputs_for_generation (a prompt-learning adapter reads both)."""

    def __init__(self) -> None:
        super().__init__()
        self.model = tiny_causal_lm(tie=False)

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **kwargs)


def test_patch_lets_a_prompt_learning_adapter_build_and_train(tmp_path):
    """TC1001 names what a prompt-learning adapter reads, in the order the real get_peft_model reads it: `config`
    (peft >= 0.14: AttributeError; 0.13: ValueError 'Please specify `num_layers`'), then `device`, then
    prepare_inputs_for_generation; after patch() it builds and the real Trainer trains a step."""
    peft = pytest.importorskip("peft")
    from transformers import Trainer, TrainingArguments

    config = {"peft_type": "PROMPT_TUNING", "task_type": "CAUSAL_LM", "num_virtual_tokens": 4}
    model = _PromptWrapper()
    found = [f for f in trainer_compat.check(model, peft=config).findings if f.rule == "TC1001"]
    assert [f.member for f in found] == ["config", "device", "prepare_inputs_for_generation"]
    error = ValueError if "raises ValueError" in found[0].message else AttributeError
    with pytest.raises(error, match=r"'config'|num_layers"):
        peft.get_peft_model(_PromptWrapper(), peft.get_peft_config(config))
    result = patch(model)
    assert {"config", "device", "prepare_inputs_for_generation"} <= set(result.applied)
    assert "TC1001" not in {f.rule for f in trainer_compat.check(model, peft=config).findings}
    adapted = peft.get_peft_model(model, peft.get_peft_config(config))
    rows = [{"input_ids": torch.randint(2, 100, (8,)), "labels": torch.randint(2, 100, (8,))} for _ in range(2)]
    args = TrainingArguments(str(tmp_path), max_steps=1, save_strategy="no", report_to="none", use_cpu=True,
                             per_device_train_batch_size=2, disable_tqdm=True)
    before = adapted.prompt_encoder["default"].embedding.weight.detach().clone()
    Trainer(model=adapted, args=args, train_dataset=rows).train()
    assert not torch.equal(before, adapted.prompt_encoder["default"].embedding.weight.detach())


def test_a_peft_model_is_patched_through_its_base_model(tmp_path):
    """get_peft_model(wrapper) reaches the wrapper's members through PeftModel.__getattr__: patching the base
    model gives the PeftModel what Trainer calls, and the real Trainer then checkpoints (probe: recomputation)."""
    peft = pytest.importorskip("peft")
    adapted = peft.get_peft_model(ExplicitWrapper(), peft.LoraConfig(r=2, target_modules=["c_attn"]))
    result = patch(adapted, args=SEED_GC)
    try:
        assert "gradient_checkpointing_enable" in result.applied and "get_base_model()" in str(result)
        assert "TC001" in {f.rule for f in result.before.findings}
        assert "TC001" not in {f.rule for f in result.after.findings}
        assert is_patched(adapted.get_base_model()) and type(adapted).__name__ == "PeftModel"
        assert _recomputed(adapted, SEED_GC)
    finally:
        unpatch(adapted)
    assert not is_patched(adapted.get_base_model())


def test_a_compiled_model_is_patched_through_the_module_it_compiles():
    compiled = torch.compile(ExplicitWrapper())
    result = patch(compiled, args=SEED_GC)
    try:
        assert "_orig_mod" in str(result) and is_patched(compiled._orig_mod)
        assert "TC001" not in {f.rule for f in result.after.findings}
        assert callable(compiled.gradient_checkpointing_enable)  # what Trainer finds on the compiled model
    finally:
        unpatch(compiled)
    assert not is_patched(compiled._orig_mod)


SEED_GC = {"gradient_checkpointing": True}


def test_patched_forward_draws_no_tc101_and_keeps_what_trainer_read_of_its_kwargs(tmp_path):
    """The pass-through forward names the inner forward's inputs without its **kwargs (issue #12: patch()'s own
    shim drew TC101); Trainer still passes num_items_in_batch on exactly when it did before the patch."""
    import inspect

    from transformers import Trainer, TrainingArguments

    def accepts_loss_kwargs(model) -> bool:
        args = TrainingArguments(str(tmp_path), report_to="none", use_cpu=True)
        return Trainer(model=model, args=args).model_accepts_loss_kwargs

    model = KwargsForward()
    before = accepts_loss_kwargs(KwargsForward())
    assert "TC101" in trainer_compat.check(model).codes()
    result = patch(model)
    assert "forward" in result.applied and "TC101" not in result.after.codes()
    assert "TC101" not in trainer_compat.check(model).codes()
    params = inspect.signature(model.forward).parameters.values()
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    assert accepts_loss_kwargs(model) == before
