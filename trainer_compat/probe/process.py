"""The process around a probe: RNG streams, torch's global flags, the environment, accelerate's shared state.

Trainer changes all of them: ``set_seed`` (every RNG, and the seed CUDA will be initialised with),
``full_determinism`` (``torch.use_deterministic_algorithms``, cudnn flags, five environment variables),
``tf32`` (matmul flags), accelerate (its shared state). ``ProcessState`` captures them before and puts
them back after; nothing here initialises CUDA.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

_CUDA_DEFAULT_SEED = 67280421310721  # c10's default_rng_seed_val: what a CUDA generator starts from


def _cudnn(name: str) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    return (lambda: getattr(torch.backends.cudnn, name), lambda v: setattr(torch.backends.cudnn, name, v))


_FLAGS: dict[str, tuple[Callable[[], Any], Callable[[Any], Any]]] = {
    "grad mode": (torch.is_grad_enabled, torch.set_grad_enabled),
    "default dtype": (torch.get_default_dtype, torch.set_default_dtype),
    "deterministic algorithms": (
        lambda: (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()),
        lambda v: torch.use_deterministic_algorithms(v[0], warn_only=v[1])),
    "anomaly detection": (torch.is_anomaly_enabled, torch.set_anomaly_enabled),
    "float32 matmul precision": (torch.get_float32_matmul_precision, torch.set_float32_matmul_precision),
    "cudnn.deterministic": _cudnn("deterministic"),
    "cudnn.benchmark": _cudnn("benchmark"),
    "cudnn.enabled": _cudnn("enabled"),
    "cudnn.allow_tf32": _cudnn("allow_tf32"),
    "cuda.matmul.allow_tf32": (lambda: torch.backends.cuda.matmul.allow_tf32,
                               lambda v: setattr(torch.backends.cuda.matmul, "allow_tf32", v)),
    "threads": (torch.get_num_threads, torch.set_num_threads),
}


def _flags() -> dict[str, Any]:
    out = {}
    for name, (get, _) in _FLAGS.items():
        try:
            out[name] = get()
        except Exception:  # a flag this torch lacks is not one a probe can change
            continue
    return out


def rng_state() -> dict[str, Any]:
    """Every RNG stream that exists now. CUDA's only if CUDA is initialised: reading it would initialise it."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    try:
        import numpy as np

        state["numpy"] = np.random.get_state()
    except ImportError:
        pass
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def rng_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.keys() != b.keys() or a["python"] != b["python"] or not torch.equal(a["torch"], b["torch"]):
        return False
    if "numpy" in a:
        (ka, sa, pa, ha, ga), (kb, sb, pb, hb, gb) = a["numpy"], b["numpy"]
        if ka != kb or not (sa == sb).all() or (pa, ha, ga) != (pb, hb, gb):
            return False
    return all(torch.equal(x, y) for x, y in zip(a.get("cuda", []), b.get("cuda", []), strict=False))


def _lazy_seeds() -> dict[str, Any] | None:
    """The seed CUDA will be initialised with (torch queues manual_seed calls until then)."""
    tracker = getattr(torch.cuda, "_lazy_seed_tracker", None)
    if tracker is None or not hasattr(tracker, "__dict__"):
        return None
    return {k: list(v) if isinstance(v, list) else v for k, v in vars(tracker).items()}


def _restore_lazy_seeds(saved: dict[str, Any] | None, cuda_was_initialized: bool) -> None:
    tracker = getattr(torch.cuda, "_lazy_seed_tracker", None)
    if saved is None or tracker is None:
        return
    vars(tracker).clear()
    vars(tracker).update({k: list(v) if isinstance(v, list) else v for k, v in saved.items()})
    if cuda_was_initialized or not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return
    for generator in torch.cuda.default_generators:  # the probe initialised CUDA: start where init would have
        generator.manual_seed(_CUDA_DEFAULT_SEED)
    for call in (tracker.get_calls() if hasattr(tracker, "get_calls") else []):
        if call:
            call[0]()


def _shared_states() -> list[dict[str, Any]]:
    try:
        from accelerate.state import AcceleratorState, GradientState, PartialState
    except ImportError:  # pragma: no cover - accelerate is a Trainer requirement
        return []
    return [cls._shared_state for cls in (PartialState, AcceleratorState, GradientState)]


@dataclass
class ProcessState:
    rng: dict[str, Any]
    flags: dict[str, Any]
    environ: dict[str, str]
    shared: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    lazy_seeds: dict[str, Any] | None = None
    cuda_initialized: bool = False

    @classmethod
    def capture(cls) -> ProcessState:
        return cls(rng=rng_state(), flags=_flags(), environ=dict(os.environ),
                   shared=[(state, dict(state)) for state in _shared_states()], lazy_seeds=_lazy_seeds(),
                   cuda_initialized=torch.cuda.is_available() and torch.cuda.is_initialized())

    def restore(self) -> None:
        now = _flags()
        for name, value in self.flags.items():
            if now.get(name) != value:
                _FLAGS[name][1](value)
        for key in [k for k in os.environ if k not in self.environ]:
            del os.environ[key]
        for key, value in self.environ.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
        for state, saved in self.shared:
            state.clear()
            state.update(saved)
        _restore_lazy_seeds(self.lazy_seeds, self.cuda_initialized)
        set_rng_state({k: v for k, v in self.rng.items() if k != "cuda" or self.cuda_initialized})

    def differences(self) -> list[str]:
        now = ProcessState.capture()
        diffs = [f"torch flag {name}" for name, value in self.flags.items() if now.flags.get(name) != value]
        changed = sorted(k for k in {*self.environ, *now.environ} if self.environ.get(k) != now.environ.get(k))
        diffs.extend(f"environment variable {k}" for k in changed)
        if any(dict(state) != saved for state, saved in self.shared):
            diffs.append("accelerate shared state")
        rng = {k: v for k, v in now.rng.items() if k != "cuda" or self.cuda_initialized}
        if not rng_equal(self.rng, rng):
            diffs.append("RNG state")
        return diffs


def bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, shape, device, layout and bits (NaNs included); quantized and sparse tensors by their parts."""
    if a.dtype != b.dtype or a.shape != b.shape or a.device != b.device or a.layout != b.layout:
        return False
    if a.device.type == "meta":
        return True
    if a.is_quantized:
        return _qparams(a) == _qparams(b) and bitwise_equal(a.int_repr(), b.int_repr())
    if a.layout == torch.sparse_coo:
        a, b = a.coalesce(), b.coalesce()
        return bitwise_equal(a.indices(), b.indices()) and bitwise_equal(a.values(), b.values())
    if a.layout != torch.strided:
        return bitwise_equal(a.to_dense(), b.to_dense())
    return a.numel() == 0 or torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8))


def _qparams(t: torch.Tensor) -> tuple[Any, ...]:
    scheme = t.qscheme()
    if scheme in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        return scheme, t.q_scale(), t.q_zero_point()
    return scheme, t.q_per_channel_axis(), t.q_per_channel_scales().tolist(), t.q_per_channel_zero_points().tolist()
