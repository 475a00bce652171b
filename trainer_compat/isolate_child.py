"""The isolated child (``python -P -m trainer_compat.isolate_child``): checks the targets it is sent on stdin, one
after another, each under the guard, and writes each report as a JSON line, prefixed with the run's nonce, on a
private pipe moved above the file descriptors target code writes to. It dies with its parent (Linux)."""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
from dataclasses import dataclass
from typing import Any

from trainer_compat.errors import UsageError
from trainer_compat.guard import quiet_libraries

FD_ENV = "TRAINER_COMPAT_RESULT_FD"  # names the private result pipe's descriptor (the child pops it at start)
OUT_OF_MEMORY = ("can't allocate memory", "not enough memory", "out of memory", "bad_alloc")


def _send(out: Any, message: dict[str, Any]) -> None:
    out.write(f"{_NONCE[0]} {json.dumps(message, default=str)}\n")
    out.flush()


_NONCE = [""]
_PRIVATE_FD = 1000  # the result pipe is moved above the fds target code plausibly writes to (3-63)


def _die_with_parent() -> None:
    """Linux: the kernel sends SIGKILL when the parent dies (a CI timeout's SIGTERM, a SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent is already gone
        os._exit(1)


def _private_channel(fd: int) -> Any:
    import fcntl

    try:
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _PRIVATE_FD)
    except OSError:
        return os.fdopen(fd, "w")
    os.close(fd)
    return os.fdopen(high, "w")


def main() -> None:
    _die_with_parent()
    payload = json.loads(sys.stdin.read())
    _NONCE[0] = payload["nonce"]
    out = _private_channel(int(os.environ.pop(FD_ENV)))
    if payload["memory_mb"]:
        cap = int(payload["memory_mb"]) << 20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    sys.path[:] = payload["sys_path"]
    quiet_libraries()
    from trainer_compat.targets import per_run
    from trainer_compat.versions import installed_torch, installed_transformers
    from trainer_compat.workflow import _setup

    _send(out, {"ready": {"transformers": str(installed_transformers()), "torch": installed_torch()}})
    with per_run():
        for index, request in enumerate(payload["requests"]):
            try:
                setup = _setup(request.get("args"), request.get("trainer") or "trainer", data=request.get("data"),
                               collator=request.get("collator"), launch=request.get("launch"), peft=request.get("peft"))
            except UsageError as exc:
                _send(out, {"usage": str(exc)})
                return
            _send(out, {"start": index, "trainer": setup.trainer,
                        "features": sorted(f.value for f in setup.features)})
            progress = _Relay(out) if payload.get("progress") else None
            _send(out, _check_one(request, setup, payload.get("timeout_s"), progress))


def _check_one(request: dict[str, Any], setup: Any, timeout_s: float | None = None,
               progress: Any = None) -> dict[str, Any]:
    from trainer_compat.workflow import _build_and_check, guarded

    spec = request["spec"]
    target = request.get("target") or spec
    settings = _Request(spec=spec, target=target, init_kwargs=request.get("init_kwargs"),
                        probe=bool(request.get("probe")), sample=request.get("sample"),
                        transformers_version=request.get("transformers_version"), progress_stream=progress)
    try:
        report = guarded(target, timeout_s, lambda run: _build_and_check(settings, setup, run), setup)
        return {"report": report.to_dict()}
    except MemoryError:
        return {"kind": "memory", "detail": "raised MemoryError under the memory cap"}
    except UsageError as exc:
        return _classify_error(exc)
    except Exception as exc:
        return {"error": f"{spec}: internal error: {type(exc).__name__}: {exc} (rerun with --debug)"}


@dataclass(frozen=True)
class _Request:
    spec: str
    target: str
    init_kwargs: dict[str, Any] | None
    probe: bool
    sample: str | None
    transformers_version: str | None = None
    progress_stream: Any = None


class _Relay:
    """A text stream that sends each line to the parent (which shows it on its terminal): the probe's phases."""

    def __init__(self, out: Any) -> None:
        self.out = out

    def write(self, text: str) -> None:
        if text.strip():
            _send(self.out, {"progress": text.rstrip("\n")})

    def flush(self) -> None:
        pass


def _classify_error(exc: UsageError) -> dict[str, Any]:
    cause = exc.__cause__
    if isinstance(cause, MemoryError) or any(text in str(exc).lower() for text in OUT_OF_MEMORY):
        return {"kind": "memory", "detail": f"ran out of memory under the memory cap: {getattr(exc, 'cause', exc)}"}
    if isinstance(cause, SystemExit):
        return {"kind": "exit", "detail": f"called sys.exit({cause.code!r}) ({getattr(exc, 'cause', exc)})"}
    return {"error": str(exc)}


if __name__ == "__main__":
    main()
