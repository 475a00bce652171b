"""The probe's cost as a ratio to one plain Trainer training step on the same model and batch.

    python benchmarks/probe_cost.py [--repeat 5]

Both sides run in this process after the imports (imports excluded), on the same model and the same
synthetic batch; each figure is the median of --repeat runs. Baseline: build a Trainer with the same
arguments and train one step (max_steps=1), as a user's first step would. Target: ratio <= 2.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.filterwarnings("ignore")

import transformers  # noqa: E402

import trainer_compat  # noqa: E402
from trainer_compat.checker import build_subject  # noqa: E402
from trainer_compat.probe.batch import infer_inputs  # noqa: E402
from trainer_compat.testing import tiny_causal_lm  # noqa: E402

transformers.logging.set_verbosity_error()
ARGS = {"gradient_checkpointing": True, "per_device_train_batch_size": 2, "save_strategy": "no"}


def plain_step(model, example) -> float:
    with tempfile.TemporaryDirectory() as out:
        args = transformers.TrainingArguments(output_dir=out, max_steps=1, report_to=[], disable_tqdm=True,
                                              logging_steps=1, save_strategy="no", **{
                                                  k: v for k, v in ARGS.items() if k != "save_strategy"})
        start = time.perf_counter()
        trainer = transformers.Trainer(model=model, args=args, train_dataset=[dict(example)] * 2)
        trainer.remove_callback(transformers.trainer_callback.PrinterCallback)
        trainer.train()
        return time.perf_counter() - start


def probed(model) -> float:
    start = time.perf_counter()
    trainer_compat.check(model, args=ARGS, probe=True)
    return time.perf_counter() - start


SIZES = {"tiny": dict(n_layer=2, n_embd=32, n_head=2), "small": dict(n_layer=6, n_embd=384, n_head=6)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    for size, shape in SIZES.items():
        def build(shape=shape):
            return tiny_causal_lm(**shape)

        example = infer_inputs(build_subject(build()), "trainer").example
        plain, probe = [], []
        for _ in range(options.repeat):  # interleaved, fresh models, so neither side gets a warm advantage
            plain.append(plain_step(build(), example))
            probe.append(probed(build()))
        p, q = statistics.median(plain), statistics.median(probe)
        print(f"transformers {transformers.__version__}, {size} GPT-2 {shape}: plain Trainer step "
              f"{p * 1000:.0f} ms, check --probe {q * 1000:.0f} ms, ratio {q / p:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
