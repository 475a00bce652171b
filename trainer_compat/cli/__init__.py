"""The command line: ``trainer-compat check | fix | rules | rule`` (entry point ``trainer_compat.cli:main``).

The library never imports this package; each subcommand calls the library's one pipeline.
"""

from __future__ import annotations

from trainer_compat.cli.app import COMMANDS, FORMATS, main

__all__ = ["COMMANDS", "FORMATS", "main"]
