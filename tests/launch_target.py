"""One rank of a real multi-process launch (tests/test_multiprocess.py starts it with torchrun): trains each case
of a JSON spec with the real Trainer (CPU, gloo, 2 steps) and writes what happened, per case, as JSON.

    python -m torch.distributed.run --nproc_per_node=2 tests/launch_target.py SPEC.json OUT_DIR

A case: {"id", "path" (a file defining Model: class, factory or instance), "args" (TrainingArguments fields),
"oom_once" (the wrapper's first forward raises a CUDA out-of-memory error, as a real OOM would reach
auto_find_batch_size)}. Cases run one after another in the same process group; a failing case is recorded and
the next one starts (both ranks fail at the same point, so no collective is left waiting).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import warnings


def _model(path: str):
    import torch

    from trainer_compat.targets import load_target

    torch.manual_seed(0)
    obj = load_target(f"{path}:Model")
    return obj() if callable(obj) and not isinstance(obj, torch.nn.Module) else obj


def _data(n: int = 8):
    import torch

    ids = torch.randint(1, 100, (n, 8), generator=torch.Generator().manual_seed(0))
    return [{"input_ids": row, "attention_mask": torch.ones_like(row), "labels": row} for row in ids]


def _reset_accelerate() -> None:
    """Each case builds its own Trainer (DDP or FSDP plugin); accelerate keeps one state per process otherwise."""
    try:
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(reset_partial_state=False)
        GradientState._reset_state()
    except Exception:  # an older accelerate: nothing to reset
        pass
    for name in [n for n in os.environ if n.startswith("FSDP_") or n == "ACCELERATE_USE_FSDP"]:
        del os.environ[name]


def _fsdp_units(model) -> int | None:
    """FSDP units below the root in the prepared model (FSDP1 wrappers or FSDP2 fully_shard modules)."""
    kinds = []
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel

        kinds.append(FullyShardedDataParallel)
    except ImportError:
        pass
    try:
        from torch.distributed.fsdp import FSDPModule

        kinds.append(FSDPModule)
    except ImportError:
        pass
    found = [m for m in model.modules() if isinstance(m, tuple(kinds))] if kinds else []
    return len(found) - 1 if found else None


def _fsdp_plugin(fields: dict):
    """accelerate's FSDP plugin as Trainer builds it from the arguments (5.x: args.fsdp_plugin_args; 4.x: the
    environment TrainingArguments exports); sync_module_states off: it needs an accelerator to broadcast from."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=os.devnull, report_to="none", use_cpu=True, **fields)
    plugin_args = getattr(args, "fsdp_plugin_args", None)
    if plugin_args:
        return FullyShardedDataParallelPlugin(**{**plugin_args, "sync_module_states": False})
    os.environ["FSDP_SYNC_MODULE_STATES"] = "false"
    return FullyShardedDataParallelPlugin()


def run_fsdp(case: dict, model) -> dict:
    """Trainer on CPU runs FSDP arguments as DDP (accelerate engages FSDP on accelerators only), so the FSDP
    cases shard with torch's own FSDP, under the wrap policy accelerate derives from the same arguments."""
    import torch

    plugin = _fsdp_plugin(case.get("args") or {})
    if getattr(plugin, "fsdp_version", 1) == 2:
        from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
        from torch.distributed.fsdp import fully_shard

        policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
        for module in [m for m in list(model.modules())[1:] if policy is not None and policy(m)]:
            fully_shard(module)
        wrapped = fully_shard(model)
    else:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        plugin.set_auto_wrap_policy(model)
        wrapped = FSDP(model, auto_wrap_policy=plugin.auto_wrap_policy, use_orig_params=plugin.use_orig_params,
                       device_id=torch.device("cpu"))
    optimizer = torch.optim.AdamW([p for p in wrapped.parameters() if p.requires_grad], lr=1e-3)
    rows = torch.stack([row["input_ids"] for row in _data()])
    rank = int(os.environ.get("RANK", "0"))
    losses = []
    for step in range(2):
        ids = rows[rank * 2 + step * 4: rank * 2 + step * 4 + 2]
        loss = wrapped(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return {"ok": True, "steps": 2, "losses": losses, "fsdp_version": getattr(plugin, "fsdp_version", 1),
            "fsdp_units": _fsdp_units(wrapped)}


def run_case(case: dict, out_dir: str) -> dict:
    from transformers import Trainer, TrainingArguments

    _reset_accelerate()
    if case.get("fsdp"):
        result = {"id": case["id"]}
        try:
            result.update(run_fsdp(case, _model(case["path"])))
        except BaseException as exc:  # what the launch does is the result
            result.update(ok=False, error=_error(exc), where=traceback.format_exc(limit=-3)[-1500:])
        return result
    model = _model(case["path"])
    wrapper_type = type(model).__name__
    if case.get("oom_once"):
        original, calls = model.forward, []

        def forward(*args, **kwargs):
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("CUDA out of memory. Tried to allocate 1.00 GiB (raised once by the test)")
            return original(*args, **kwargs)

        import functools
        model.forward = functools.wraps(original)(forward)
    fields = dict(output_dir=os.path.join(out_dir, case["id"]), use_cpu=True, ddp_backend="gloo", max_steps=2,
                  per_device_train_batch_size=2, report_to="none", save_strategy="no", logging_steps=1,
                  disable_tqdm=True, dataloader_num_workers=0)
    fields.update(case.get("args") or {})
    result: dict = {"id": case["id"], "wrapper": wrapper_type}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = Trainer(model=model, args=TrainingArguments(**fields), train_dataset=_data())
            trainer.train()
        result.update(ok=True, steps=trainer.state.global_step,
                      losses=[h["loss"] for h in trainer.state.log_history if "loss" in h],
                      trained_type=type(trainer.model).__name__, wrapped_type=type(trainer.model_wrapped).__name__,
                      world_size=trainer.args.world_size, fsdp_units=_fsdp_units(trainer.model_wrapped))
    except BaseException as exc:  # what the launch does is the result
        result.update(ok=False, error=_error(exc),
                      where=traceback.format_exc(limit=-3)[-1500:])
    return result


def _error(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def main() -> None:
    spec_path, out_dir = sys.argv[1], sys.argv[2]
    rank = int(os.environ.get("RANK", "0"))
    with open(spec_path, encoding="utf-8") as spec:
        cases = json.load(spec)
    results = []
    for case in cases:
        results.append(run_case(case, out_dir))
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w", encoding="utf-8") as f:
            json.dump(results, f)  # after each case: a hang later still leaves the earlier verdicts


if __name__ == "__main__":
    main()
