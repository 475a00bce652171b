"""Rules that a model alone cannot show: a built Trainer's data (TC7xx, from ``preflight``) and the
suppression comments themselves (TC9xx). They are documented and selected like every other rule, but
their findings come from ``trainer_compat.trainer_check`` and ``trainer_compat.suppress``, not from a Context,
so they carry no model examples; tests/test_preflight.py and tests/test_cli_config.py are their tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from trainer_compat.findings import Finding, Severity
from trainer_compat.rules.base import Context, Rule


class WorkflowRule(Rule):
    produced_by: ClassVar[str | None] = "preflight"  # or "suppression comments"

    def check(self, ctx: Context) -> Iterator[Finding]:
        return iter(())  # the model alone never shows these: see produced_by


class DatasetColumnsDropped(WorkflowRule):
    code = "TC701"
    name = "dataset-columns-dropped"
    severity = Severity.ERROR
    produced_by = "preflight"
    summary = "the dataset's columns do not survive `remove_unused_columns` into the forward"
    explanation = (
        "With `remove_unused_columns=True` (the default) Trainer keeps only the dataset columns named by the "
        "model's `forward` signature, `label_names` and `label`/`label_ids`. A `datasets.Dataset` with no "
        "surviving column makes Trainer raise at the first dataloader; a list of dicts is collated with every "
        "other key removed, so the model silently receives less than the dataset holds. An error when no "
        "column survives or when `forward(**kwargs)` would have taken the dropped ones; a note otherwise.")


class CollatorOutput(WorkflowRule):
    code = "TC702"
    name = "collator-output"
    severity = Severity.ERROR
    produced_by = "preflight"
    summary = "the data collator does not return a mapping of tensors"
    explanation = (
        "Trainer calls `model(**inputs)` on what the collator returns, after moving each tensor to the device. "
        "A tuple or list cannot be unpacked as keywords (TypeError at the first step), and a value that is not "
        "a tensor stays on the CPU as it is (a warning: the forward may fail or silently ignore it). The "
        "collator raising on the first examples is reported here too.")


class BatchDoesNotBind(WorkflowRule):
    code = "TC703"
    name = "batch-does-not-bind"
    severity = Severity.ERROR
    produced_by = "preflight"
    summary = "the first batch's keys do not bind to the forward signature"
    explanation = (
        "The first training batch, exactly as the Trainer's dataloader would build it, is bound to "
        "`forward`: a key the forward does not accept (no `**kwargs`) or a required parameter no key "
        "provides makes `model(**inputs)` raise a TypeError at the first step.")


class LabelsNotInBatch(WorkflowRule):
    code = "TC704"
    name = "labels-not-in-batch"
    severity = Severity.WARNING
    produced_by = "preflight"
    summary = "`label_names` are not all in the batch: evaluation computes no loss"
    explanation = (
        "In `prediction_step` Trainer has labels only when every name in `trainer.label_names` is in the "
        "batch; otherwise evaluation yields no `eval_loss`, and `load_best_model_at_end` with the default "
        "`metric_for_best_model` fails with a KeyError. An error when that combination is on, a warning when "
        "evaluation is on.")


class UnusedSuppression(WorkflowRule):
    code = "TC901"
    name = "unused-suppression"
    severity = Severity.WARNING
    produced_by = "suppression comments"
    summary = "a `# trainer-compat: ignore[...]` comment suppresses nothing"
    explanation = (
        "A suppression comment on the class line names a code (or a prefix) that this check did not report, "
        "or a code that does not exist. Stale suppressions hide the next real finding of that code: remove "
        "them (like ruff's RUF100 or mypy's --warn-unused-ignores).")


class SuppressionWithoutReason(WorkflowRule):
    code = "TC902"
    name = "suppression-without-reason"
    severity = Severity.WARNING
    produced_by = "suppression comments"
    summary = "a suppression comment gives no reason"
    explanation = (
        "`# trainer-compat: ignore[CODE]` must be followed by why the finding does not apply, e.g. "
        "`# trainer-compat: ignore[TC301] weights are re-tied in load_model()`. The suppression still "
        "applies; the reason is what the next reader needs.")


PREFLIGHT_RULES: tuple[type[WorkflowRule], ...] = (DatasetColumnsDropped, CollatorOutput, BatchDoesNotBind,
                                                   LabelsNotInBatch)
SUPPRESSION_RULES: tuple[type[WorkflowRule], ...] = (UnusedSuppression, SuppressionWithoutReason)
WORKFLOW_RULES: tuple[type[WorkflowRule], ...] = PREFLIGHT_RULES + SUPPRESSION_RULES
