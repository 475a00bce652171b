"""The protocol audit: every access Trainer / Seq2SeqTrainer make to the model is classified.

On the installed transformers (each CI line: 4.46.x, 4.57.x, 5.x) no access may be left unclassified, and
every ``requirement`` entry must be covered by REQUIREMENTS or a rule Site. The synthetic sources show
the audit firing on a new member and staying silent on a classified one.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from trainer_compat.protocol import audit
from trainer_compat.protocol.data import REQUIREMENTS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "audit_protocol.py"
VERSION = importlib.metadata.version("transformers")


def _installed_dir() -> Path:
    spec = importlib.util.find_spec("transformers")  # the package's location only: nothing is imported
    assert spec is not None and spec.origin
    return Path(spec.origin).parent


def _site_patterns() -> list[str]:
    spec = importlib.util.spec_from_file_location("record_site_lines", ROOT / "scripts" / "record_site_lines.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [s.pattern for s in module.all_sites()]


def test_no_unclassified_access_in_the_installed_transformers():
    found = audit.release_accesses(_installed_dir())
    present = {name for name in audit.FILES if (_installed_dir() / name).is_file()}
    assert {a.file for a in found} == present >= {"trainer.py", "trainer_seq2seq.py"} and len(found) > 50
    missing = audit.unclassified(found, VERSION)
    assert not missing, "unclassified in transformers " + VERSION + ":\n" + "\n".join(a.where() for a in missing)


def test_classification_is_valid_and_requirements_are_covered():
    covered = audit.covered_members({r.member for r in REQUIREMENTS}, _site_patterns())
    assert audit.invalid_entries(audit.classification(), covered) == []


TRAINER = '''
class Trainer:
    def compute_loss(self, model, inputs):
        model.train()
        if hasattr(model, "some_new_member"):
            model.some_new_member(inputs)
        return model(**inputs)

    def save(self):
        return self.accelerator.unwrap_model(self.model).state_dict()
'''


def test_the_audit_finds_accesses_with_function_kind_and_guard():
    found = {(a.member, a.kind): a for a in audit.accesses(TRAINER, "trainer.py")}
    assert set(found) == {("train", "call"), ("some_new_member", "hasattr"), ("some_new_member", "call"),
                          ("__call__", "call"), ("state_dict", "call")}
    new = found[("some_new_member", "call")]
    assert (new.line, new.function, new.guard) == (6, "Trainer.compute_loss", "hasattr")
    assert found[("train", "call")].guard == "unguarded"
    assert found[("state_dict", "call")].receiver == "self.accelerator.unwrap_model(self.model)"


def test_fires_on_an_unclassified_member():
    missing = audit.unclassified(audit.accesses(TRAINER, "trainer.py"), "5.24.0")
    assert [a.where() for a in missing] == [
        "trainer.py:5 some_new_member (hasattr) in Trainer.compute_loss",
        "trainer.py:6 some_new_member (call) in Trainer.compute_loss",
    ]


def test_silent_once_the_member_is_classified():
    table = {**audit.classification(), "some_new_member": [
        audit.Entry("some_new_member", "guarded-optional", "hasattr-guarded in the synthetic source")]}
    assert audit.unclassified(audit.accesses(TRAINER, "trainer.py"), "5.24.0", table) == []


def test_a_version_range_limits_an_entry():
    from trainer_compat.versions import VersionRange

    table = {**audit.classification(), "some_new_member": [
        audit.Entry("some_new_member", "guarded-optional", "new in 5.30", VersionRange(since="5.30.0"))]}
    found = audit.accesses(TRAINER, "trainer.py")
    assert audit.unclassified(found, "5.30.0", table) == []
    assert len(audit.unclassified(found, "5.24.0", table)) == 2


def test_the_script_fails_on_a_release_with_an_unclassified_access(tmp_path):
    release = tmp_path / "src" / "5.24.0"
    release.mkdir(parents=True)
    (release / "trainer.py").write_text(TRAINER, encoding="utf-8")
    done = _script("--src", str(tmp_path / "src"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "5.24.0/trainer.py:6 some_new_member (call) in Trainer.compute_loss" in done.stdout


def _script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize("args", [("--src", "/nonexistent/tf-src"), ("--download", "4.10.0"),
                                  ("--download", "not-a-version")])
def test_bad_input_exits_2_with_one_line(args):
    done = _script(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""
