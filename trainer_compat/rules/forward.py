"""The forward signature as Trainer inspects it: columns, label names, loss kwargs, outputs."""

from __future__ import annotations

from collections.abc import Iterator

from packaging.version import Version

from trainer_compat import analysis
from trainer_compat.example_models import (
    DROPPING_WRAPPER,
    EXPLICIT_WRAPPER,
    KWARGS_WRAPPER,
    NORMALISING_WRAPPER,
    T5_MODEL,
)
from trainer_compat.example_models import (
    WRAPPER_HEAD as _HEAD,
)
from trainer_compat.features import Feature
from trainer_compat.findings import Finding, Location, Severity
from trainer_compat.protocol.data import (
    ACCEPTS_LOSS_KWARGS_ATTR,
    ACCUMULATION_DIVIDED,
    LOSS_KWARGS_ANY_VAR_KEYWORD,
    T5_LOSS_KWARGS,
)
from trainer_compat.protocol.model import Site
from trainer_compat.rules.base import Context, Example, Rule
from trainer_compat.signature import (
    ForwardView,
    can_return_loss,
    inspected_module,
    kwargs_keys_read,
    label_names,
    loss_kwargs_decision,
    loss_module,
    uses_num_items_in_batch,
)
from trainer_compat.subject import source_location
from trainer_compat.versions import VersionRange

_BATCH_NAMES = ("batch", "inputs", "data", "sample", "features", "example")
_COLUMNS_SITE = Site(r"signature = inspect\.signature\(model_to_inspect\.forward\)")
_LABELS_SITE = Site(r"default_label_names = find_labels\(")
_LOSS_KWARGS_SITE = Site(r"self\.model_accepts_loss_kwargs = ")


def _forward_location(ctx: Context, view: ForwardView) -> Location | None:
    return source_location(view.function) or ctx.subject.location


# Keys a forward(**kwargs) may read that do not come from dataset columns: Trainer passes num_items_in_batch;
# the stock collators build labels / masks / position ids / decoder inputs from the columns they keep; a PEFT
# model and generate() pass the rest.
_NOT_FROM_COLUMNS = frozenset({
    "num_items_in_batch", "labels", "attention_mask", "position_ids", "token_type_ids", "decoder_input_ids",
    "decoder_attention_mask", "special_tokens_mask", "cu_seq_lens_q", "cu_seq_lens_k", "max_length_q",
    "max_length_k", "seq_idx", "inputs_embeds", "output_attentions", "output_hidden_states", "return_dict",
    "use_cache", "past_key_values", "cache_position", "task_ids", "logits_to_keep"})
KWARGS_READER = _HEAD.replace("tie=False)", "tie=False)\n        self.audio_proj = nn.Linear(32, 32)") + """
    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        audio_features = kwargs.get("audio_features")  # (batch, seq, 32) when the batch carries it
        embeds = self.model.get_input_embeddings()(input_ids)
        if audio_features is not None:
            embeds = embeds + self.audio_proj(audio_features)
        return self.model(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels)
"""


OWN_PREDICTION_STEP = """
import torch
from transformers import Trainer

class MyTrainer(Trainer):
    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = model(**inputs).loss.detach()
        return loss, None, None
"""
_BATCH_HOOKS = ("compute_loss", "training_step", "_prepare_inputs")  # a Trainer subclass may add keys there


def _stock_collator(collator: object) -> bool:
    """No collator given, or one of transformers' / TRL's (which build only the keys in _NOT_FROM_COLUMNS)."""
    return collator is None or type(collator).__module__.split(".")[0] in ("transformers", "trl")


class ColumnsDropped(Rule):
    code = "TC101"
    name = "columns-dropped"
    severity = Severity.ERROR
    summary = "remove_unused_columns would drop the inputs the forward needs."
    explanation = (
        "With `remove_unused_columns=True` (the default) Trainer keeps only the dataset columns named in "
        "`inspect.signature(model.forward)`, plus `label`, `label_ids` and the label names. A forward that "
        "takes `**kwargs`, a single `batch` argument, or a `torch.compile`d module (`(*args, **kwargs)`) "
        "names none of them: a `datasets.Dataset` raises `No columns in the dataset match the model's forward "
        "method signature`, a list of dicts reaches the model empty. A forward that names some inputs and reads "
        "another from `**kwargs` by name (`kwargs.get(\"audio_features\")`, `kwargs[\"pixel_values\"]`) never "
        "gets that one from the dataset: `kwargs[...]` raises KeyError, `kwargs.get(...)` silently trains without "
        "it (an error; a warning when a custom data collator, or a Trainer subclass overriding compute_loss / "
        "training_step / _prepare_inputs, is given: either may build it from the kept columns). A `**kwargs` that "
        "is only passed on is a warning. Name the inputs in the forward, or set "
        "`remove_unused_columns=False` (then every column arrives and the rule is silent)."
    )
    fires = (Example(KWARGS_WRAPPER), Example(KWARGS_READER))
    silent = (Example(EXPLICIT_WRAPPER), Example(KWARGS_WRAPPER, args={"remove_unused_columns": False}),
              Example(KWARGS_READER, args={"remove_unused_columns": False}))

    def check(self, ctx: Context) -> Iterator[Finding]:
        view = ForwardView.of(ctx.subject)
        if view.bound is None or ctx.subject.is_pretrained or analysis.is_pretrained(inspected_module(ctx.subject)):
            return
        if analysis.sft_keeps_fixed_columns(ctx):
            return  # SFTTrainer keeps its own column list, not the forward's
        named = view.keyword_params
        cls = type(inspected_module(ctx.subject)).__name__ if ctx.subject.instance is not None \
            else ctx.subject.cls.__name__
        batchlike = len(named) == 1 and named[0] in _BATCH_NAMES and not view.var_keyword
        site = ctx.site(_COLUMNS_SITE)
        where = f" ({site})" if site else ""
        if ctx.has(Feature.REMOVE_UNUSED_COLUMNS):
            if not named or batchlike:
                keeps = ", ".join(view.columns) or "nothing"
                yield self.finding(
                    ctx, f"{cls}.forward{view.short} names no input column, so remove_unused_columns keeps only "
                         f"{keeps} (+ label, label_ids){where}: every dataset column is dropped and training "
                         "fails with 'No columns in the dataset match' or an empty batch",
                    member="forward", feature=Feature.REMOVE_UNUSED_COLUMNS,
                    location=_forward_location(ctx, view),
                    fix="name the inputs in forward (`def forward(self, input_ids, attention_mask=None, "
                        "labels=None, ...)`), or pass remove_unused_columns=False")
            elif view.var_keyword:
                yield self._kwargs_finding(ctx, view, cls, named, where)
        elif batchlike:
            yield self.finding(
                ctx, f"{cls}.forward{view.short} takes the batch as one argument, but Trainer calls "
                     "model(**inputs): every column arrives as a keyword and the call raises TypeError",
                member="forward", feature=Feature.TRAIN, location=_forward_location(ctx, view),
                fix="take the inputs as keyword parameters (`def forward(self, input_ids, labels=None)`)")

    def _kwargs_finding(self, ctx: Context, view: ForwardView, cls: str, named: list[str], where: str) -> Finding:
        var = view.var_keyword
        module = inspected_module(ctx.subject)
        kept = set(named) | {"label", "label_ids"} | set(ctx.setup.args.label_names or label_names(
            type(module) if module is not None else ctx.subject.cls))
        read = [(k, line) for k, line in kwargs_keys_read(view.function) if k not in kept | _NOT_FROM_COLUMNS]
        if not read:
            return self.finding(
                ctx, f"{cls}.forward{view.short} takes **{var}, but remove_unused_columns keeps only "
                     f"{', '.join(named)} (+ label, label_ids, label names){where}: any other column the model "
                     f"expects through **{var} never arrives",
                severity=Severity.WARNING, member="forward", feature=Feature.REMOVE_UNUSED_COLUMNS,
                location=_forward_location(ctx, view),
                fix="name every input in forward, or pass remove_unused_columns=False")
        keys = ", ".join(repr(k) for k, _ in read)
        at = source_location(view.function)
        location = Location(at.file, read[0][1]) if at else _forward_location(ctx, view)
        collator = ctx.setup.collator
        injects = [m for m in _BATCH_HOOKS if ctx.setup.overrides(m)]
        custom = not _stock_collator(collator) or bool(injects)
        builder = (f"the custom collator {getattr(collator, '__name__', type(collator).__name__)}"
                   if not _stock_collator(collator) else f"{ctx.setup.trainer_name}.{injects[0]}" if injects else "")
        return self.finding(
            ctx, f"{cls}.forward reads {keys} from **{var} ({location}), but remove_unused_columns keeps only "
                 f"{', '.join(named)} (+ label, label_ids, label names){where}: "
                 + (f"the dataset's {keys} column never arrives (unless {builder} builds it from the kept "
                    "columns)" if custom else
                    f"no dataset column {keys} can ever arrive: `{var}[...]` raises KeyError at the first step, "
                    f"`{var}.get(...)` silently trains without it"),
            severity=Severity.WARNING if custom else Severity.ERROR, member="forward",
            feature=Feature.REMOVE_UNUSED_COLUMNS, location=location,
            fix=f"name {keys} as forward parameters (`def forward(self, {', '.join(named)}, "
                f"{'=None, '.join(k for k, _ in read)}=None, **{var})`), or pass remove_unused_columns=False")


_EVAL = {"eval_strategy": "steps", "eval_steps": 1, "remove_unused_columns": False}  # NoLabelNames' examples


class NoLabelNames(Rule):
    code = "TC102"
    name = "no-label-names"
    severity = Severity.ERROR
    summary = "Trainer derives no label names from the forward: evaluation computes no eval_loss."
    explanation = (
        "Trainer's default `label_names` are the forward parameters whose name contains `label` "
        "(`find_labels(model.__class__)`). With none, `prediction_step` treats every batch as unlabeled: "
        "`evaluate()` reports no `eval_loss` and predictions carry no label ids. An error when the arguments switch "
        "evaluation on (`eval_strategy` other than \"no\"): the evaluation the run asks for silently "
        "measures nothing, and with `metric_for_best_model='loss'` (the default of `load_best_model_at_end`) it "
        "raises KeyError at the first evaluation. A warning otherwise. Silent when a Trainer subclass overrides "
        "`prediction_step`. Name the label parameter in forward, or set `label_names`."
    )
    fires = (Example(KWARGS_WRAPPER, args={**_EVAL, "save_strategy": "steps", "save_steps": 1,
                                           "load_best_model_at_end": True}),
             Example(KWARGS_WRAPPER, args=_EVAL))
    silent = (Example(EXPLICIT_WRAPPER, args={"eval_strategy": "steps", "eval_steps": 1, "save_strategy": "steps",
                                              "save_steps": 1, "load_best_model_at_end": True}),
              Example(KWARGS_WRAPPER, args={**_EVAL, "label_names": ["labels"]}),
              Example(KWARGS_WRAPPER, args=_EVAL, trainer_code=OWN_PREDICTION_STEP))

    def check(self, ctx: Context) -> Iterator[Finding]:
        if ctx.setup.args.label_names is not None:
            return
        if ctx.setup.overrides("prediction_step"):
            return  # the user's Trainer decides what evaluation computes
        module = inspected_module(ctx.subject)
        klass = type(module) if module is not None else ctx.subject.cls
        if label_names(klass) or can_return_loss(klass):
            return
        evaluating = ctx.setup.evaluation_scheduled  # do_eval alone: the script may never call evaluate()
        metric = str(ctx.setup.args.metric_for_best_model or "")
        fatal = evaluating and metric.removeprefix("eval_") == "loss"
        if fatal:
            consequence = (f"metric_for_best_model={metric!r} reads metrics['eval_loss'] and raises KeyError at the "
                           "first evaluation")
        elif evaluating:
            consequence = ("the evaluation these arguments switch on silently reports no eval_loss, and predictions "
                           "carry no label ids")
        else:
            consequence = "once evaluation is switched on, evaluate() reports no eval_loss"
        site = ctx.site(_LABELS_SITE)
        yield self.finding(
            ctx, f"{klass.__name__}.forward has no parameter named like a label, so Trainer's label_names is []"
                 f"{' (' + str(site) + ')' if site else ''}: {consequence}",
            severity=Severity.ERROR if evaluating else Severity.WARNING, member="forward", feature=Feature.EVAL,
            call_site=site, location=_forward_location(ctx, ForwardView.of(ctx.subject)),
            fix="name the label parameter in forward (`labels=None`), or pass label_names=['labels']")


class LossKwargsIgnored(Rule):
    code = "TC103"
    name = "loss-kwargs-ignored"
    severity = Severity.ERROR
    summary = "With gradient accumulation, the loss is not divided by the accumulation steps: gradients too large."
    explanation = (
        "When Trainer believes the model consumes loss kwargs (`model.accepts_loss_kwargs`, else a forward "
        "with `**kwargs`; 4.46 only for `**loss_kwargs`), it passes `num_items_in_batch` into forward and does "
        "not divide the loss by `gradient_accumulation_steps`. A forward that takes `**kwargs` but never uses "
        "`num_items_in_batch` (a wrapper that drops them, or a PreTrainedModel whose loss is not computed by "
        "`self.loss_function`, such as T5 in 5.x) trains with a loss and gradients `gradient_accumulation_steps` "
        "times too large, silently (for batches that carry `labels`). Before " + ACCUMULATION_DIVIDED + ", Trainer "
        "never divides: every model that receives no `num_items_in_batch` gets gradients that many times too "
        "large, while the logged loss looks right. What that costs depends on the optimizer: plain SGD takes steps "
        "that many times larger; Adam/AdamW normalise the gradient's scale away (only epsilon and weight decay "
        "weigh differently), but gradient clipping (`max_grad_norm`) then cuts at an effectively smaller norm and "
        "the logged grad_norm is inflated. Declare `accepts_loss_kwargs = False`, or pass `**kwargs` on to a model "
        "that uses them."
    )
    fires = (Example(DROPPING_WRAPPER, args={"gradient_accumulation_steps": 2},
                     versions=VersionRange(since=LOSS_KWARGS_ANY_VAR_KEYWORD)),
             Example(DROPPING_WRAPPER.replace("**kwargs", "**loss_kwargs"), args={"gradient_accumulation_steps": 2}),
             Example(T5_MODEL, trainer="seq2seq", args={"gradient_accumulation_steps": 2},
                     versions=VersionRange(since=T5_LOSS_KWARGS)),
             Example(EXPLICIT_WRAPPER, args={"gradient_accumulation_steps": 2},
                     versions=VersionRange(until=ACCUMULATION_DIVIDED)))
    silent = (Example(DROPPING_WRAPPER, args={"gradient_accumulation_steps": 1}),
              Example(DROPPING_WRAPPER.replace("class Model(nn.Module):",
                                               "class Model(nn.Module):\n    accepts_loss_kwargs = False"),
                      args={"gradient_accumulation_steps": 2}, versions=VersionRange(since=ACCUMULATION_DIVIDED)),
              Example(EXPLICIT_WRAPPER, args={"gradient_accumulation_steps": 2},
                      versions=VersionRange(since=ACCUMULATION_DIVIDED)),
              Example(NORMALISING_WRAPPER, args={"gradient_accumulation_steps": 2}))

    def check(self, ctx: Context) -> Iterator[Finding]:
        if not ctx.has(Feature.GRAD_ACCUM) or analysis.sft_computes_the_loss(ctx):
            return  # SFTTrainer's own head normalises by num_items_in_batch
        decision = loss_kwargs_decision(ctx.subject, ctx.version)
        steps = ctx.setup.gradient_accumulation_steps
        site = ctx.site(_LOSS_KWARGS_SITE)
        view = ForwardView.of(ctx.subject)
        if not decision.accepts:
            if ctx.version >= Version(ACCUMULATION_DIVIDED):
                return  # Trainer divides the loss by the accumulation steps itself
            yield self.finding(
                ctx, f"{ctx.subject.cls.__name__}: Trainer {ctx.version} passes no num_items_in_batch because "
                     f"{decision.reason}{' (' + str(site) + ')' if site else ''}, and before "
                     f"{ACCUMULATION_DIVIDED} it never divides the loss by gradient_accumulation_steps={steps} "
                     f"itself: the logged loss is divided, the gradients are {steps}x too large",
                member="forward", feature=Feature.GRAD_ACCUM, call_site=site, location=_forward_location(ctx, view),
                fix=f"upgrade to transformers {ACCUMULATION_DIVIDED} or later, or take **loss_kwargs in forward "
                    "and divide the summed loss by num_items_in_batch")
            return
        module = loss_module(ctx.subject)
        function = type(module).forward if module is not None else view.function
        used = uses_num_items_in_batch(function, module if module is not None else ctx.subject.cls)
        if used:
            return
        doubt = "" if used is False else " (its source is not available to confirm it uses them)"
        yield self.finding(
            ctx, f"{ctx.subject.cls.__name__}: Trainer {ctx.version} passes num_items_in_batch because "
                 f"{decision.reason}{' (' + str(site) + ')' if site else ''}, and then does not divide the loss "
                 f"by gradient_accumulation_steps={steps}; the forward never uses num_items_in_batch{doubt}, "
                 f"so loss and gradients are {steps}x too large",
            severity=Severity.ERROR if used is False else Severity.WARNING, member="forward",
            feature=Feature.GRAD_ACCUM, call_site=site, location=_forward_location(ctx, view),
            fix=f"declare `accepts_loss_kwargs = False` on the wrapper class "
                f"(transformers {ACCEPTS_LOSS_KWARGS_ATTR}+), "
                "or pass **kwargs on to an inner model whose loss uses num_items_in_batch")
