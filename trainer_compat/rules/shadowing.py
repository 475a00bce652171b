"""A file of the user's project named like a library that Trainer, transformers or the checker import."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

from trainer_compat.example_models import EXPLICIT_WRAPPER
from trainer_compat.features import Feature
from trainer_compat.findings import Finding, Location, Severity
from trainer_compat.rules.base import Context, Example, Expect, Rule

# What a training run imports by name: transformers at import (its own dependencies) and Trainer when it checks
# for or uses an integration (`is_datasets_available()` finds a datasets.py, then Trainer reads datasets.Dataset).
# Not the checker's own imports (rich): the user's run never makes them.
_IMPORTED_BY_THE_RUN = ("torch", "transformers", "accelerate", "datasets", "peft", "trl", "safetensors",
                        "huggingface_hub", "tokenizers", "numpy", "yaml", "packaging", "regex", "tqdm", "deepspeed")

_SHADOWED = """
import pathlib

pathlib.Path(__file__).with_name("datasets.py").write_text("")  # the project holds a datasets.py of its own
""" + EXPLICIT_WRAPPER


@functools.cache
def _installed() -> frozenset[str]:
    """Top-level names that installed distributions provide (read from their metadata, not from sys.path, where
    the user's own file may already stand in front)."""
    from importlib.metadata import packages_distributions

    return frozenset(packages_distributions())


def shadows(folder: Path) -> list[tuple[str, Path]]:
    """``(library, file)`` for each module or package in ``folder`` named like an installed library the run imports."""
    found = []
    for name in _IMPORTED_BY_THE_RUN:
        for candidate in (folder / f"{name}.py", folder / name / "__init__.py"):
            if candidate.is_file() and name in _installed():
                found.append((name, candidate))
    return found


class LibraryShadowed(Rule):
    code = "TC805"
    name = "library-shadowed"
    severity = Severity.WARNING
    summary = "A file next to the model is named like a library the training run imports (datasets.py, yaml.py)."
    explanation = (
        "Python puts the folder of the script it runs first on `sys.path`, so a `datasets.py` (or `yaml.py`, "
        "`accelerate.py`, ...) beside a training script is what `import datasets` finds: transformers' and "
        "Trainer's own imports of that library then get the project's file, and fail with an AttributeError far "
        "from the cause, or silently use the wrong code. trainer-compat resolves its own imports before any "
        "target's folder is on `sys.path`, so the check itself is not misled; the run would be. Rename the file "
        "(`my_datasets.py`) and its imports."
    )
    fires = (Example(_SHADOWED,
                     expect=Expect(Severity.WARNING, fragment="datasets.py shadows the installed `datasets`")),)
    silent = (Example(EXPLICIT_WRAPPER),)

    def check(self, ctx: Context) -> Iterator[Finding]:
        where = ctx.subject.location
        if where is None or not where.file or not Path(where.file).is_file():
            return
        for library, path in shadows(Path(where.file).resolve().parent):
            shown = str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)
            yield self.finding(
                ctx, f"{shown} shadows the installed `{library}`: a training script run from its folder imports "
                     f"this file wherever it, transformers or Trainer says `import {library}`",
                feature=Feature.TRAIN, location=Location(shown, 1),
                fix=f"rename {path.name} (e.g. to my_{path.name}) and the imports of it")
