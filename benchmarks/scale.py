"""How `trainer-compat check` scales with the number of targets (issue #15): 1, 100 and 500 tiny targets taken
from one file and from as many files, each run a fresh process; wall seconds and peak RSS.

    python benchmarks/scale.py [--counts 1 100 500] [--mode default|static|isolate]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

CLASS = '''

class Model{i}(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, input_ids, labels=None):
        return {{"loss": self.proj(input_ids.float()).sum()}}
'''
HEADER = "import torch.nn as nn\n"


def _one_file(folder: Path, count: int) -> list[str]:
    path = folder / "models.py"
    path.write_text(HEADER + "".join(CLASS.format(i=i) for i in range(count)), encoding="utf-8")
    return [f"{path}:Model{i}" for i in range(count)]


def _many_files(folder: Path, count: int) -> list[str]:
    targets = []
    for i in range(count):
        path = folder / f"model_{i}.py"
        path.write_text(HEADER + CLASS.format(i=i), encoding="utf-8")
        targets.append(f"{path}:Model{i}")
    return targets


_WRAPPER = ("import resource, subprocess, sys, time; t = time.monotonic(); "
            "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode; "
            "print(rc, time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def measure(targets: list[str], mode: str) -> tuple[int, float, float]:
    """(exit code, seconds, peak RSS in MiB) of one check of ``targets`` in a fresh process."""
    flags = {"default": ["--no-isolate"], "static": ["--static"], "isolate": ["--isolate"]}[mode]
    command = [sys.executable, "-m", "trainer_compat", "check", *targets, "--format", "json", *flags]
    out = subprocess.run([sys.executable, "-c", _WRAPPER, *command], capture_output=True, text=True, check=True)
    code, seconds, rss_kib = out.stdout.split()
    return int(code), float(seconds), int(rss_kib) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 100, 500])
    parser.add_argument("--mode", choices=("default", "static", "isolate"), default="default")
    options = parser.parse_args()
    print(f"mode {options.mode}: layout, targets, exit code, seconds, per extra target (ms), peak RSS (MiB)")
    for layout, make in (("one file", _one_file), ("many files", _many_files)):
        base: float | None = None
        for count in options.counts:
            with tempfile.TemporaryDirectory() as folder:
                code, seconds, rss = measure(make(Path(folder), count), options.mode)
            base = seconds if base is None else base
            extra = (seconds - base) / (count - 1) * 1000 if count > 1 else 0.0
            print(f"{layout:10} {count:4} exit {code}  {seconds:7.2f} s  {extra:6.1f} ms  {rss:7.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
