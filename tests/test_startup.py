"""What costs nothing unless asked: `--version`, `import trainer_compat`, and the pytest plugin in an unrelated run
import neither torch nor transformers (issue #12)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

HEAVY = ("torch", "transformers", "accelerate")


def _imported(stderr: str) -> set[str]:
    """Top-level packages a ``-X importtime`` run imported."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def _importtime(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


def test_version_imports_neither_torch_nor_transformers():
    done = _importtime("-m", "trainer_compat", "--version")
    assert done.returncode == 0 and done.stdout.startswith("trainer-compat "), done.stdout + done.stderr[-2000:]
    imported = _imported(done.stderr)
    assert "trainer_compat" in imported  # the measurement sees our own imports
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_the_package_root_is_lazy_and_complete():
    code = textwrap.dedent("""
        import sys
        import trainer_compat
        assert not [m for m in sys.modules if m.split(".")[0] in ("torch", "transformers")], "eager import"
        for name in trainer_compat.__all__:
            assert getattr(trainer_compat, name) is not None, name
        from trainer_compat import Report, check, patch
        from trainer_compat.api import check as real_check
        assert check is real_check and "torch" in sys.modules
        assert set(trainer_compat.__all__) <= set(dir(trainer_compat))
        try:
            trainer_compat.no_such_name
        except AttributeError as exc:
            assert "no_such_name" in str(exc)
        else:
            raise SystemExit("no AttributeError")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_plugin_imports_nothing_heavy_in_an_unrelated_suite(tmp_path):
    (tmp_path / "test_one.py").write_text(textwrap.dedent("""
        import sys

        def test_nothing_heavy_was_imported():
            assert "trainer_compat.pytest_plugin" in sys.modules  # the plugin did load
            heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "accelerate")
                           or (m.startswith("trainer_compat.") and m != "trainer_compat.pytest_plugin"))
            assert not heavy, heavy
    """))
    done = _importtime("-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "1 passed" in done.stdout
    assert not _imported(done.stderr) & set(HEAVY)


def test_static_check_of_the_seed_example_imports_neither_torch_nor_transformers():
    root = Path(__file__).resolve().parent.parent
    done = _importtime("-m", "trainer_compat", "check", "--static",
                       "examples/higgs_audio_wrapper.py:HiggsAudioModelWrapper", "--args", "examples/train_args.json",
                       cwd=root)
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]  # the seed example is not compatible
    assert "TC001" in done.stdout and "TC101" in done.stdout  # the verdict is the full one, class-level
    imported = _imported(done.stderr)
    assert "trainer_compat" in imported
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_rule_listing_and_docs_import_neither_torch_nor_transformers():
    for command in (("rules",), ("rule", "TC301", "--no-run"), ("rules", "--format", "json")):
        done = _importtime("-m", "trainer_compat", *command)
        assert done.returncode == 0, (command, done.stderr[-2000:])
        assert not _imported(done.stderr) & set(HEAVY), command
