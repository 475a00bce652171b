"""Target code runs under a guard: it cannot end the process, hang the run, read stdin, stop in a debugger, or
change what the next target sees.

``target_run(target, timeout_s)`` wraps one target's import, build and check. Inside it stdin is empty, breakpoints
are no-ops, a timer raises ``TargetTimeout`` at the deadline, and a real Ctrl-C raises ``UserInterrupt`` (the run
ends quietly, exit 130). Any other BaseException from target code is the target's (``is_ours`` tells them apart).
On exit the process-global state a target can change is put back: torch's autograd mode, default dtype and
device, deterministic flags; the cwd, ``sys.path``, the user modules it added to ``sys.modules``, the environment,
logging levels, warnings filters, signal handlers and the interval timer.

Standard library only at module level (torch is read only once something imported it).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import sys
import sysconfig
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

_HANDLED = tuple(s for s in (signal.SIGALRM, signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1,
                             signal.SIGUSR2, signal.SIGVTALRM, signal.SIGPROF, signal.SIGCHLD, signal.SIGPIPE))


class TargetTimeout(BaseException):
    """The target's time limit passed (raised in the main thread by the guard's timer)."""


class UserInterrupt(KeyboardInterrupt):
    """A real Ctrl-C from the user while target code ran: the run ends (exit 130)."""


_interrupted = threading.Event()


def is_ours(exc: BaseException) -> bool:
    """The guard's own exceptions (a deadline, the user's Ctrl-C): never the target's, never swallowed."""
    return isinstance(exc, (TargetTimeout, UserInterrupt)) or (
        isinstance(exc, KeyboardInterrupt) and _interrupted.is_set())


def describe(exc: BaseException) -> str:
    """``SystemExit(0)``-style text for a BaseException raised by target code."""
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r})"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _installed_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots |= {p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}
    package = os.path.dirname(os.path.abspath(__file__))
    return tuple(sorted({os.path.realpath(r) + os.sep for r in roots} | {package + os.sep}))


def is_user_file(file: str | None) -> bool:
    """A file outside the interpreter's stdlib, site-packages and trainer-compat itself."""
    if not file:
        return False
    real = os.path.realpath(file)
    return not real.startswith(_installed_roots()) and "site-packages" not in real and "dist-packages" not in real


# -- state ------------------------------------------------------------------------------------------------


@dataclass
class _State:
    cwd: str
    path: list[str]
    modules: set[str]
    environ: dict[str, str]
    filters: list[Any]
    showwarning: Any
    levels: dict[str, tuple[int, bool]]
    disable: int
    handlers: dict[int, Any]
    torch: dict[str, Any] = field(default_factory=dict)


def snapshot() -> _State:
    manager = logging.Logger.manager
    levels = {name: (lg.level, lg.disabled) for name, lg in list(manager.loggerDict.items())
              if isinstance(lg, logging.Logger)}
    levels[""] = (logging.root.level, logging.root.disabled)
    return _State(cwd=_cwd(), path=list(sys.path), modules=set(sys.modules), environ=dict(os.environ),
                  filters=list(warnings.filters), showwarning=warnings.showwarning, levels=levels,
                  disable=manager.disable, handlers=_handlers(), torch=_torch_state())


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:
        return os.path.abspath(os.sep)


def _handlers() -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.getsignal(s) for s in _HANDLED}


def _torch_state() -> dict[str, Any]:
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "is_grad_enabled"):
        return {}
    state: dict[str, Any] = {"grad": torch.is_grad_enabled(), "dtype": torch.get_default_dtype(),
                             "deterministic": torch.are_deterministic_algorithms_enabled(),
                             "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
                             "cudnn": (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)}
    if hasattr(torch, "get_default_device"):
        state["device"] = torch.get_default_device()
    if hasattr(torch, "is_inference_mode_enabled"):
        state["inference"] = torch.is_inference_mode_enabled()
    return state


def restore(state: _State) -> list[str]:
    """Put back what ``snapshot`` saw; the names of what had changed (for a measure, a note or a test)."""
    changed = _restore_torch(state.torch)
    if _cwd() != state.cwd:
        changed.append("cwd")
        with contextlib.suppress(OSError):
            os.chdir(state.cwd)
    if sys.path != state.path:
        changed.append("sys.path")
        sys.path[:] = state.path
    added = [m for m in set(sys.modules) - state.modules if is_user_file(getattr(sys.modules[m], "__file__", None))]
    for name in added:
        sys.modules.pop(name, None)
    changed += ["sys.modules"] if added else []
    changed += _restore_environ(state.environ)
    if warnings.filters != state.filters or warnings.showwarning is not state.showwarning:
        changed.append("warnings")
        warnings.filters[:] = state.filters  # type: ignore[index]  # a list at runtime; typeshed says Sequence
        warnings.showwarning = state.showwarning
        warnings._filters_mutated()  # type: ignore[attr-defined]  # private: invalidates the warnings cache
    changed += _restore_logging(state)
    return changed


def _restore_torch(saved: dict[str, Any]) -> list[str]:
    torch = sys.modules.get("torch")
    if not saved or torch is None:
        return []
    now = _torch_state()
    changed = [k for k in saved if now.get(k) != saved[k]]
    if "grad" in changed:
        torch.set_grad_enabled(saved["grad"])
    if "dtype" in changed:
        torch.set_default_dtype(saved["dtype"])
    if "deterministic" in changed or "warn_only" in changed:
        torch.use_deterministic_algorithms(saved["deterministic"], warn_only=saved["warn_only"])
    if "cudnn" in changed:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved["cudnn"]
    if "device" in changed:
        torch.set_default_device(None if saved["device"] == torch.device("cpu") else saved["device"])
    return changed


def _restore_environ(saved: dict[str, str]) -> list[str]:
    if os.environ == saved:
        return []
    for name in set(os.environ) - set(saved):
        os.environ.pop(name, None)
    os.environ.update(saved)
    return ["environ"]


def _restore_logging(state: _State) -> list[str]:
    changed = []
    manager = logging.Logger.manager
    if manager.disable != state.disable:
        logging.disable(state.disable)
        changed.append("logging.disable")
    for name, lg in list(manager.loggerDict.items()):
        if isinstance(lg, logging.Logger) and name in state.levels and (lg.level, lg.disabled) != state.levels[name]:
            lg.level, lg.disabled = state.levels[name]
            changed.append(f"logger {name}")
    if (logging.root.level, logging.root.disabled) != state.levels[""]:
        logging.root.level, logging.root.disabled = state.levels[""]
        changed.append("root logger")
    if changed:
        manager._clear_cache()  # type: ignore[attr-defined]  # private: loggers re-read their levels
    return changed


# -- the run of one target --------------------------------------------------------------------------------


class TargetRun:
    """One target's guarded run: ``built()`` after its construction drops the handlers and alarms it set."""

    def __init__(self, target: str, timeout_s: float | None) -> None:
        self.target, self.timeout_s = target, timeout_s
        self.main = threading.current_thread() is threading.main_thread()
        self.state = snapshot()
        self.pid = os.getpid()
        self.deadline: float | None = None
        self.changed: list[str] = []
        self.phase = "building"

    def arm(self) -> None:
        if not self.main:
            return
        signal.signal(signal.SIGINT, _on_interrupt)
        if self.timeout_s:
            signal.signal(signal.SIGALRM, _on_deadline)
            import time

            if self.deadline is None:
                self.deadline = time.monotonic() + self.timeout_s
            signal.setitimer(signal.ITIMER_REAL, max(self.deadline - time.monotonic(), 0.001))

    def built(self) -> None:
        """Signal handlers and alarms the target installed are removed; the run's timer runs on."""
        self._handlers_back()
        if _cwd() != self.state.cwd:  # paths in the report read against the run's cwd
            with contextlib.suppress(OSError):
                os.chdir(self.state.cwd)
        self.phase = "checking"
        self.arm()

    def _handlers_back(self) -> None:
        if not self.main:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        for number, handler in self.state.handlers.items():
            if handler is not None and signal.getsignal(number) is not handler:
                with contextlib.suppress(OSError, ValueError, TypeError):
                    signal.signal(number, handler)

    def close(self) -> None:
        if os.getpid() != self.pid:  # the target forked at import: its copy of this run ends here, silently
            os._exit(0)
        self._handlers_back()
        self.changed = restore(self.state)


def _on_deadline(signum: int, frame: Any) -> None:
    raise TargetTimeout()


def _on_interrupt(signum: int, frame: Any) -> None:
    _interrupted.set()
    raise UserInterrupt()


@contextlib.contextmanager
def target_run(target: str, timeout_s: float | None = None) -> Iterator[TargetRun]:
    """Run target code: stdin empty, breakpoints off, a deadline, state restored after (see the module doc)."""
    run = TargetRun(target, timeout_s)
    with _no_stdin(), _no_breakpoints():
        run.arm()
        try:
            yield run
        except KeyboardInterrupt as exc:
            if is_ours(exc):
                raise UserInterrupt() from None
            raise
        finally:
            run.close()
    if _interrupted.is_set():
        raise UserInterrupt()


@contextlib.contextmanager
def _no_stdin() -> Iterator[None]:
    saved_stdin, saved_fd = sys.stdin, None
    try:
        saved_fd = os.dup(0)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    except OSError:
        saved_fd = None
    sys.stdin = io.StringIO("")
    try:
        yield
    finally:
        sys.stdin = saved_stdin
        if saved_fd is not None:
            os.dup2(saved_fd, 0)
            os.close(saved_fd)


@contextlib.contextmanager
def _no_breakpoints() -> Iterator[None]:
    saved_hook, saved_env = sys.breakpointhook, os.environ.get("PYTHONBREAKPOINT")
    sys.breakpointhook = lambda *args, **kwargs: None
    os.environ["PYTHONBREAKPOINT"] = "0"
    try:
        yield
    finally:
        sys.breakpointhook = saved_hook
        if saved_env is None:
            os.environ.pop("PYTHONBREAKPOINT", None)
        else:
            os.environ["PYTHONBREAKPOINT"] = saved_env


def exit_now_if_threads_remain(code: int) -> None:
    """After the report: a non-daemon thread a target started must not keep the process alive."""
    alive = [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive() and not t.daemon]
    if not alive:
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def quiet_libraries() -> None:
    """transformers' own warnings stay out of a report: its verbosity is read from the environment when it is
    first imported (a setting of the library for this process, not of the run)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
