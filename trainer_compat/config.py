"""``[tool.trainer-compat]`` in pyproject.toml, merged with the command line (the command line wins).

    [tool.trainer-compat]
    targets = ["my_project.models:Wrapper", "src/reward.py:RewardModel"]
    args = "train_args.yaml"            # or an inline table of TrainingArguments fields
    trainer = "trainer"                 # or "seq2seq", "sft" (TRL's SFTTrainer), or "train.py:MyTrainer"
    data = "train.py:make_dataset"      # your examples (a Dataset, a list, or a function returning one)
    collator = "train.py:collate"       # the data collator your run uses
    world-size = 2                      # how the run is launched: processes in all, nodes, launcher
    nnodes = 1
    launcher = "torchrun"               # or "accelerate", "deepspeed"
    select = ["ALL"]
    ignore = ["TC104"]
    fail-on = "error"                   # or "warning"
    transformers-version = "4.46.3"     # the verdict for that release (a forecast), not the installed one
    peft = "lora.json"                  # or an inline table of LoraConfig fields: adds the PEFT rules

    [tool.trainer-compat.per-target."src/reward.py:RewardModel"]
    trainer = "seq2seq"
    ignore = ["TC5"]                    # added to the global ignore
    init-kwargs = {hidden = 32}

Relative paths (target files, args files, samples) are relative to the pyproject.toml that names them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer_compat.catalog import Selection
from trainer_compat.errors import UsageError
from trainer_compat.features import load_args_spec
from trainer_compat.trainer_class import TRAINER_KINDS

TABLE = "trainer-compat"
FAIL_ON = ("error", "warning")
_TARGET_KEYS = {"args", "trainer", "init-kwargs", "select", "ignore", "probe", "sample", "fail-on", "data", "collator",
               "world-size", "nnodes", "launcher"}
_GLOBAL_KEYS = _TARGET_KEYS | {"targets", "per-target", "format", "transformers-version", "peft"}


@dataclass(frozen=True)
class TargetSettings:
    """Everything needed to check one target, after merging config and command line."""

    target: str  # as written (what reports show)
    spec: str  # what load_target imports (path targets made absolute against the config's directory)
    args: dict[str, Any] | None
    trainer: str = "trainer"
    init_kwargs: dict[str, Any] = field(default_factory=dict)
    selection: Selection = field(default_factory=Selection)
    probe: bool = False
    sample: str | None = None
    fail_on: str = "error"
    data: str | None = None  # module:Name of the user's examples
    collator: str | None = None  # module:Name of the user's data collator
    launch: dict[str, Any] | None = None  # world_size, nnodes, launcher (features.Launch fields), if said
    peft: dict[str, Any] | None = None  # the adapter config (LoraConfig fields) the model will get, if said
    transformers_version: str | None = None  # the release the verdict is forecast for (None: the installed one)


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    table: dict[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    @property
    def targets(self) -> list[str]:
        return list(self.table.get("targets", []))

    def get(self, key: str, default: Any = None) -> Any:
        return self.table.get(key, default)

    def peft(self) -> dict[str, Any] | str | None:
        """``peft``: an inline table, or a JSON file relative to the config's directory."""
        value = self.table.get("peft")
        if isinstance(value, str) and not value.lstrip().startswith("{"):
            path = Path(value) if Path(value).is_absolute() else self.root / value
            if not path.is_file():
                raise UsageError(f"{self.path} [tool.{TABLE}]: peft: no such file {value}")
            return str(path)
        return value

    def for_target(self, target: str) -> dict[str, Any]:
        return dict(self.table.get("per-target", {}).get(target, {}))


def _toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[import-not-found]  # not in the 3.11+ environments mypy reads
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: cannot read TOML: not UTF-8 (byte {exc.start}: {exc.reason})") from exc
    except (OSError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise UsageError(f"{path}: cannot read TOML: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") \
            from exc


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest pyproject.toml at or above ``start`` that has a [tool.trainer-compat] table."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file() and TABLE in _toml(candidate).get("tool", {}):
            return candidate
    return None


def load_config(path: str | Path | None = None, start: Path | None = None) -> Config:
    """The named file's table, else the nearest pyproject.toml's; an empty Config when there is none."""
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise UsageError(f"--config: no such file {path}")
    else:
        found = find_pyproject(start)
        if found is None:
            return Config()
        file = found
    table = _toml(file).get("tool", {}).get(TABLE, {})
    _validate(table, file)
    return Config(file, table)


# the type each key takes (docs/guide.md lists the same keys): a wrong type is one line, never a truthy string
_SCHEMA: dict[str, tuple[type, ...]] = {
    "targets": (list,), "args": (str, dict), "trainer": (str,), "init-kwargs": (dict,), "select": (str, list),
    "ignore": (str, list), "probe": (bool,), "sample": (str,), "fail-on": (str,), "data": (str,),
    "collator": (str,), "world-size": (int,), "nnodes": (int,), "launcher": (str,), "per-target": (dict,),
    "format": (str,),  # transformers-version and peft: checked below, with their own messages
}
_TOML_TYPES = {str: "a string", list: "an array", dict: "a table", bool: "true or false", int: "an integer",
               float: "a number"}


def _check_types(table: dict[str, Any], where: str) -> None:
    for key, value in table.items():
        expected = _SCHEMA.get(key)
        if expected is None:
            continue
        if (isinstance(value, bool) and bool not in expected) or not isinstance(value, expected):
            wanted = " or ".join(_TOML_TYPES[t] for t in expected)
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            given = _TOML_TYPES.get(type(value), type(value).__name__)
            raise UsageError(f"{where}: {key} must be {wanted}, not {given} {shown}")


def _validate(table: dict[str, Any], file: Path) -> None:
    where = f"{file} [tool.{TABLE}]"
    _known_keys(table, _GLOBAL_KEYS, where)
    _check_types(table, where)
    targets = table.get("targets", [])
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise UsageError(f"{where}: targets must be a list of 'module:Name' strings")
    per_target = table.get("per-target", {})
    if not isinstance(per_target, dict):
        raise UsageError(f"{where}: per-target must be a table of target tables")
    for name, sub in per_target.items():
        if not isinstance(sub, dict):
            raise UsageError(f"{where}: per-target.{name!r} must be a table")
        _known_keys(sub, _TARGET_KEYS, f"{where} per-target {name!r}")
        _check_types(sub, f"{where} per-target {name!r}")
    for scope in (table, *per_target.values()):
        _check_values(scope, where)
    if "transformers-version" in table:
        from trainer_compat.forecast import parse

        try:
            parse(str(table["transformers-version"]))
        except UsageError as exc:
            raise UsageError(f"{where}: transformers-version: {str(exc).split(': ', 1)[-1]}") from exc
    if "peft" in table and not isinstance(table["peft"], (str, dict)):
        raise UsageError(f"{where}: peft must be a table of LoraConfig fields or a JSON file")


def _known_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})")


def _check_values(scope: dict[str, Any], where: str) -> None:
    trainer = scope.get("trainer")
    if trainer is not None and (not isinstance(trainer, str) or (trainer not in TRAINER_KINDS and ":" not in trainer)):
        raise UsageError(f"{where}: trainer must be one of {', '.join(TRAINER_KINDS)} or a 'module:Name' of a "
                         f"Trainer subclass, not {trainer!r}")
    for key in ("data", "collator"):
        if key in scope and (not isinstance(scope[key], str) or ":" not in scope[key]):
            raise UsageError(f"{where}: {key} must be a 'module:Name' or 'path/file.py:Name' string")
    launch = {k: scope[k] for k in _LAUNCH_KEYS if k in scope}
    if launch:
        from trainer_compat.features import Launch

        Launch.of(launch, where)
    if "fail-on" in scope and scope["fail-on"] not in FAIL_ON:
        raise UsageError(f"{where}: fail-on must be one of {', '.join(FAIL_ON)}, not {scope['fail-on']!r}")
    for key in ("select", "ignore"):
        if key in scope:
            Selection.of(**{key: _code_list(scope[key], f"{where} {key}")}, where=f"{where} ")


def _code_list(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [c for c in value.replace(" ", "").split(",") if c]
    if isinstance(value, list) and all(isinstance(c, str) for c in value):
        return value
    raise UsageError(f"{where}: expected a list of rule codes")


def resolve_spec(target: str, root: Path) -> str:
    """A ``path/file.py:Name`` target relative to ``root``; module targets import with ``root`` on sys.path."""
    module_part, _, name = target.rpartition(":")
    if module_part.endswith(".py") and not Path(module_part).is_absolute():
        return f"{root / module_part}:{name}"
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return target


def _args(value: Any, root: Path) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return dict(value)
    text = str(value)
    if text.lstrip().startswith("{") or Path(text).is_absolute():
        return load_args_spec(text)
    return load_args_spec(str(root / text))


def settings_for(target: str, config: Config, cli: dict[str, Any], *, from_config: bool = True) -> TargetSettings:
    """Merge, most specific last: config table, its per-target table, then the command line (non-None keys).

    ``from_config``: the target was listed in the config (its paths are relative to the config's directory);
    a target named on the command line is relative to the working directory.
    """
    merged: dict[str, Any] = {k: v for k, v in config.table.items() if k in _TARGET_KEYS}
    own = config.for_target(target)
    ignore = _code_list(merged.get("ignore", []), "ignore") + _code_list(own.pop("ignore", []), "ignore")
    merged.update(own)
    merged["ignore"] = ignore
    root = config.root
    arg_root = dict.fromkeys(merged, root)
    for key, value in cli.items():
        if value is not None:
            merged[key], arg_root[key] = value, Path.cwd()
    sample = merged.get("sample")
    if sample and not Path(sample).is_absolute():
        sample = str(arg_root["sample"] / sample)
    select = merged.get("select")
    specs = {k: _spec(merged.get(k), arg_root.get(k, root)) for k in ("trainer", "data", "collator")}
    return TargetSettings(
        target=target,
        spec=resolve_spec(target, root) if config.path and from_config else target,
        args=_args(merged.get("args"), arg_root.get("args", root)),
        trainer=specs["trainer"] or "trainer",
        init_kwargs=dict(merged.get("init-kwargs") or {}),
        selection=Selection.of(_code_list(select, "select") if select is not None else None,
                               _code_list(merged.get("ignore", []), "ignore")),
        probe=bool(merged.get("probe", False)),
        sample=sample,
        fail_on=merged.get("fail-on") or "error",
        data=specs["data"],
        collator=specs["collator"],
        launch=_launch(merged),
        **_run_profile(config, cli),
    )


def _run_profile(config: Config, cli: dict[str, Any]) -> dict[str, Any]:
    """The forecast version and the adapter config of the whole run (command line over config): they reach the
    rules in the setup and the context, and an isolated child in its request, never through the environment."""
    from trainer_compat.features import peft_config
    from trainer_compat.forecast import parse

    version = cli.get("transformers-version") or config.get("transformers-version")
    return {"transformers_version": str(parse(str(version))) if version else None,
            "peft": peft_config(cli.get("peft") or config.peft())}


_LAUNCH_KEYS = ("world-size", "nnodes", "launcher")


def _launch(merged: dict[str, Any]) -> dict[str, Any] | None:
    """The launch keys as ``features.Launch`` fields (None: the launch is not said)."""
    launch = {k.replace("-", "_"): merged[k] for k in _LAUNCH_KEYS if merged.get(k) is not None}
    if not launch:
        return None
    from trainer_compat.features import Launch

    return dict(vars(Launch.of(launch, "launch")))


def _spec(value: str | None, root: Path) -> str | None:
    """A ``path/file.py:Name`` made absolute against where it was written (config directory or cwd)."""
    if not value or ":" not in value:
        return value
    return resolve_spec(value, root)
