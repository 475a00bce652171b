"""Build the wheel and the sdist, check them, and run them as a new user would.

    python scripts/check_dist.py            # build, twine check, metadata; a fresh venv: torch, the wheel, the README
    python scripts/check_dist.py --quick    # the same, but the fresh venv borrows this environment's dependencies

Steps: ``python -m build`` (wheel and sdist, from a copy of the tracked files) and ``twine check`` in a tool venv of
their own (``build``, ``twine``, ``setuptools`` from the registry); the wheel's metadata (version from
``trainer_compat.__version__``, ``accelerate`` among the requirements, entry points, the shipped protocol data);
then a fresh virtual environment, without system site packages, where ``pip install torch==2.13.0 <wheel>``
resolves every runtime dependency (``--torch`` changes the torch requirement), and the README's commands:
``trainer-compat --version`` and the seed example's check (exit 0 or 1, never 2).

``--quick`` installs the wheel with ``--no-deps`` and borrows this interpreter's installed dependencies through a
path file: it proves the wheel's own contents (modules, data, entry points) in seconds, not that the dependencies
resolve. The full run takes minutes (torch alone is ~200 MB to unpack); tests/test_packaging.py runs ``--quick``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README_CHECK = ["check", "examples/higgs_audio_wrapper.py:HiggsAudioModelWrapper",
                "examples/higgs_audio_wrapper.py:HiggsAudioModelWrapperWithShim", "--args", "examples/train_args.json"]


def sh(*argv: object, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(map(str, argv))}\n{done.stdout[-3000:]}"
                         f"{done.stderr[-3000:]}")
    return done


def venv(path: Path) -> Path:
    sh(sys.executable, "-m", "venv", path)
    return path / "bin" / "python"


def tracked_copy(dest: Path) -> Path:
    """The tracked files (what a release is built from): no virtual environments, caches or local leftovers."""
    files = sh("git", "ls-files", "-z", cwd=ROOT).stdout.split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def build(work: Path) -> tuple[Path, Path]:
    tools = venv(work / "tools")
    sh(tools, "-m", "pip", "install", "-q", "build>=1", "twine>=5", "setuptools>=68", "wheel")
    source = tracked_copy(work / "src")
    sh(tools, "-m", "build", "--no-isolation", "--outdir", work / "dist", source)
    wheel, = (work / "dist").glob("*.whl")
    sdist, = (work / "dist").glob("*.tar.gz")
    print(sh(tools, "-m", "twine", "check", "--strict", wheel, sdist).stdout.strip())
    return wheel, sdist


def metadata(wheel: Path) -> dict[str, object]:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(archive.read(meta_name).decode())
        entry_points = archive.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    return {"version": meta["Version"], "requires": meta.get_all("Requires-Dist") or [], "names": names,
            "entry_points": entry_points}


def expected_version() -> str:
    namespace: dict[str, object] = {}
    for line in (ROOT / "trainer_compat" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            exec(line, namespace)
    return str(namespace["__version__"])


def check_metadata(wheel: Path) -> None:
    meta = metadata(wheel)
    problems = []
    if meta["version"] != expected_version():
        problems.append(f"version {meta['version']} is not trainer_compat.__version__ {expected_version()}")
    requires = [r.split(";")[0].replace(" ", "") for r in meta["requires"]  # type: ignore[union-attr]
                if "extra ==" not in r]  # the runtime requirements, not the extras
    for needed in ("torch", "transformers", "accelerate"):
        if not any(r.startswith(needed) for r in requires):
            problems.append(f"{needed} is not a runtime requirement: {requires}")
    if any(r.startswith("datasets") for r in requires):
        problems.append("datasets is a runtime requirement (the runtime never needs it)")
    names = meta["names"]
    for data in ("trainer_compat/py.typed", "trainer_compat/protocol/"):
        if not any(n.startswith(data) for n in names):  # type: ignore[union-attr]
            problems.append(f"{data} is not in the wheel")
    if "trainer-compat = trainer_compat.cli:main" not in str(meta["entry_points"]) or \
            "trainer_compat = trainer_compat.pytest_plugin" not in str(meta["entry_points"]):
        problems.append(f"entry points: {meta['entry_points']}")
    if problems:
        raise SystemExit("wheel metadata:\n  " + "\n  ".join(problems))
    print(f"metadata: version {meta['version']}, requires {', '.join(requires)}")


def install(work: Path, wheel: Path, quick: bool, torch: str) -> Path:
    python = venv(work / "fresh")
    pip = [python, "-m", "pip", "install", "-q"]
    if quick:  # this interpreter's dependencies, behind the fresh venv's own site-packages
        sh(*pip, "--no-deps", wheel)
        site = Path(sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
        (site / "zz_borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    else:
        sh(*pip, torch, wheel)
    return python


def run_readme(python: Path, work: Path) -> None:
    binary = python.parent / "trainer-compat"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1")
    version = sh(binary, "--version", cwd=work, env=env).stdout.strip()
    where = sh(python, "-c", "import trainer_compat; print(trainer_compat.__file__)", cwd=work, env=env).stdout
    if str(work) not in where:
        raise SystemExit(f"the fresh venv imports trainer_compat from {where.strip()}, not from the wheel")
    project = work / "project"
    shutil.copytree(ROOT / "examples", project / "examples")
    started = time.perf_counter()
    done = subprocess.run([binary, *README_CHECK], cwd=project, env=env, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        raise SystemExit(f"the README's check exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    print(f"{version}; README check exit {done.returncode} in {time.perf_counter() - started:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="borrow this environment's dependencies")
    parser.add_argument("--torch", default="torch==2.13.0", help="the torch requirement of the fresh venv")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and leave it there")
    options = parser.parse_args(argv)
    work = Path(options.keep) if options.keep else Path(tempfile.mkdtemp(prefix="trainer-compat-dist-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        wheel, _sdist = build(work)
        check_metadata(wheel)
        python = install(work, wheel, options.quick, options.torch)
        run_readme(python, work)
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"ok": True, "quick": options.quick, "seconds": round(time.perf_counter() - started, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
