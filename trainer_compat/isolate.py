"""``--isolate``: check targets in a child process, under a timeout and a memory cap.

One child checks the targets in turn and streams each report back as a JSON line on a private pipe. When a
target hangs, crashes, ends the process or exhausts memory, it gets a report holding one finding about that
(TC801-TC804) and a fresh child checks the targets after it. A target that is bad input (a syntax error, an
``__init__`` that raises) ends the run as it does without isolation: one line, exit code 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from trainer_compat.errors import UsageError
from trainer_compat.formats import CI_FORMATS
from trainer_compat.isolate_child import FD_ENV as _FD_ENV
from trainer_compat.isolate_child import OUT_OF_MEMORY as _OUT_OF_MEMORY
from trainer_compat.report import Report

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MEMORY_MB = 8192
_STARTUP_S = 180.0  # importing torch and transformers in the child, before the first target's clock starts
_GRACE_S = 2.0  # the child's own guard reports a hang it can interrupt; the parent stops the rest


def isolate_by_default(fmt: str, probe: bool = False) -> bool:
    """CI formats isolate unless --no-isolate: there, one hostile target must not take the gate down. So does
    ``--probe`` in any format: it runs the model's own forward and backward (native code a crash in which would
    take the whole report down), and the child relays the probe's phases to this terminal."""
    return fmt in CI_FORMATS or probe  # the name as given: "text", concise's 0.1 name, keeps its in-process default


def run_checks(settings: list[Any], options: Any, fmt: str, progress: Any = None) -> list[Report]:
    """The reports for the command line's targets (``config.TargetSettings``), isolated or static if asked;
    ``progress`` (a ``render.progress.TargetProgress``) hears each target start and finish. Every mode has the
    per-target time limit (``--timeout``)."""
    from trainer_compat.targets import per_run

    with per_run():
        return _run_checks(settings, options, fmt, progress)


def _run_checks(settings: list[Any], options: Any, fmt: str, progress: Any = None) -> list[Report]:
    from trainer_compat.verdict import finalize
    from trainer_compat.workflow import check_target, guarded

    def each(check: Any) -> list[Report]:
        reports = []
        for i, s in enumerate(settings):
            if progress is not None:
                progress.start_target(i)
            reports.append(check(s))
            if progress is not None:
                progress.done_target(i, reports[-1])
        return reports

    static, isolate = getattr(options, "static", False), getattr(options, "isolate", None)
    limits = _limits(options)
    if static:
        if any(s.probe for s in settings):
            raise UsageError("--static runs no code, so it cannot --probe: drop one of them")
        from trainer_compat.static_mode import check_static
        from trainer_compat.workflow import _setup

        return each(lambda s: finalize(guarded(s.target, limits.timeout_s,
                                               lambda run: _static(s, check_static, _setup)), s.selection))
    if not (isolate if isolate is not None else isolate_by_default(fmt, any(s.probe for s in settings))):
        return each(lambda s: check_target(s, limits.timeout_s))
    requests = [{"spec": s.spec, "target": s.target, "args": s.args, "trainer": s.trainer, "data": s.data,
                 "collator": s.collator, "init_kwargs": s.init_kwargs, "probe": s.probe, "sample": s.sample,
                 "launch": s.launch, "peft": s.peft, "transformers_version": s.transformers_version}
                for s in settings]
    return [finalize(r, s.selection) for r, s in zip(check_isolated(requests, limits, progress), settings, strict=True)]


def _static(settings: Any, check_static: Any, setup: Any) -> Report:
    """``--static`` imports nothing: a Trainer subclass is rebuilt from its source like the target; data and a
    collator stay unread."""
    import dataclasses

    from trainer_compat.features import build_setup
    from trainer_compat.trainer_class import is_trainer_spec

    unread = [f"--{k} {v}" for k, v in (("data", settings.data), ("collator", settings.collator)) if v]
    trainer = settings.trainer
    if is_trainer_spec(trainer):
        trainer = _static_trainer(trainer)
        if trainer is None:
            unread.append(f"--trainer {settings.trainer}")
            trainer = "trainer"
    chosen = setup(settings.args, trainer, launch=settings.launch, static=True, peft=settings.peft) \
        if isinstance(trainer, str) else build_setup(settings.args, trainer, launch=settings.launch, peft=settings.peft,
                                                     static=True)
    report = check_static(settings.spec, chosen, target=settings.target,
                          transformers_version=settings.transformers_version)
    if not unread:
        return report
    note = f"static: {', '.join(unread)} not read (--static runs no code)"
    return dataclasses.replace(report, skipped=[*report.skipped, note])


def _static_trainer(spec: str) -> type | None:
    """The user's Trainer subclass rebuilt from source (its overrides are what the rules ask about)."""
    from trainer_compat.analysis import is_trainer_class
    from trainer_compat.static_mode import static_subject

    try:
        cls = static_subject(spec).cls
    except UsageError:
        return None
    return cls if isinstance(cls, type) and is_trainer_class(cls) else None


def _limits(options: Any) -> Limits:
    timeout, memory = getattr(options, "timeout", DEFAULT_TIMEOUT_S), getattr(options, "memory_limit", None)
    if not timeout or timeout <= 0:
        raise UsageError(f"--timeout: expected a positive number of seconds, got {timeout!r}")
    if memory is not None and memory < 0:
        raise UsageError(f"--memory-limit: expected megabytes (0: no cap), got {memory!r}")
    if memory and memory < 512:
        raise UsageError(f"--memory-limit: {memory} MB cannot even hold torch; give at least 512")
    return Limits(timeout_s=timeout, memory_mb=memory or None)


@dataclass(frozen=True)
class Limits:
    timeout_s: float = DEFAULT_TIMEOUT_S  # per target: import, build and check
    memory_mb: int | None = DEFAULT_MEMORY_MB  # address space of the child (RLIMIT_AS); None: no cap


def check_isolated(requests: list[dict[str, Any]], limits: Limits = Limits(), progress: Any = None) -> list[Report]:
    """Reports, in order, for JSON-able requests: spec, and optionally target, args, trainer, init_kwargs,
    probe, sample (as ``check`` takes them). The child checks them one after another: as one finishes
    (``progress.done_target``), the next starts."""
    reports: dict[int, Report] = {}
    start = 0
    if progress is not None:
        progress.start_target(0)
    while start < len(requests):
        child = _Child(requests[start:], limits, progress)
        for offset, report in child.results():
            reports[start + offset] = report
            if progress is not None:
                progress.done_target(start + offset, report)
                progress.start_target(start + offset + 1)
        start += child.done
    return [reports[i] for i in range(len(requests))]


class _Child:
    """One child process over a tail of the targets; ``done`` counts the targets it settled."""

    def __init__(self, requests: list[dict[str, Any]], limits: Limits, progress: Any = None) -> None:
        self.requests, self.limits, self.done, self.progress = requests, limits, 0, progress
        self.ready: dict[str, Any] = {}
        self.started: dict[str, Any] = {}
        read_fd, write_fd = os.pipe()
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - the child's output for its life; _stop() closes it
        self.nonce = secrets.token_hex(16)  # lines without it (a target writing to the pipe) are not ours
        self.run_mark = f"{os.getpid()}-{self.nonce}"  # every process the child starts inherits it
        payload = {"requests": requests, "memory_mb": limits.memory_mb, "sys_path": sys.path,
                   "nonce": self.nonce, "timeout_s": limits.timeout_s,
                   "progress": bool(getattr(progress, "enabled", False))}  # the probe's phases, on a terminal
        self.proc = subprocess.Popen(
            _child_command(), stdin=subprocess.PIPE, stdout=self.log,
            stderr=subprocess.STDOUT, pass_fds=(write_fd,), env=_child_env(write_fd, self.run_mark),
            start_new_session=True)
        os.close(write_fd)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(payload).encode())
        self.proc.stdin.close()
        self.stream = _Lines(read_fd, self.nonce)

    def results(self) -> Any:
        deadline = time.monotonic() + _STARTUP_S + self.limits.timeout_s
        current: int | None = None
        try:
            while True:
                message = self.stream.next(deadline)
                if message is None:  # the child ended (end of the stream), or the deadline passed
                    yield from self._failed(current, timed_out=time.monotonic() >= deadline)
                    return
                if "usage" in message:
                    raise UsageError(message["usage"])
                if "ready" in message:
                    self.ready = message["ready"]
                elif "progress" in message:
                    if self.progress is not None:
                        self.progress.relay(str(message["progress"]))
                elif "start" in message:
                    current, self.started = message["start"], message
                    deadline = time.monotonic() + self.limits.timeout_s + _GRACE_S  # the child's guard first
                else:
                    yield current, self._report(current, message)
                    self.done, current = self.done + 1, None
                    if self.done == len(self.requests):
                        return
        finally:
            self._stop()

    def _report(self, index: int | None, message: dict[str, Any]) -> Report:
        assert index is not None
        if "report" in message:
            return Report.from_dict(message["report"], self.ready.get("torch", ""))
        from trainer_compat.rules.isolation import BY_KIND

        if message.get("kind") in BY_KIND:
            return self._failure_report(index, message["kind"], message["detail"])
        raise UsageError(message["error"])

    def _failed(self, current: int | None, timed_out: bool) -> Any:
        if current is None:  # before any target: our own start-up failed
            raise UsageError(f"the isolated check could not start ({self._exit_text(timed_out)}): "
                             f"{self._log_tail() or 'no output'}")
        kind, detail = self._classify(timed_out)
        self.done += 1
        yield current, self._failure_report(current, kind, detail)

    def _classify(self, timed_out: bool) -> tuple[str, str]:
        tail = self._log_tail()
        if timed_out:
            return "hang", f"did not finish within {self.limits.timeout_s:g} s (import, build and check); stopped"
        code = self.proc.wait()
        if any(text in tail.lower() for text in _OUT_OF_MEMORY) or code == -signal.SIGKILL:
            return "memory", f"ran out of memory under a {self.limits.memory_mb} MB cap ({self._exit_text(False)})"
        if code < 0:
            return "crash", f"killed by {self._exit_text(False)}{': ' + tail if tail else ''}"
        return "exit", f"ended the process with exit code {code} (os._exit or a hard exit) during the check"

    def _exit_text(self, timed_out: bool) -> str:
        if timed_out:
            return "timed out"
        code = self.proc.wait()
        if code < 0:
            try:
                return f"signal {signal.Signals(-code).name}"
            except ValueError:
                return f"signal {-code}"
        return f"exit code {code}"

    def _failure_report(self, index: int, kind: str, detail: str) -> Report:
        request = self.requests[index]
        spec = request.get("target") or request["spec"]
        from trainer_compat.rules.isolation import BY_KIND

        version = self.ready.get("transformers", "")
        finding = BY_KIND[kind].failure(detail, version or None)
        return Report(target=spec, transformers_version=version, torch_version=self.ready.get("torch", ""),
                      trainer=self.started.get("trainer", ""), features=tuple(self.started.get("features", ())),
                      findings=[finding], skipped=[f"every check: the target took its isolated check down "
                                                   f"({finding.rule})"])

    def _log_tail(self) -> str:
        self.log.seek(0)
        lines = [line.strip() for line in self.log.read().decode(errors="replace").splitlines() if line.strip()]
        return lines[-1][:200] if lines else ""

    def _stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # the child and anything it started
        self.proc.wait()
        kill_marked(self.run_mark)  # what left the group (start_new_session, a double fork)
        self.stream.close()
        self.log.close()


_MARK_ENV = "TRAINER_COMPAT_ISOLATED_RUN"


def _child_command() -> list[str]:
    """``python -P`` (3.11+): the cwd is not put on sys.path, so files there (typing.py, torch.py) are not ours."""
    safe = ["-P"] if sys.version_info >= (3, 11) else []
    return [sys.executable, *safe, "-m", "trainer_compat.isolate_child"]


def _child_env(write_fd: int, mark: str) -> dict[str, str]:
    env = {**os.environ, _FD_ENV: str(write_fd), _MARK_ENV: mark}
    import trainer_compat

    home = os.path.dirname(os.path.dirname(os.path.abspath(trainer_compat.__file__)))
    if "site-packages" not in home and "dist-packages" not in home:  # a source checkout: -P must still find us
        env["PYTHONPATH"] = os.pathsep.join(p for p in (home, env.get("PYTHONPATH")) if p)
    return env


def kill_marked(mark: str) -> list[int]:
    """SIGKILL every process whose environment holds this run's mark (Linux /proc); their pids."""
    needle = f"{_MARK_ENV}={mark}".encode()
    killed = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if needle not in fh.read().split(b"\0"):
                    continue
            os.kill(int(entry), signal.SIGKILL)
            killed.append(int(entry))
        except OSError:
            continue
    return killed


class _Lines:
    """This run's JSON lines from a pipe (each starts with its nonce; other lines are dropped), with a deadline."""

    def __init__(self, fd: int, nonce: str = "") -> None:
        self.fd, self.buffer, self.prefix = fd, b"", f"{nonce} ".encode()
        self.selector = selectors.DefaultSelector()
        self.selector.register(fd, selectors.EVENT_READ)

    def next(self, deadline: float) -> dict[str, Any] | None:
        while True:
            while b"\n" not in self.buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not self.selector.select(left):
                    return None  # the deadline passed
                chunk = os.read(self.fd, 1 << 16)
                if not chunk:
                    return None
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\n", 1)
            message = self._ours(line)
            if message is not None:
                return message

    def _ours(self, line: bytes) -> dict[str, Any] | None:
        start = line.find(self.prefix)  # junk written before ours on the same line is skipped
        if start < 0:
            return None
        try:
            message = json.loads(line[start + len(self.prefix):])
        except ValueError:
            return None
        return message if isinstance(message, dict) else None

    def close(self) -> None:
        self.selector.close()
        os.close(self.fd)
