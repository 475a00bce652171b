"""TC805 agrees with the real Trainer: an empty ``datasets.py`` beside a training script makes ``Trainer.train()``
fail (transformers finds it, then reads ``datasets.Dataset``); without it the same script trains."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import trainer_compat
from trainer_compat.example_models import EXPLICIT_WRAPPER

SCRIPT = textwrap.dedent("""
    import torch
    from transformers import Trainer, TrainingArguments

    from model import Model

    data = [{"input_ids": torch.tensor([1, 2, 3, 4]), "labels": torch.tensor([1, 2, 3, 4])}] * 4
    args = TrainingArguments(output_dir="out", max_steps=1, report_to="none", use_cpu=True,
                             per_device_train_batch_size=2)
    Trainer(model=Model(), args=args, train_dataset=data).train()
    print("TRAINED")
""")
MODEL = EXPLICIT_WRAPPER  # the shipped example wrapper: a module-level `Model` class


def _project(tmp_path, shadow: bool):
    (tmp_path / "train.py").write_text(SCRIPT, encoding="utf-8")
    (tmp_path / "model.py").write_text(MODEL, encoding="utf-8")
    if shadow:
        (tmp_path / "datasets.py").write_text("", encoding="utf-8")
    run = subprocess.run([sys.executable, "train.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    saved_path, saved_modules = list(sys.path), set(sys.modules)
    try:  # loading the target puts its folder on sys.path: a later `import datasets` must not find this one
        codes = {f.rule for f in trainer_compat.check(_load(tmp_path / "model.py")).findings}
    finally:
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules:
            if getattr(sys.modules[name], "__file__", "") and str(tmp_path) in sys.modules[name].__file__:
                del sys.modules[name]
    return run, codes


def _load(path):
    from trainer_compat.targets import load_target

    return load_target(f"{path}:Model")


def test_a_datasets_py_beside_the_script_breaks_the_real_run_and_is_reported(tmp_path):
    run, codes = _project(tmp_path, shadow=True)
    assert run.returncode != 0 and "datasets" in run.stderr, run.stderr[-2000:]
    assert "TC805" in codes


def test_without_it_the_same_run_trains_and_nothing_is_reported(tmp_path):
    run, codes = _project(tmp_path, shadow=False)
    assert run.returncode == 0 and "TRAINED" in run.stdout, run.stderr[-2000:]
    assert "TC805" not in codes
