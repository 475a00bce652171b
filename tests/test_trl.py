"""The TRL rules against the real SFTTrainer (tiny GPT-2, offline word-level tokenizer, CPU): where a rule fires,
SFTTrainer() or its first step really fails (or, TC1103, really trains something else than the forward); where
it is silent, it really trains. On a TRL release without the hazard (TRL 0.12 on the 4.46 line) the rule must be
silent and the same model must train."""

from __future__ import annotations

import functools
import math
import warnings

import pytest
import torch

import trainer_compat
from trainer_compat.analysis import installed_trl, replaces_forward, sft_computes_the_loss, sft_keeps_fixed_columns
from trainer_compat.cli import main
from trainer_compat.protocol import trl as boundaries
from trainer_compat.rules import trl as rules
from trainer_compat.rules.trl import SftForwardBypassed, SftForwardUseCache, SftFusedLmHead, SftInitMembers
from trainer_compat.versions import installed_transformers

trl = pytest.importorskip("trl", reason="the TRL rules are tested against real trl")
datasets = pytest.importorskip("datasets", reason="SFTTrainer takes a datasets.Dataset")



def _default_loss_type(args: dict) -> object:
    from trainer_compat.features import build_setup

    return getattr(build_setup(args, "sft").args, "loss_type", None)


def _patched(args: dict) -> bool:
    """Whether this TRL's SFTTrainer replaces model.forward with its own LM head (1.15+; 1.7+ chunked_nll)."""
    return replaces_forward(installed_trl(), _default_loss_type(args))


# rule: (whether the installed TRL has the hazard for the example's args, where SFTTrainer fails, the exception)
EXPECTED = {
    SftInitMembers: (lambda args: installed_trl() >= boundaries.TAGS_TRL, "init", AttributeError),
    SftFusedLmHead: (_patched, "init or step", AttributeError),  # the head is read in __init__ before TRL 1.15
    SftForwardUseCache: (lambda args: installed_trl() >= boundaries.USE_CACHE_TRL, "step", TypeError),
    SftForwardBypassed: (_patched, "measured", None),
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch) -> None:
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_DISABLE_TELEMETRY", True)  # TRL's trainers report usage otherwise
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, **{f"w{i}": i + 2 for i in range(98)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


IDS = torch.randint(2, 100, (4, 8), generator=torch.Generator().manual_seed(0))


def _train(model: torch.nn.Module, tmp_path, args: dict, trainer: str = "sft") -> float | None:
    """SFTTrainer(...) and one step on the whole (pre-tokenized) data set; the step's logged loss."""
    fields = dict(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=len(IDS),
                  report_to="none", save_strategy="no", logging_steps=1, bf16=False, use_cpu=True,
                  disable_tqdm=True, **args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sft = trl.SFTTrainer(model=model, args=trl.SFTConfig(**fields), processing_class=_tokenizer(),
                             train_dataset=datasets.Dataset.from_dict({"input_ids": IDS.tolist()}))
        sft.train()
    return next(h["loss"] for h in sft.state.log_history if "loss" in h)


def _count_forward_calls(model: torch.nn.Module, monkeypatch) -> list:
    """Record the calls of the class's own forward (signature kept: Trainer inspects it)."""
    calls: list = []
    original = type(model).forward

    @functools.wraps(original)
    def forward(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "forward", forward)
    return calls


def _fired(rule, example, tmp_path) -> bool:
    report = trainer_compat.check(example.load(tmp_path), args=example.args, trainer=example.trainer)
    return rule.code in {f.rule for f in report.findings}


def _cases(kind: str) -> list:
    return [pytest.param(rule, example, id=f"{rule.code}-{kind}-{i}")
            for rule in EXPECTED for i, example in enumerate(getattr(rule, kind)) if example.trainer == "sft"]


@pytest.mark.parametrize(("rule", "example"), _cases("fires"))
def test_real_sft_fails_where_the_rule_fires(rule, example, tmp_path, monkeypatch) -> None:
    hazard, phase, error = EXPECTED[rule]
    fired = _fired(rule, example, tmp_path)
    assert fired == hazard(example.args), f"TRL {installed_trl()}: {rule.code} fired={fired}"
    model = example.load(tmp_path)()
    if phase == "measured":  # the wrapper's forward (which adds 1.0 to the loss) never runs in training
        calls = _count_forward_calls(model, monkeypatch)
        assert math.isfinite(_train(model, tmp_path, example.args))
        assert (calls == []) == fired, f"the wrapper's forward ran {len(calls)} times"
    elif not fired:  # a TRL release without the hazard: the same model trains
        assert math.isfinite(_train(model, tmp_path, example.args))
    else:
        with pytest.raises(error) as raised:
            _train(model, tmp_path, example.args)
        frames = [f.name for f in raised.traceback]
        assert phase == "init or step" or ("__init__" in frames) == (phase == "init"), frames


@pytest.mark.parametrize(("rule", "example"), _cases("silent"))
def test_real_sft_trains_where_the_rule_is_silent(rule, example, tmp_path) -> None:
    assert not _fired(rule, example, tmp_path)
    if (example.args.get("label_smoothing_factor") and _patched(example.args)
            and installed_trl() < boundaries.FUSED_HEAD_TRL):
        pytest.skip("TRL 1.7-1.14 with chunked_nll and label smoothing reads `outputs.num_valid_tokens` from the "
                    "unpatched forward: fails for every model (a TRL bug, not the wrapper's)")
    # a PreTrainedModel takes num_items_in_batch: its logged loss is not the plain mean, only finite
    assert math.isfinite(_train(example.load(tmp_path)(), tmp_path, example.args))


def test_checkpointing_is_on_by_default_from_trl_0_22(tmp_path) -> None:
    """SFTConfig's own default: Trainer's checkpointing protocol (TC001) applies without any --args."""
    code = rules.wrapper(rules._CONFIG + rules._GENERATION + rules._TAGS + rules._BACKBONE + rules._HEAD)
    example = rules.sft(code)
    on = installed_trl() >= boundaries.USE_CACHE_TRL
    assert _fired(type("TC001", (), {"code": "TC001"}), example, tmp_path) == on
    model = example.load(tmp_path)()
    if on:
        with pytest.raises(AttributeError, match="gradient_checkpointing_enable"):
            _train(model, tmp_path, {})
    else:
        _train(model, tmp_path, {})


LOSS_TYPES = [{}] + ([{"loss_type": "nll"}] if "loss_type" in getattr(trl.SFTConfig, "__dataclass_fields__", {})
                      else [])


@pytest.mark.parametrize("args", LOSS_TYPES, ids=lambda a: a.get("loss_type", "default"))
def test_use_cache_reaches_an_unpatched_forward_at_every_step(args, tmp_path) -> None:
    """TRL 0.22+: unless TRL's own LM head replaced it, the forward gets use_cache=False at every step."""
    example = rules.sft(rules.wrapper(rules._FULL), **args)
    fired = _fired(SftForwardUseCache, example, tmp_path)
    assert fired == (installed_trl() >= boundaries.USE_CACHE_TRL and not _patched(args))
    model = example.load(tmp_path)()
    if fired:
        with pytest.raises(TypeError, match="use_cache"):
            _train(model, tmp_path, args)
    else:
        assert math.isfinite(_train(model, tmp_path, args))


def test_cli_trainer_sft(tmp_path, capsys) -> None:
    path = tmp_path / "plain_wrapper.py"
    path.write_text(rules.wrapper(), encoding="utf-8")
    code = main(["check", f"{path}:Model", "--trainer", "sft", "--no-isolate", "--format", "concise"])
    out = capsys.readouterr().out
    expected = (installed_trl() >= boundaries.TAGS_TRL, _patched({}), _patched({}))
    assert ("TC1101" in out, "TC1102" in out, "TC1103" in out) == expected, out
    assert code == (1 if installed_trl() >= boundaries.USE_CACHE_TRL else 0)


def test_cli_probe_with_sft_is_a_usage_error(tmp_path, capsys) -> None:
    path = tmp_path / "plain_lm.py"
    path.write_text(rules.PLAIN_LM, encoding="utf-8")
    code = main(["check", f"{path}:Model", "--trainer", "sft", "--probe", "--no-isolate"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "SFTTrainer" in err, err


def test_sft_without_trl_is_a_usage_error(monkeypatch) -> None:
    import sys

    from trainer_compat.errors import UsageError
    from trainer_compat.features import build_setup

    monkeypatch.setitem(sys.modules, "trl", None)  # import trl raises ImportError
    with pytest.raises(UsageError, match="needs TRL"):
        build_setup({}, "sft")


_DROPPING = rules.wrapper(rules._FULL).replace(
    "    def forward(self, input_ids, attention_mask=None, labels=None):\n"
    "        out = self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)\n",
    "    def forward(self, **kwargs):  # names no column; drops num_items_in_batch\n"
    "        kwargs.pop('num_items_in_batch', None)\n"
    "        out = self.model(**kwargs)\n")


def test_trainer_forward_rules_follow_what_sft_trainer_really_does(tmp_path) -> None:
    """TC101 (columns from the forward's signature) and TC103 (loss kwargs) are Trainer's behaviour; SFTTrainer
    keeps its own columns (TRL >= 0.2x) and, where it replaces forward, normalises the loss itself."""
    from trainer_compat.features import build_setup
    from trainer_compat.rules.base import Context, Example
    from trainer_compat.subject import Subject

    assert "def forward(self, **kwargs)" in _DROPPING
    Model = Example(_DROPPING).load(tmp_path)
    args = {"gradient_accumulation_steps": 2}
    codes = {f.rule for f in trainer_compat.check(Model, args=args, trainer="sft").findings}
    ctx = Context(subject=Subject.of(Model()), setup=build_setup(args, "sft"), version=installed_transformers())
    assert ("TC101" in codes) == (not sft_keeps_fixed_columns(ctx))
    assert ("TC103" not in codes) or not sft_computes_the_loss(ctx)
    if "TC101" in codes:
        with pytest.raises(ValueError, match="No columns in the dataset match"):
            _train(Model(), tmp_path, args)
    else:
        assert math.isfinite(_train(Model(), tmp_path, args))


def test_patch_gives_a_wrapper_what_sft_trainer_init_reads(tmp_path) -> None:
    """TC1101: the shims delegate config, generation_config and add_model_tags; the real SFTTrainer() is then
    built. `base_model` is left to the user (TC1102): exposing it makes TRL's head bypass the forward (TC1103)."""
    from trainer_compat.shims import patch, unpatch

    example = SftInitMembers.fires[0]
    if installed_transformers() not in example.versions or installed_trl() < boundaries.TAGS_TRL:
        pytest.skip("this TRL reads none of them unguarded")
    model = example.load(tmp_path)()
    assert "TC1101" in {f.rule for f in trainer_compat.check(model, trainer="sft").findings}
    with pytest.raises(AttributeError):
        _build(model, tmp_path)
    result = patch(model, trainer="sft")
    try:
        assert {"config", "generation_config", "add_model_tags"} <= set(result.applied)
        assert "TC1101" not in {f.rule for f in trainer_compat.check(model, trainer="sft").findings}
        _build(model, tmp_path)
    finally:
        unpatch(model)


def _build(model: torch.nn.Module, tmp_path) -> None:
    fields = dict(output_dir=str(tmp_path / "out"), max_steps=1, report_to="none", save_strategy="no", bf16=False,
                  use_cpu=True, disable_tqdm=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trl.SFTTrainer(model=model, args=trl.SFTConfig(**fields), processing_class=_tokenizer(),
                       train_dataset=datasets.Dataset.from_dict({"input_ids": IDS.tolist()}))
