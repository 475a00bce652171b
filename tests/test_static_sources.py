"""``--static`` reads what a full check imports: the arguments class's fields, library bases and transformers' label
rules from the installed source. Each reading is held to the real thing on the installed release."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from trainer_compat.features import build_setup
from trainer_compat.static_args import static_arguments

# What the rules read of the arguments (features.py, rules/*): the static reading must give the same answer.
READ_BY_RULES = ("save_strategy", "eval_strategy", "do_eval", "remove_unused_columns", "label_smoothing_factor",
                 "gradient_accumulation_steps", "neftune_noise_alpha", "load_best_model_at_end",
                 "gradient_checkpointing", "gradient_checkpointing_kwargs", "label_names", "predict_with_generate",
                 "torch_compile", "push_to_hub", "resume_from_checkpoint", "activation_checkpointing",
                 "ddp_find_unused_parameters", "metric_for_best_model")
CASES = [("trainer", {}), ("trainer", {"gradient_checkpointing": True, "eval_strategy": "steps"}),
         ("trainer", {"gradient_checkpointing_kwargs": {"use_reentrant": False}, "remove_unused_columns": False,
                      "gradient_accumulation_steps": 4, "label_smoothing_factor": 0.1}),
         ("seq2seq", {"predict_with_generate": True}), ("sft", {}), ("dpo", {}), ("reward", {})]


def _plain(value):
    value = getattr(value, "value", value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value if isinstance(value, (bool, int, float, dict, type(None))) else str(value)


@pytest.mark.parametrize(("trainer", "given"), CASES, ids=str)
def test_static_arguments_agree_with_the_real_class(trainer, given):
    if trainer in ("sft", "dpo", "reward"):
        pytest.importorskip("trl")
    real = build_setup(dict(given), trainer)
    static = build_setup(dict(given), trainer, static=True)
    assert static.features == real.features
    for name in READ_BY_RULES:
        assert _plain(getattr(static.args, name, "<absent>")) == _plain(getattr(real.args, name, "<absent>")), name


def test_an_unknown_field_is_refused_as_the_constructor_refuses_it():
    from trainer_compat.errors import UsageError

    with pytest.raises(UsageError, match="unexpected keyword argument 'gradient_checkpoint'"):
        static_arguments({"gradient_checkpoint": True}, "trainer")


def test_label_rules_agree_with_transformers(tmp_path):
    """forward.label_names / can_return_loss before transformers is loaded give what transformers' own answer."""
    (tmp_path / "classes.py").write_text(textwrap.dedent("""
        import torch.nn as nn

        class Plain(nn.Module):
            def forward(self, input_ids, labels=None, label_mask=None):
                pass

        class ForQuestionAnswering(nn.Module):
            def forward(self, input_ids, start_positions=None, end_positions=None):
                pass

        class ReturnsLoss(nn.Module):
            def forward(self, input_ids, return_loss=True):
                pass

        class NoLabels(nn.Module):
            def forward(self, **kwargs):
                pass
    """))
    code = textwrap.dedent("""
        import sys, json
        sys.path.insert(0, sys.argv[1])
        import classes
        from trainer_compat.signature import can_return_loss, label_names
        names = ("Plain", "ForQuestionAnswering", "ReturnsLoss", "NoLabels")
        before = {n: (label_names(getattr(classes, n)), can_return_loss(getattr(classes, n))) for n in names}
        assert "transformers" not in sys.modules
        import transformers
        after = {n: (label_names(getattr(classes, n)), can_return_loss(getattr(classes, n))) for n in names}
        print(json.dumps([before, after]))
    """)
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    before, after = json.loads(done.stdout)
    assert before == after
    assert before["Plain"] == [["labels", "label_mask"], False]
    assert before["ForQuestionAnswering"][0] == ["start_positions", "end_positions"]
    assert before["ReturnsLoss"] == [[], True]


def test_library_bases_are_rebuilt_from_source_and_named_as_installed():
    from trainer_compat.library_source import declaring_file

    module_path, module, name = declaring_file("torch.nn.Module")
    assert (module, name) == ("torch.nn.modules.module", "Module") and module_path.name == "module.py"
    _, module, _ = declaring_file("transformers.PreTrainedModel")
    assert module == "transformers.modeling_utils"
    assert declaring_file("transformers.NoSuchClassAnywhere") is None


def test_a_file_is_parsed_once_however_many_of_its_classes_are_targets(tmp_path):
    from trainer_compat.static_mode import _parsed, static_subject

    path = tmp_path / "many.py"
    path.write_text("import torch.nn as nn\n\n" + "".join(
        f"class M{i}(nn.Module):\n    def forward(self, input_ids, labels=None):\n        pass\n\n" for i in range(5)))
    before = _parsed.cache_info().misses
    names = [static_subject(f"{path}:M{i}").cls.__name__ for i in range(5)]
    assert names == [f"M{i}" for i in range(5)]
    assert _parsed.cache_info().misses - before == 1
    path.write_text(path.read_text() + "\nclass M5(nn.Module):\n    pass\n")  # an edited file is read again
    assert static_subject(f"{path}:M5").cls.__name__ == "M5"
