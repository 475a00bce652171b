"""`trainer-compat fix` under faults (issue #16): the files come back byte-exact as expected, or untouched.

Most cases stub the re-check in the child (what they test is how files are read and written); one run checks every
layout together in the real child, and the time-bound, signal and all-or-none cases run the real child too.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from trainer_compat.cli.fix import add_fix_parser
from trainer_compat.shims import commit

ARGS = '{"gradient_checkpointing": true}'
PLAIN = '''"""A light wrapper for the fixer's fault tests."""
import torch.nn as nn

from trainer_compat.testing import tiny_causal_lm


class Wrapper(nn.Module):
    def __init__(self):
        super().__init__()
        self.lm = tiny_causal_lm(tie=False)

    def forward(self, **kwargs):
        return self.lm(**kwargs)
'''
# a class decorator that breaks (or hangs) only once the shims are in the class: the original imports, the fix not
GUARDED = PLAIN.replace("class Wrapper(", '''def no_shims(cls):
    if "gradient_checkpointing_enable" in vars(cls):
        {action}
    return cls


@no_shims
class Wrapper(''')
BROKEN = GUARDED.replace("{action}", 'raise RuntimeError("this class refuses shims")')
HANGS = GUARDED.replace("{action}", '''import os, pathlib, time
        pathlib.Path(os.environ["TC_HANG_MARK"]).write_text(str(os.getpid()))
        time.sleep(600)''')

LAYOUTS = {  # how the plain LF/UTF-8 file is turned into each layout (the fixed file must turn the same way)
    "bom_crlf": lambda text: b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"),
    "cr_only": lambda text: text.replace("\n", "\r").encode("utf-8"),
    "latin1_cookie": lambda text: ("# -*- coding: latin-1 -*-\n# caf\xe9 cr\xe8me\n" + text).encode("latin-1"),
}


def fix(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_fix_parser(parser.add_subparsers(dest="command"))
    options = parser.parse_args(["fix", *argv])
    return options.handler(options)


@pytest.fixture
def no_child(monkeypatch):
    """The re-check in a fresh interpreter stubbed (no findings left): these tests are about the files."""
    monkeypatch.setattr(commit, "verify", lambda new, specs, *args, **kwargs: {spec: [] for spec in specs})


@pytest.fixture(scope="module")
def fixed_plain(tmp_path_factory) -> str:
    """The plain file as fix --write leaves it (the stubbed child: only the edit matters here)."""
    target = tmp_path_factory.mktemp("plain") / "plain_wrapper.py"
    target.write_text(PLAIN)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(commit, "verify", lambda new, specs, *args, **kwargs: {spec: [] for spec in specs})
        assert fix(f"{target}:Wrapper", "--write", "--args", ARGS) == 0
    text = target.read_text()
    assert text != PLAIN and "import inspect" in text and "def gradient_checkpointing_enable" in text
    return text


def listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name != "__pycache__"}


# -- encodings and line endings -------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_write_keeps_encoding_bom_and_line_endings(layout, tmp_path, fixed_plain, no_child):
    turn = LAYOUTS[layout]
    target = tmp_path / f"{layout}_wrapper.py"
    target.write_bytes(turn(PLAIN))
    assert fix(f"{target}:Wrapper", "--write", "--args", ARGS) == 0
    assert target.read_bytes() == turn(fixed_plain)
    assert fix(f"{target}:Wrapper", "--write", "--args", ARGS) == 0 and target.read_bytes() == turn(fixed_plain)


def test_diff_of_a_bom_crlf_file_applies_with_git_apply(tmp_path, fixed_plain, capsysbinary):
    turn = LAYOUTS["bom_crlf"]
    target = tmp_path / "crlf_wrapper.py"
    target.write_bytes(turn(PLAIN))
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert fix(f"{target}:Wrapper", "--diff", "--args", ARGS) == 1
    diff = capsysbinary.readouterr().out
    assert diff.startswith(b"--- a/crlf_wrapper.py\n+++ b/crlf_wrapper.py\n"), diff[:100]
    (tmp_path / "fix.diff").write_bytes(diff)
    done = subprocess.run(["git", "apply", "fix.diff"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == turn(fixed_plain)


# -- links -----------------------------------------------------------------------------------------------------------

def test_write_through_a_symlink_edits_its_target_and_keeps_the_link(tmp_path, fixed_plain, no_child):
    real = tmp_path / "src" / "real_wrapper.py"
    real.parent.mkdir()
    real.write_text(PLAIN)
    link = tmp_path / "link_wrapper.py"
    link.symlink_to(real)
    assert fix(f"{link}:Wrapper", "--write", "--args", ARGS) == 0
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == fixed_plain
    assert listing(tmp_path) == {"src", "link_wrapper.py"} and listing(real.parent) == {"real_wrapper.py"}


def test_write_to_a_hard_linked_file_rewrites_it_in_place(tmp_path, fixed_plain, no_child):
    first = tmp_path / "first_wrapper.py"
    first.write_text(PLAIN)
    second = tmp_path / "second_name.py"
    os.link(first, second)
    inode = first.stat().st_ino
    assert fix(f"{first}:Wrapper", "--write", "--args", ARGS) == 0
    assert first.stat().st_ino == second.stat().st_ino == inode and first.stat().st_nlink == 2
    assert first.read_text() == second.read_text() == fixed_plain


def test_mode_is_kept(tmp_path, fixed_plain, no_child):
    target = tmp_path / "mode_wrapper.py"
    target.write_text(PLAIN)
    target.chmod(0o640)
    assert fix(f"{target}:Wrapper", "--write", "--args", ARGS) == 0
    assert target.stat().st_mode & 0o7777 == 0o640 and target.read_text() == fixed_plain


# -- a change made while fix runs -----------------------------------------------------------------------------------

def test_an_edit_just_before_the_replace_is_detected_and_refused(tmp_path, monkeypatch, capsys, no_child):
    target = tmp_path / "raced_wrapper.py"
    target.write_text(PLAIN)
    stage = commit._stage

    def edit_then_stage(source, data):  # the last moment before the files are compared and replaced
        with open(source.real, "a") as handle:
            handle.write("# edited by someone else\n")
        return stage(source, data)

    monkeypatch.setattr(commit, "_stage", edit_then_stage)
    assert fix(f"{target}:Wrapper", "--write", "--args", ARGS) == 2
    assert target.read_text() == PLAIN + "# edited by someone else\n"
    err = capsys.readouterr().err
    assert "changed since it was read; nothing written" in err and len(err.strip().splitlines()) == 1
    assert listing(tmp_path) == {"raced_wrapper.py"}  # the staged copy is gone


def test_ctrl_c_while_the_files_are_written_is_held_until_all_are(tmp_path, monkeypatch, capsys, fixed_plain,
                                                                   no_child):
    first, second = tmp_path / "first_wrapper.py", tmp_path / "second_wrapper.py"
    first.write_text(PLAIN)
    second.write_text(PLAIN)
    stage = commit._stage

    def interrupt_then_stage(source, data):
        if source.real == first:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the first file is staged
        return stage(source, data)

    monkeypatch.setattr(commit, "_stage", interrupt_then_stage)
    assert fix(f"{first}:Wrapper", f"{second}:Wrapper", "--write", "--args", ARGS) == 130
    assert first.read_text() == second.read_text() == fixed_plain  # all, not half
    assert capsys.readouterr().err == "trainer-compat: error: interrupted; the fixed files were written\n"
    assert listing(tmp_path) == {"first_wrapper.py", "second_wrapper.py"}


# -- several targets: one edit per file, all files or none -----------------------------------------------------------

def test_two_classes_of_one_file_make_one_diff_that_git_applies(tmp_path, capsysbinary, no_child):
    two = PLAIN + "\n\nclass Second(Wrapper):\n    pass\n"
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    target = repo / "two_wrappers.py"
    target.write_text(two)
    specs = (f"{target}:Wrapper", f"{target}:Second")
    assert fix(*specs, "--diff", "--args", ARGS, "--all") == 1
    diff = capsysbinary.readouterr().out
    assert diff.count(b"+++ b/two_wrappers.py") == 1 and diff.count(b"+import inspect") == 1
    (tmp_path / "fix.diff").write_bytes(diff)
    done = subprocess.run(["git", "apply", "--check", str(tmp_path / "fix.diff")], cwd=repo, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    subprocess.run(["git", "apply", str(tmp_path / "fix.diff")], cwd=repo, check=True)
    applied = target.read_bytes()
    target.write_text(two)
    assert fix(*specs, "--write", "--args", ARGS, "--all") == 0
    assert target.read_bytes() == applied
    assert applied.count(b"def gradient_checkpointing_enable") == 2  # both classes got their block


def test_a_second_target_that_cannot_be_loaded_leaves_the_first_file_untouched(tmp_path, capsys, no_child):
    first = tmp_path / "first_wrapper.py"
    first.write_text(PLAIN)
    assert fix(f"{first}:Wrapper", f"{first}:Missing", "--write", "--args", ARGS) == 2
    assert first.read_text() == PLAIN and "has no attribute 'Missing'" in capsys.readouterr().err


def test_a_second_target_whose_fix_fails_its_check_leaves_both_files_untouched(tmp_path, capsys):
    first, second = tmp_path / "good_wrapper.py", tmp_path / "bad_wrapper.py"
    first.write_text(PLAIN)
    second.write_text(BROKEN)
    assert fix(f"{first}:Wrapper", f"{second}:Wrapper", "--write", "--args", ARGS) == 2  # the real child
    assert first.read_text() == PLAIN and second.read_text() == BROKEN
    err = capsys.readouterr().err
    assert "does not import and check cleanly" in err and "this class refuses shims" in err
    assert listing(tmp_path) == {"good_wrapper.py", "bad_wrapper.py"}


def test_every_layout_passes_the_real_check_in_one_child(tmp_path, fixed_plain, capsys):
    """The child imports each original name with the candidate's bytes: BOM, CRLF, CR, latin-1, links."""
    files = {}
    for layout, turn in LAYOUTS.items():
        files[layout] = tmp_path / f"{layout}_wrapper.py"
        files[layout].write_bytes(turn(PLAIN))
    real = tmp_path / "real_wrapper.py"
    real.write_text(PLAIN)
    (tmp_path / "link_wrapper.py").symlink_to(real)
    os.link(real, tmp_path / "hard_wrapper.py")
    specs = [f"{path}:Wrapper" for path in files.values()] + [f"{tmp_path / 'link_wrapper.py'}:Wrapper"]
    assert fix(*specs, "--write", "--args", ARGS) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert out.count("Wrapper is now compatible") == 4, out
    for layout, path in files.items():
        assert path.read_bytes() == LAYOUTS[layout](fixed_plain), layout
    assert (tmp_path / "hard_wrapper.py").read_text() == real.read_text() == fixed_plain
    assert (tmp_path / "link_wrapper.py").is_symlink()


# -- the check of the fixed file: bounded, and no trace on a signal -------------------------------------------------

def test_a_fix_that_hangs_on_import_is_refused_after_the_verify_timeout(tmp_path, monkeypatch, capsys):
    target = tmp_path / "hang_wrapper.py"
    target.write_text(HANGS)
    monkeypatch.setenv("TC_HANG_MARK", str(tmp_path.parent / f"{tmp_path.name}.mark"))
    start = time.monotonic()
    assert fix(f"{target}:Wrapper", "--write", "--args", ARGS, "--verify-timeout", "4") == 2
    assert time.monotonic() - start < 60
    err = capsys.readouterr().err
    assert "took longer than 4 s" in err and "nothing written" in err and len(err.strip().splitlines()) == 1
    assert target.read_text() == HANGS and listing(tmp_path) == {"hang_wrapper.py"}


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_the_check_leaves_no_candidate_and_exits_quietly(signum, code, tmp_path):
    folder, scratch = tmp_path / "project", tmp_path / "tmp"
    folder.mkdir()
    scratch.mkdir()
    target = folder / "hang_wrapper.py"
    target.write_text(HANGS)
    mark = tmp_path / "child.pid"
    env = dict(os.environ, TC_HANG_MARK=str(mark), TMPDIR=str(scratch))
    # a terminal's Ctrl-C: SIGINT as Python's KeyboardInterrupt, even where the test runner was started ignoring it
    launcher = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                "sys.argv = ['trainer-compat'] + sys.argv[1:]; runpy.run_module('trainer_compat', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", launcher, "fix", f"{target}:Wrapper", "--write", "--args", ARGS],
                            env=env, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert mark.exists(), proc.communicate(timeout=5)
        assert list(scratch.iterdir()), "the candidate lives in the temporary folder while it is checked"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, (out, err)
    assert err == "trainer-compat: error: interrupted; no file was changed\n", err
    assert target.read_text() == HANGS and listing(folder) == {"hang_wrapper.py"} and not list(scratch.iterdir())
    child = int(mark.read_text())
    for _ in range(50):  # the checking child was killed with its group
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the checking child {child} outlived fix")


# -- where fix refuses to write ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["--write", "--diff"])
def test_a_class_of_an_installed_library_is_refused_in_one_line(mode, capsys):
    assert fix("torch.nn:Transformer", mode) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert "installed library" in captured.err and "subclass it in your code" in captured.err


def test_a_file_the_parser_would_not_give_back_unchanged_is_refused_untouched(tmp_path, capsys, no_child):
    target = tmp_path / "formfeed_wrapper.py"
    data = PLAIN.replace("\nfrom trainer", "\n\ffrom trainer").encode()  # LibCST drops a form feed before a line
    target.write_bytes(data)
    assert fix(f"{target}:Wrapper", "--write", "--args", ARGS) == 2
    err = capsys.readouterr().err
    assert target.read_bytes() == data and "would not give its bytes back unchanged" in err
    assert len(err.strip().splitlines()) == 1


# -- the added import where it runs before the class ---------------------------------------------------------------

@pytest.mark.parametrize("source", [
    "import torch\n\n\nclass W:\n    pass\n\n\nimport os\n",
    "import torch\n\n\nclass W:\n    pass\n\n\nimport inspect\n",
    "import os\nimport torch\nX = 1\nimport abc\n\n\nclass W:\n    pass\n",
])
def test_import_inspect_runs_before_the_class_whatever_comes_after(source):
    from trainer_compat.shims.edit import add_block

    text = add_block(source, "W", "    x = inspect.signature\n", set(), ("inspect",))
    lines = text.splitlines()
    assert lines.index("import inspect") < lines.index("class W:")
    exec(compile(text.replace("import torch\n", ""), "<fixed>", "exec"), {})  # the class body finds inspect
    if "import os\nimport torch" in source:
        assert lines[:2] == ["import inspect", "import os"]  # the first block, sorted


# -- messages whole -----------------------------------------------------------------------------------------------

def test_patch_and_fix_messages_are_never_cut_inside_a_word(capsys):
    from trainer_compat.cli.fix import _report
    from trainer_compat.findings import Finding, Severity
    from trainer_compat.report import Report
    from trainer_compat.shims.fix import Proposal
    from trainer_compat.shims.plan import Notes, Plan
    from trainer_compat.shims.result import PatchResult

    message = ("Trainer calls gradient_checkpointing_enable() on the model it was given, which this wrapper never "
               "makes, model.gradient_checkpointing_enable reaches nothing and training runs without checkpointing")
    assert len(message) > 140
    finding = Finding(rule="TC001", name="x", severity=Severity.ERROR, message=message, member="m")
    before = Report("W", "5", "2", "trainer", (), findings=[finding])
    after = Report("W", "5", "2", "trainer", (), findings=[finding])
    text = str(PatchResult(model=None, plan=Plan(original=object), notes=Notes(), before=before, after=after))
    assert message in text
    source = SimpleNamespace(path="w.py")
    _report(Proposal("W", "W", source, "", set(), (), Notes(), before), [["TC001", "error", "m", message]])
    assert message in capsys.readouterr().out
