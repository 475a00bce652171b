"""Whether a dry-run failure says something about the user's run, or only about the inputs the probe invented.

An error must mean that the real run fails whatever the data. When the probe synthesized the batch, a failure
raised inside a forward (input validation, a shape, an index, a lookup of marker tokens) or a missing loss
while optional inputs were left out can be the invention's fault: such failures are inconclusive (TC609),
with what to pass to settle them. With the user's data or sample, every failure counts.
"""

from __future__ import annotations

import re
from typing import Any

_LOSS_SHAPED = re.compile(r"did not return a loss|grad can be implicitly created|does not require grad|"
                          r"NoneType|not subscriptable|invalid index of a 0-dim", re.IGNORECASE)


_UNEXPECTED = re.compile(r"unexpected keyword argument '(\w+)'")
_MISSING = re.compile(r"missing \d+ required (?:positional |keyword-only )?arguments?: (.+)")
_ARGS_FIELD = re.compile(r"'(\w*(?:Arguments|Config))' object has no attribute '(\w+)'")


def invented_cause(failure: Any, observations: Any) -> str | None:
    """Why the invented inputs, not the model, may explain ``failure``; None when they cannot."""
    inputs = observations.inputs
    if failure.building:
        return "the probe could not build the Trainer subclass with its own arguments"
    field = _ARGS_FIELD.search(failure.message)
    if field and failure.exception == "AttributeError":
        return (f"the probe built the stock {field.group(1)}, and the trainer reads {field.group(2)!r}, a field of "
                "your own arguments class: pass an instance of it (check(model, args=MyArguments(...)))")
    if not inputs.synthetic or failure.phase in ("Trainer()", "save_model"):
        return None
    return _synthesized_cause(failure, inputs)


def _synthesized_cause(failure: Any, inputs: Any) -> str | None:
    """Why the batch the probe synthesized may explain a failure in the training step; None when it cannot."""
    if failure.exception == "TypeError" and _binding_by_trainer(failure.message, inputs):
        return None
    if failure.in_forward:
        return f"raised inside the forward on a synthesized batch ({_shown(inputs)})"
    if inputs.omitted and _LOSS_SHAPED.search(f"{failure.exception}: {failure.message}"):
        return (f"the synthesized batch ({_shown(inputs)}) left out {', '.join(inputs.omitted)}, which the real "
                "data may carry")
    return None


def _binding_by_trainer(message: str, inputs: Any) -> bool:
    """The forward's call did not bind because of what Trainer or its collator did to the batch: an argument the
    probe never put there (num_items_in_batch, `labels` renamed from `label`), or one it gave that went missing."""
    given = set(inputs.example or {})
    unexpected = _UNEXPECTED.search(message)
    if unexpected:
        return unexpected.group(1) not in given
    missing = _MISSING.search(message)
    return missing is not None and any(name in given for name in re.findall(r"'(\w+)'", missing.group(1)))


def why_it_counts(failure: Any, observations: Any) -> str:
    """For a failure reported as an error: why the inputs cannot be its cause."""
    inputs = observations.inputs
    if not inputs.synthetic:
        return f"on your inputs ({inputs.source})"
    if failure.phase in ("Trainer()", "save_model"):
        return "independent of the batch"
    if failure.exception == "TypeError" and _binding_by_trainer(failure.message, inputs):
        return "Trainer or its collator changed the batch's keys, whatever the data"
    return "raised by Trainer outside the model's forward, so not by the synthesized values"


def invented_loss_problem(observations: Any, finite: bool) -> str | None:
    """A loss that is not finite (invented values can do that), or not scalar or differentiable on a batch that
    left out inputs the real data may carry."""
    inputs = observations.inputs
    if not inputs.synthetic:
        return None
    if not finite:
        return f"computed on synthesized values ({_shown(inputs)})"
    if inputs.omitted:
        return f"the synthesized batch ({_shown(inputs)}) left out {', '.join(inputs.omitted)}"
    return None


def settle_hint() -> str:
    from trainer_compat.probe.batch import SETTLE  # probe.batch imports torch: only when a probe ran

    return SETTLE


def _shown(inputs: Any) -> str:
    return inputs.source.removeprefix("synthetic: ")
