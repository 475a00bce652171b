"""No false alarms from the dry-run: it runs the user's Trainer class on their data, builds a batch the model would
really get, and reports a failure its own invention could explain as inconclusive (TC609), never as an error.

Each case is judged against the real Trainer on the same model (issue #11's reproductions)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from torch import nn

import trainer_compat
from trainer_compat.findings import Severity
from trainer_compat.testing import tiny_encoder

VOCAB = 100


def tiny_llama() -> nn.Module:
    config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                      num_key_value_heads=2, intermediate_size=32, max_position_embeddings=64)
    return transformers.LlamaForCausalLM(config)


class OptionalInputIds(nn.Module):
    """forward(input_ids=None, ...) around a Llama: the inner model needs input_ids all the same."""

    def __init__(self) -> None:
        super().__init__()
        self.model = tiny_llama()

    def forward(self, input_ids=None, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


class EncoderClassifier(nn.Module):
    """BERT encoder + linear head: labels are one class index per example."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = tiny_encoder()
        self.head = nn.Linear(32, 3)

    def forward(self, input_ids, attention_mask=None, labels=None):
        logits = self.head(self.encoder(input_ids=input_ids, attention_mask=attention_mask).pooler_output)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


class EntityMarkers(EncoderClassifier):
    """Relation extraction: reads the hidden states at the [E1]/[E2] marker tokens (ids 5 and 6)."""

    def forward(self, input_ids, attention_mask=None, labels=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        rows = torch.arange(input_ids.shape[0])
        e1 = (input_ids == 5).nonzero()[:, 1].view(-1)[rows]
        logits = self.head(hidden[rows, e1])
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


class LogitsOnly(nn.Module):
    """Returns logits; the user's Trainer subclass computes the loss (LLaVA / Higgs-Audio training forks). It names
    ``labels`` so that Trainer keeps the column, and leaves them to the trainer."""

    def __init__(self) -> None:
        super().__init__()
        self.model = tiny_llama()

    def forward(self, input_ids, attention_mask=None, labels=None):
        return {"logits": self.model(input_ids=input_ids, attention_mask=attention_mask).logits}


class LossTrainer(transformers.Trainer):
    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs["logits"]
        loss = nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten())
        return (loss, outputs) if return_outputs else loss


def lm_rows(n: int = 4, extra: bool = False) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(n):
        ids = torch.randint(3, VOCAB, (8,), generator=g)
        row = {"input_ids": ids, "attention_mask": torch.ones(8, dtype=torch.long), "labels": ids.clone()}
        rows.append({**row, "text": "a caption"} if extra else row)
    return rows


def marker_rows(with_markers: bool = True) -> list[dict]:
    ids = torch.tensor([7, 5, 9, 10, 6, 11, 12, 13]) if with_markers else torch.tensor([7, 8, 9, 10, 11, 12, 13, 14])
    return [{"input_ids": ids, "attention_mask": torch.ones(8, dtype=torch.long), "labels": torch.tensor(1)}] * 4


def train(model: nn.Module, rows: list, tmp_path: Path, cls=transformers.Trainer, **fields) -> None:
    """The judge: the real Trainer, two steps on the same kind of data."""
    args = transformers.TrainingArguments(str(tmp_path / "real"), max_steps=2, per_device_train_batch_size=2,
                                          report_to="none", use_cpu=True, save_strategy="no", **fields)
    cls(model=model, args=args, train_dataset=rows).train()


def errors(report) -> list[str]:
    return [f"{f.rule}: {f.message}" for f in report.findings if f.severity is Severity.ERROR]


def test_an_optional_input_ids_parameter_is_still_given(tmp_path) -> None:
    report = trainer_compat.check(OptionalInputIds, probe=True)
    assert errors(report) == [] and "TC609" not in report.codes()
    train(OptionalInputIds(), lm_rows(), tmp_path)


def test_classifier_labels_are_class_indices(tmp_path) -> None:
    report = trainer_compat.check(EncoderClassifier, probe=True)
    assert errors(report) == [] and "TC609" not in report.codes()
    train(EncoderClassifier(), marker_rows(), tmp_path)


def test_a_failure_the_synthetic_batch_explains_is_inconclusive_not_an_error(tmp_path) -> None:
    report = trainer_compat.check(EntityMarkers, probe=True)
    assert report.compatible, errors(report)
    (finding,) = [f for f in report.findings if f.rule == "TC609"]
    assert finding.severity is Severity.INFO and finding.details["inconclusive"]
    assert "synthesized" in finding.message and "--data" in (finding.fix or "")
    assert "IndexError" in finding.message
    train(EntityMarkers(), marker_rows(), tmp_path)  # the real run with real data trains


def test_the_users_data_settles_it_both_ways(tmp_path) -> None:
    settled = trainer_compat.check(EntityMarkers, probe=True, data=marker_rows())
    assert settled.compatible and "TC609" not in settled.codes(), errors(settled)
    broken = trainer_compat.check(EntityMarkers, probe=True, data=lambda: marker_rows(with_markers=False))
    assert "TC601" in broken.codes() and not broken.compatible
    with pytest.raises(IndexError):
        train(EntityMarkers(), marker_rows(with_markers=False), tmp_path)


def test_a_failure_outside_the_forward_stays_an_error() -> None:
    report = trainer_compat.check(OptionalInputIds, probe=True, args={"gradient_checkpointing": True})
    assert "TC601" in {f.rule for f in report.findings if f.severity is Severity.ERROR}
    assert "TC609" not in report.codes()


def test_preflight_catches_what_the_users_trainer_class_really_hits(tmp_path) -> None:
    class Unnamed(LogitsOnly):
        def forward(self, input_ids, attention_mask=None):  # no labels parameter: Trainer drops the column
            return super().forward(input_ids, attention_mask)

    args = transformers.TrainingArguments(str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2,
                                          report_to="none", use_cpu=True, save_strategy="no")
    trainer = LossTrainer(model=Unnamed(), args=args, train_dataset=lm_rows())
    report = trainer_compat.preflight(trainer)
    assert any("KeyError: 'labels'" in e for e in errors(report)), report.findings
    with pytest.raises(KeyError, match="labels"):
        trainer.train()


def test_preflight_runs_the_users_trainer_class(tmp_path) -> None:
    args = transformers.TrainingArguments(str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2,
                                          report_to="none", use_cpu=True, save_strategy="no")
    trainer = LossTrainer(model=LogitsOnly(), args=args, train_dataset=lm_rows())
    report = trainer_compat.preflight(trainer)
    assert report.compatible, errors(report)
    assert not {"TC104", "TC601", "TC602"} & report.codes()
    trainer.train()


def test_the_stock_trainer_on_the_same_model_fails_and_is_reported(tmp_path) -> None:
    report = trainer_compat.check(LogitsOnly, probe=True, data=lm_rows())
    assert "TC601" in report.codes() and not report.compatible
    with pytest.raises(ValueError, match="did not return a loss"):
        train(LogitsOnly(), lm_rows(), tmp_path)


def test_check_with_the_trainer_class_and_data_agrees_with_preflight() -> None:
    report = trainer_compat.check(LogitsOnly, trainer=LossTrainer, probe=True, data=lm_rows(extra=True))
    assert report.compatible, errors(report)
    assert report.trainer == "LossTrainer"


def test_preflight_on_peft_reads_the_base_models_signature(tmp_path) -> None:
    peft = pytest.importorskip("peft", reason="a PeftModel target needs peft")
    model = peft.get_peft_model(tiny_llama(), peft.LoraConfig(task_type="CAUSAL_LM", r=4,
                                                               target_modules=["q_proj", "v_proj"]))
    args = transformers.TrainingArguments(str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2,
                                          report_to="none", use_cpu=True, save_strategy="no")
    datasets = pytest.importorskip("datasets", reason="preflight is judged on a datasets.Dataset here")
    rows = datasets.Dataset.from_list([{k: v.tolist() if hasattr(v, "tolist") else v for k, v in r.items()}
                                       for r in lm_rows(extra=True)])
    trainer = transformers.Trainer(model=model, args=args, train_dataset=rows)
    report = trainer_compat.preflight(trainer, raise_on_error=True)
    assert [f.severity for f in report.findings if f.rule == "TC701"] == [Severity.INFO]
    trainer.train()


CLI_TARGETS = '''
import torch
from tests.test_attribution import LogitsOnly, LossTrainer, lm_rows

def make_data():
    return lm_rows(extra=True)

def collate(rows):
    return {k: torch.stack([r[k] for r in rows]) for k in ("input_ids", "attention_mask", "labels")}
'''


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainer_compat", "check", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_cli_takes_the_trainer_class_data_and_collator(tmp_path) -> None:
    (tmp_path / "run.py").write_text(CLI_TARGETS, encoding="utf-8")
    root = Path(__file__).resolve().parent.parent
    spec = f"{tmp_path / 'run.py'}"
    base = [f"{spec}:LogitsOnly", "--format", "concise", "--isolate"]
    plain = _cli(*base, "--probe", "--data", f"{spec}:make_data", cwd=root)
    assert plain.returncode == 1 and "TC601" in plain.stdout, plain.stdout + plain.stderr
    own = _cli(*base, "--probe", "--trainer", f"{spec}:LossTrainer", "--data", f"{spec}:make_data",
               "--collator", f"{spec}:collate", cwd=root)
    assert own.returncode == 0, own.stdout + own.stderr
    here = "tests/test_attribution.py"
    static = _cli(f"{here}:LogitsOnly", "--static", "--trainer", f"{here}:LossTrainer", "--format", "concise",
                  cwd=root)
    assert static.returncode == 0 and "TC104" not in static.stdout, static.stdout + static.stderr
    stock = _cli(f"{here}:LogitsOnly", "--static", "--format", "concise", cwd=root)
    assert stock.returncode == 1 and "TC104" in stock.stdout, stock.stdout + stock.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--trainer", "nope"], "unknown trainer 'nope'"),
    (["--trainer", "torch.nn:Linear"], "is not a transformers.Trainer subclass"),
    (["--collator", "x.py:c"], "--collator collates --data"),
    (["--data", "no_such_module_tc:rows"], "--data:"),
])
def test_bad_trainer_data_or_collator_is_one_line_and_exit_2(args, message, tmp_path) -> None:
    root = Path(__file__).resolve().parent.parent
    result = _cli("examples/higgs_audio_wrapper.py:HiggsAudioModelWrapper", *args, cwd=root)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("declared", [False, True])
def test_a_head_unfrozen_by_hand_under_lora_is_lost_at_save(declared, tmp_path) -> None:
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["q_proj", "v_proj"],
                             modules_to_save=["lm_head"] if declared else None)
    model = peft.get_peft_model(tiny_llama(), config)
    if not declared:
        model.base_model.model.lm_head.weight.requires_grad_(True)  # "also train the head"
    report = trainer_compat.check(model, probe=True)
    assert ("TC606" in {f.rule for f in report.findings if f.severity is Severity.ERROR}) is not declared
    # the judge: train for real (lr high enough to move the head), save, reload on a fresh base
    args = transformers.TrainingArguments(str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=2,
                                          learning_rate=0.1, report_to="none", use_cpu=True, save_strategy="no")
    trainer = transformers.Trainer(model=model, args=args, train_dataset=lm_rows())
    trainer.train()
    trainer.save_model(str(tmp_path / "saved"))
    trained = model.get_base_model().lm_head.weight.detach().clone()
    torch.manual_seed(0)
    reloaded = peft.PeftModel.from_pretrained(tiny_llama(), str(tmp_path / "saved"))
    kept = torch.equal(reloaded.get_base_model().lm_head.weight.detach(), trained)
    assert kept is declared


def _unchanged_trainables(model: nn.Module, tmp_path: Path, **fields) -> list[str]:
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    args = transformers.TrainingArguments(str(tmp_path / "tc403"), max_steps=1, per_device_train_batch_size=2,
                                          learning_rate=0.1, report_to="none", use_cpu=True, save_strategy="no",
                                          **fields)
    transformers.Trainer(model=model, args=args, train_dataset=lm_rows()).train()
    after = dict(model.named_parameters())
    return [n for n, p in before.items() if torch.equal(p, after[n].detach())]


@pytest.mark.parametrize("kind", ["fires", "silent"])
def test_tc403_frozen_embeddings_against_the_real_trainer(kind, tmp_path) -> None:
    """Fires: frozen embeddings, trainable blocks, reentrant checkpointing (before 5.0): the blocks silently stay
    as they are. Silent: only a projector outside the blocks trains (Ultravox's setting): it trains."""
    from trainer_compat.rules.frozen_inputs import CheckpointingFrozenInputs
    from trainer_compat.versions import installed_transformers

    example = [e for e in getattr(CheckpointingFrozenInputs, kind) if e.peft is None][-1 if kind == "silent" else 0]
    Model = example.load(tmp_path)
    fires = "TC403" in trainer_compat.check(Model, args=example.args).codes()
    assert fires == (kind == "fires" and installed_transformers() in example.versions)
    unchanged = _unchanged_trainables(Model(), tmp_path, **example.args)
    assert bool([n for n in unchanged if ".h." in n]) == fires, unchanged


@pytest.mark.parametrize(("fields", "severity"), [({"eval_strategy": "steps"}, Severity.ERROR),
                                                   ({"do_eval": True}, Severity.WARNING)])
def test_tc102_is_an_error_only_where_trainer_itself_evaluates(fields, severity) -> None:
    """do_eval alone tells a script it may evaluate; Trainer schedules nothing, so no eval_loss goes missing yet."""
    class KwargsOnly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = tiny_llama()

        def forward(self, **kwargs):
            return self.model(**kwargs)

    report = trainer_compat.check(KwargsOnly(), args={**fields, "remove_unused_columns": False})
    assert [f.severity for f in report.findings if f.rule == "TC102"] == [severity]


class SingularLabel(EncoderClassifier):
    """forward(..., label=None): Trainer's default collator renames `label` to `labels` (bert_text_classifier)."""

    def forward(self, input_ids, attention_mask=None, label=None):
        return super().forward(input_ids, attention_mask, label)


def test_a_key_trainer_renamed_is_the_models_problem_not_the_inventions(tmp_path) -> None:
    report = trainer_compat.check(SingularLabel, probe=True)
    (failure,) = [f for f in report.findings if f.rule == "TC601"]
    assert failure.severity is Severity.ERROR and "'labels'" in failure.message, report.findings
    assert "TC609" not in report.codes()
    rows = [{"input_ids": r["input_ids"], "label": r["labels"]} for r in marker_rows()]
    with pytest.raises(TypeError, match="unexpected keyword argument 'labels'"):
        train(SingularLabel(), rows, tmp_path)


@dataclasses.dataclass
class ModalityArguments(transformers.TrainingArguments):
    group_by_modality_length: bool = False


class ModalityTrainer(transformers.Trainer):
    """LLaVATrainer reads a field of its own TrainingArguments subclass."""

    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
        assert self.args.group_by_modality_length is False
        return super().compute_loss(model, inputs, return_outputs=return_outputs, **kwargs)


def test_a_field_of_the_users_arguments_class_is_not_blamed_on_the_model(tmp_path) -> None:
    from_dict = trainer_compat.check(OptionalInputIds, trainer=ModalityTrainer, probe=True)
    assert from_dict.compatible and "TC609" in from_dict.codes(), errors(from_dict)
    (note,) = [f for f in from_dict.findings if f.rule == "TC609"]
    assert "group_by_modality_length" in note.message and "arguments class" in note.message
    own = ModalityArguments(str(tmp_path / "out"), report_to="none", use_cpu=True)
    settled = trainer_compat.check(OptionalInputIds, args=own, trainer=ModalityTrainer, probe=True)
    assert settled.compatible and "TC609" not in settled.codes(), settled.findings


def test_with_data_a_trainer_that_cannot_be_built_is_reported_not_raised() -> None:
    class DictConfig(OptionalInputIds):
        def __init__(self) -> None:
            super().__init__()
            self.config = {"use_cache": False}

    report = trainer_compat.check(DictConfig(), probe=False, data=lm_rows())
    if transformers.__version__.startswith("4."):  # 4.x Trainer() does not write config.use_cache
        return
    assert "TC601" in {f.rule for f in report.findings if f.severity is Severity.ERROR}, report.findings
    assert any("could not be built" in note for note in report.skipped)
