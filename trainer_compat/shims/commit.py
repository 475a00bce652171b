"""How ``trainer-compat fix --write`` touches files: byte-faithful, verified, all or none.

A file is read once as bytes (its encoding, BOM and line endings travel with them). The fixed texts are checked in
one fresh interpreter that imports each original file under its own name and path, with the candidate's code in
place of the file's (the candidates live in a temporary folder, never beside the sources), within a bounded time.
Then every file is written or none: through a symlink the link's target is edited and the link kept; a file with
hard links is rewritten in place so every name sees the change; any other file is replaced atomically, its mode kept.
A file that changed since it was read is refused. SIGINT, SIGTERM and SIGHUP leave no candidate behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer_compat.errors import UsageError

_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class FixRefused(UsageError):
    pass


class Interrupted(BaseException):
    """SIGTERM or SIGHUP while fix runs (SIGINT arrives as KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@dataclass
class SourceFile:
    path: Path  # as the class was loaded from (a symlink stays a symlink here)
    real: Path  # the file the bytes live in
    raw: bytes
    stat: os.stat_result

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


def read_source(path: Path) -> SourceFile:
    real = path.resolve()
    with open(real, "rb") as handle:
        stat = os.fstat(handle.fileno())
        raw = handle.read()
    return SourceFile(path, real, raw, stat)


def installed_library(path: Path) -> bool:
    """The file belongs to an installed distribution or the standard library, not to the user's project."""
    real = path.resolve()
    if {"site-packages", "dist-packages"} & set(real.parts):
        return True
    paths = sysconfig.get_paths()
    roots = {Path(paths[key]).resolve() for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    return any(real.is_relative_to(root) for root in roots)


# -- verification ---------------------------------------------------------------------------------------------------

_VERIFY = r"""
import io, json, linecache, os, sys, threading, time, tokenize, warnings
import importlib.machinery as machinery

parent = os.getppid()

def _watch():  # the parent died (SIGKILL): do not live on
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(3)

threading.Thread(target=_watch, daemon=True).start()
warnings.simplefilter("ignore")
files = json.loads(sys.argv[1])
_get_code = machinery.SourceFileLoader.get_code

def get_code(self, fullname):
    filename = self.get_filename(fullname)
    candidate = files.get(os.path.realpath(filename))
    if candidate is None:
        return _get_code(self, fullname)
    with open(candidate, "rb") as handle:
        data = handle.read()
    encoding = tokenize.detect_encoding(io.BytesIO(data).readline)[0]
    lines = io.StringIO(data.decode(encoding), newline=None).readlines()
    linecache.cache[filename] = (len(data), None, lines, filename)
    return compile(data, filename, "exec", dont_inherit=True)

machinery.SourceFileLoader.get_code = get_code
import trainer_compat
from trainer_compat.targets import load_target
found = {}
for spec in json.loads(sys.argv[2]):
    report = trainer_compat.check(load_target(spec), args=json.loads(sys.argv[3]), trainer=sys.argv[4])
    found[spec] = [[f.rule, f.severity.value, f.member, f.message.splitlines()[0]] for f in report.findings]
print(json.dumps(found))
"""


def verify(new: dict[Path, bytes], specs: list[str], fields: Any, trainer: str,
           timeout: float) -> dict[str, list[list[Any]]]:
    """Import and check every target with its file's fixed bytes in a fresh interpreter: the findings per target,
    or FixRefused (it fails, or takes longer than ``timeout`` seconds)."""
    with tempfile.TemporaryDirectory(prefix="trainer-compat-fix-") as folder:
        files = {}
        for i, (real, data) in enumerate(new.items()):
            candidate = Path(folder) / f"{i}_{real.name}"
            candidate.write_bytes(data)
            files[str(real)] = str(candidate)
        argv = [sys.executable, "-c", _VERIFY, json.dumps(files), json.dumps(specs), json.dumps(fields), trainer]
        code, out, err = _run(argv, timeout)
    if code is None:
        raise FixRefused(f"checking the fixed {_names(new)} took longer than {timeout:g} s (it hangs on import?); "
                         "nothing written (--verify-timeout SECONDS to wait longer)")
    if code != 0:
        tail = (err.strip().splitlines() or ["(no output)"])[-1]
        raise FixRefused(f"the fixed {_names(new)} does not import and check cleanly: {tail}; nothing written "
                         "(rerun with --diff to see the change)")
    return json.loads(out.strip().splitlines()[-1])


def _names(new: dict[Path, bytes]) -> str:
    return ", ".join(path.name for path in new)


def _run(argv: list[str], timeout: float) -> tuple[int | None, str, str]:
    """The child's exit code and output; None for the code when it ran out of time. It runs in a session of its own
    (a terminal's Ctrl-C goes to fix, which ends it), and its whole group is killed on timeout or interruption."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", TRANSFORMERS_VERBOSITY="error")
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                             text=True, env=env, cwd=os.getcwd(), start_new_session=True)
    try:
        out, err = child.communicate(timeout=timeout)
        return child.returncode, out, err
    except subprocess.TimeoutExpired:
        return None, "", ""
    finally:
        if child.poll() is None:
            _kill(child)


def _kill(child: subprocess.Popen[str]) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        child.kill()
    child.communicate()


# -- writing ---------------------------------------------------------------------------------------------------------

@contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM and SIGHUP raise Interrupted while fix runs, so every ``finally`` runs (the candidates go)."""
    def raise_interrupted(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    try:
        previous = {s: signal.signal(s, raise_interrupted) for s in _SIGNALS}
    except ValueError:  # not the main thread: signals stay as they are
        previous = {}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def _deferred_signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP wait until every file is written (or none is): all or none holds under Ctrl-C too.
    Their Python handlers (which run in the main thread whatever thread the signal hits) only note them meanwhile;
    the first one noted is then handled as it would have been."""
    held: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        held.append(signum)

    try:
        previous = {s: signal.signal(s, hold) for s in (signal.SIGINT, *_SIGNALS)}
    except ValueError:  # not the main thread: signals stay as they are
        previous = {}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if held:
            _deliver(held[0], previous[signal.Signals(held[0])])


def _deliver(signum: int, handler: Any) -> None:
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signum)


def write_all(changes: list[tuple[SourceFile, bytes]], written: list[bool] | None = None) -> None:
    """Write every file or none; FixRefused (nothing written) when one changed since it was read or cannot be
    written. A replace that fails half-way puts the files already written back. ``written`` gets True once they are
    (a signal held back meanwhile is raised after that)."""
    staged: list[tuple[SourceFile, bytes, Path | None]] = []
    with _deferred_signals():
        try:
            for source, data in changes:
                staged.append((source, data, None if source.stat.st_nlink > 1 else _stage(source, data)))
            for source, _, _ in staged:
                _check_unchanged(source)
            _replace_all(staged)
            if written is not None:
                written.append(True)
        except OSError as exc:
            raise FixRefused(f"cannot write {exc.filename or 'the file'}: {exc.strerror or exc}; nothing written") \
                from exc
        finally:
            for _, _, stage in staged:
                if stage is not None:
                    stage.unlink(missing_ok=True)


def _stage(source: SourceFile, data: bytes) -> Path:
    """The new bytes beside the real file (same filesystem: the rename is atomic), with its mode."""
    stage = source.real.with_name(f".{source.real.name}.trainer-compat-{os.getpid()}.tmp")
    with open(stage, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(stage, source.stat.st_mode & 0o7777)
    return stage


def _check_unchanged(source: SourceFile) -> None:
    now = os.stat(source.real)
    same = (now.st_ino, now.st_size, now.st_mtime_ns) == (source.stat.st_ino, source.stat.st_size,
                                                           source.stat.st_mtime_ns)
    if not same or source.real.read_bytes() != source.raw:
        raise FixRefused(f"{source.path}: changed since it was read; nothing written (run fix again)")


def _replace_all(staged: list[tuple[SourceFile, bytes, Path | None]]) -> None:
    done: list[SourceFile] = []
    try:
        for source, data, stage in staged:
            if stage is None:
                _write_in_place(source.real, data)
            else:
                os.replace(stage, source.real)
            done.append(source)
    except OSError:
        for source in done:  # best effort: the files written so far get their bytes back
            with suppress(OSError):
                _write_in_place(source.real, source.raw)
        raise


def _write_in_place(path: Path, data: bytes) -> None:
    """Rewrite the file's own inode (hard links keep sharing it)."""
    with open(path, "r+b") as handle:
        handle.write(data)
        handle.truncate()
        handle.flush()
        os.fsync(handle.fileno())
