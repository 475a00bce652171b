"""What a TrainingArguments switches on: the features whose protocol applies.

The arguments are always validated by constructing the real ``TrainingArguments`` (or
``Seq2SeqTrainingArguments``) of the installed transformers, so invalid fields are reported exactly
as transformers reports them.
"""

from __future__ import annotations

import contextlib
import copy
import enum
import json
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer_compat.errors import UsageError
from trainer_compat.trainer_class import TRL_KINDS, TrainerKind, overrides, resolve_trainer


class Feature(str, enum.Enum):
    TRAIN = "train"
    CHECKPOINTING = "gradient_checkpointing"
    SAVE = "save_checkpoints"
    EVAL = "evaluation"
    PREDICT_WITH_GENERATE = "predict_with_generate"
    REMOVE_UNUSED_COLUMNS = "remove_unused_columns"
    LABEL_SMOOTHING = "label_smoothing"
    GRAD_ACCUM = "gradient_accumulation"
    NEFTUNE = "neftune"
    LOAD_BEST = "load_best_model_at_end"
    RESUME = "resume_from_checkpoint"
    FSDP = "fsdp"
    DEEPSPEED = "deepspeed"
    TORCH_COMPILE = "torch_compile"
    PUSH_TO_HUB = "push_to_hub"




LAUNCHERS = ("torchrun", "accelerate", "deepspeed")


@dataclass(frozen=True)
class Launch:
    """How the run is launched: processes in all (``world_size``), machines (``nnodes``), the launcher."""

    world_size: int = 1
    nnodes: int = 1
    launcher: str | None = None  # torchrun, accelerate or deepspeed

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def describe(self) -> str:
        how = f" with {self.launcher}" if self.launcher else ""
        nodes = f" on {self.nnodes} nodes" if self.nnodes > 1 else ""
        return f"launched on {self.world_size} process{'es' if self.world_size != 1 else ''}{nodes}{how}"

    @classmethod
    def of(cls, value: Any, where: str = "launch") -> Launch | None:
        """A Launch from a Launch, a mapping (``world_size``/``world-size``, ``nnodes``, ``launcher``) or None."""
        if value is None or isinstance(value, Launch):
            return value
        if not isinstance(value, Mapping):
            raise UsageError(f"{where}: expected a mapping of world_size, nnodes, launcher, got {type(value).__name__}")
        fields = {str(k).replace("-", "_"): v for k, v in value.items() if v is not None}
        unknown = sorted(set(fields) - {"world_size", "nnodes", "launcher"})
        if unknown:
            raise UsageError(f"{where}: unknown key {unknown[0]!r} (known: world_size, nnodes, launcher)")
        for key in ("world_size", "nnodes"):
            if key in fields and (isinstance(fields[key], bool) or not isinstance(fields[key], int)
                                  or fields[key] < 1):
                raise UsageError(f"{where}: {key} must be a positive integer, not {fields[key]!r}")
        launcher = fields.get("launcher")
        if launcher is not None and launcher not in LAUNCHERS:
            raise UsageError(f"{where}: launcher must be one of {', '.join(LAUNCHERS)}, not {launcher!r}")
        fields.setdefault("world_size", fields.get("nnodes", 1))  # one process per node at least
        launch = cls(**fields)
        if launch.nnodes > launch.world_size:
            raise UsageError(f"{where}: {launch.nnodes} nodes need a world size of at least {launch.nnodes}, "
                             f"not {launch.world_size}")
        return launch


@dataclass(frozen=True)
class TrainingSetup:
    """The validated arguments, the trainer kind and the features they switch on."""

    args: Any  # a transformers TrainingArguments (or, for --static, static_args.StaticArguments)
    trainer: TrainerKind
    features: frozenset[Feature]
    deepspeed_config: Mapping[str, Any] | None = None
    requested: Mapping[str, Any] | None = None  # the fields as given, before transformers resolves them
    trainer_class: type | None = None  # the user's Trainer subclass; None: the stock class of ``trainer``
    data: Any = None  # the examples the user's run trains on (a Dataset or a list of mappings), if given
    collator: Any = None  # the user's data collator, if given
    trainer_kwargs: Mapping[str, Any] | None = None  # what else the user's Trainer subclass is built with
    launch: Launch | None = None  # how the run is launched, if said (None: unknown)
    peft: Mapping[str, Any] | None = None  # the adapter config (LoraConfig fields) the model will get, if said

    def has(self, feature: Feature) -> bool:
        return feature in self.features

    def overrides(self, method: str) -> bool:
        """The user's Trainer subclass replaces this Trainer method (``compute_loss``, ``prediction_step``); TRL's
        DPO, Reward and GRPO trainers replace Trainer's own (their losses are not the model's)."""
        if self.trainer in ("dpo", "reward", "grpo"):
            from trainer_compat.trainer_class import stock_class

            try:
                cls = self.trainer_class or stock_class(self.trainer)
            except ImportError:
                return False
            return overrides(cls, "trainer", method)
        return overrides(self.trainer_class, self.trainer, method)

    @property
    def evaluation_scheduled(self) -> bool:
        """Trainer itself evaluates (``eval_strategy``); ``do_eval`` alone only tells a script that it may."""
        strategy = getattr(self.args, "eval_strategy", getattr(self.args, "evaluation_strategy", "no"))
        return _strategy(strategy) != "no"

    @property
    def trainer_name(self) -> str:
        return self.trainer_class.__name__ if self.trainer_class is not None else self.trainer

    @property
    def gradient_accumulation_steps(self) -> int:
        return int(self.args.gradient_accumulation_steps)


def load_args_spec(spec: str) -> dict[str, Any]:
    """``--args``: an inline JSON object, or a path to a .json/.yaml/.yml file (read with limits)."""
    text = spec.strip()
    if text.startswith("{"):
        return _as_mapping(_parse_json(text, "--args"), "--args")
    shown = spec if len(spec) <= 80 else spec[:77] + "..."
    try:
        path = Path(spec)
        is_file = path.is_file()
    except (OSError, ValueError) as exc:
        raise UsageError(f"--args: {shown!r} is neither a JSON object nor a readable file ({exc})") from exc
    if not is_file:
        raise UsageError(f"--args: {shown!r} is neither a JSON object nor an existing file")
    content = _read_args_file(path, shown)
    if path.suffix in (".yaml", ".yml"):
        from trainer_compat.safe_yaml import load

        data = load(content, f"--args: {shown}")
    else:
        data = _parse_json(content, shown)
    return _as_mapping(data or {}, shown)


def _read_args_file(path: Path, shown: str) -> str:
    from trainer_compat.safe_yaml import MAX_BYTES

    try:
        if path.stat().st_size > MAX_BYTES:
            raise UsageError(f"--args: {shown}: {path.stat().st_size} bytes; an arguments file is capped at "
                             f"{MAX_BYTES}")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"--args: {shown}: not a UTF-8 text file (byte {exc.start}: {exc.reason})") from exc
    except OSError as exc:
        raise UsageError(f"--args: {shown}: cannot read: {exc.strerror or exc}") from exc


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: invalid JSON: {exc}") from exc
    except RecursionError as exc:
        raise UsageError(f"{where}: JSON nested too deeply") from exc


def _as_mapping(data: Any, where: str, of: str = "TrainingArguments fields") -> dict[str, Any]:
    if not isinstance(data, dict):
        raise UsageError(f"{where}: expected a JSON object of {of}, got {type(data).__name__}")
    return data


def peft_config(config: Any) -> dict[str, Any] | None:
    """A LoraConfig (any PeftConfig), a dict of its fields, a JSON object or a JSON file, as a dict."""
    if config is None or isinstance(config, dict):
        return config
    if isinstance(config, str):
        text = Path(config).read_text(encoding="utf-8") if Path(config).is_file() else config
        return parse_json_object(text, "--peft", "LoraConfig fields")
    return config.to_dict() if hasattr(config, "to_dict") else dict(vars(config))


def parse_json_object(text: str, where: str, of: str) -> dict[str, Any]:
    """One JSON object from an option's text: ``where`` names the option in the one-line error."""
    return _as_mapping(_parse_json(text, where), where, of)


def build_setup(args: Any = None, trainer: Any = "trainer", *, data: Any = None, collator: Any = None,
                trainer_kwargs: Mapping[str, Any] | None = None, launch: Any = None,
                static: bool = False, peft: Any = None) -> TrainingSetup:
    """Validate ``args`` (a TrainingArguments, a dict of its fields, or None) into a TrainingSetup.

    ``trainer``: a kind (``"trainer"``, ``"seq2seq"``, ``"sft"``, ``"dpo"``, ...), a Trainer subclass, or
    ``module:Name``. ``launch``: a ``Launch`` or a mapping of its fields (world_size, nnodes, launcher).
    ``static``: read the fields against the arguments class's source instead of constructing it (``--static``:
    nothing imported). ``peft``: the adapter config the model will get (a LoraConfig, a dict of its fields, a
    JSON object or file), which adds the PEFT rules.
    """
    launch = Launch.of(launch)
    peft = peft_config(peft)
    trainer, trainer_class = resolve_trainer(trainer)
    deepspeed_config = requested = None
    if args is None or isinstance(args, Mapping):
        fields = copy.deepcopy(dict(args or {}))  # TrainingArguments updates nested dicts (fsdp_config) in place
        requested = copy.deepcopy(fields)
        deepspeed_config = _pop_deepspeed(fields)
        if static:
            from trainer_compat.static_args import static_arguments

            args = static_arguments(fields, trainer)
            return TrainingSetup(args=args, trainer=trainer, features=_features(args, deepspeed_config),
                                 deepspeed_config=deepspeed_config, requested=requested,
                                 trainer_class=trainer_class, launch=launch, peft=peft)
        with environment_kept():  # 4.x TrainingArguments exports its FSDP settings (ACCELERATE_USE_FSDP=true)
            args = _construct(fields, trainer)
    else:
        deepspeed_config = _deepspeed_dict(getattr(args, "deepspeed", None))
    return TrainingSetup(args=args, trainer=trainer, features=_features(args, deepspeed_config),
                         deepspeed_config=deepspeed_config, requested=requested, trainer_class=trainer_class,
                         data=data, collator=collator, trainer_kwargs=trainer_kwargs, launch=launch, peft=peft)


@contextlib.contextmanager
def environment_kept() -> Iterator[None]:
    """Validating arguments must not configure the process: a later Trainer would read what they exported."""
    import os

    saved = dict(os.environ)
    try:
        yield
    finally:
        for name in [n for n in os.environ if n not in saved]:
            del os.environ[name]
        os.environ.update({n: v for n, v in saved.items() if os.environ.get(n) != v})


def _pop_deepspeed(fields: dict[str, Any]) -> Mapping[str, Any] | None:
    # Constructing TrainingArguments with `deepspeed` set imports and initialises DeepSpeed;
    # the check only needs the config, so it is read here and kept out of the constructor.
    value = fields.pop("deepspeed", None)
    if value is None:
        return None
    config = _deepspeed_dict(value)
    if config is None:
        raise UsageError(f"deepspeed: cannot read DeepSpeed config {value!r}")
    return config


def _deepspeed_dict(value: Any) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return value
    path = Path(str(value))
    if path.is_file():
        return _as_mapping(_parse_json(path.read_text(encoding="utf-8"), str(path)), str(path))
    return None


def _arguments_class(trainer: str) -> Any:
    import transformers

    if trainer in TRL_KINDS:
        trainer_name, config_name = TRL_KINDS[TrainerKind(trainer)]
        try:
            import trl

            return getattr(trl, config_name)
        except ImportError as exc:
            raise UsageError(f"--trainer {trainer} needs TRL: `pip install trl` ({exc})") from exc
        except AttributeError as exc:
            raise UsageError(f"--trainer {trainer}: the installed TRL has no {config_name} ({trainer_name} "
                             "arrived later): upgrade trl") from exc
    return transformers.Seq2SeqTrainingArguments if trainer == "seq2seq" else transformers.TrainingArguments


# Fields that make TrainingArguments set up the process group when it resolves its device: a check is no
# launched run, so they are kept out of the constructor and set on the validated arguments afterwards.
_LAUNCH_FIELDS = ("ddp_backend", "local_rank")


def _construct(fields: dict[str, Any], trainer: str) -> Any:
    launch = {k: fields.pop(k) for k in _LAUNCH_FIELDS if k in fields}
    args = _validated(fields, trainer)
    for name, value in launch.items():
        setattr(args, name, value)
    return args


def _validated(fields: dict[str, Any], trainer: str) -> Any:
    cls = _arguments_class(trainer)
    fields.setdefault("output_dir", tempfile.gettempdir() + "/trainer-compat-unused")
    fields.setdefault("report_to", "none")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return cls(**fields)
            except ValueError as exc:
                # SFTConfig (TRL >= 0.19) defaults bf16=True, which TrainingArguments refuses on a machine without
                # bf16 support (a CPU-only checker run); precision does not change the protocol checked here.
                if trainer not in TRL_KINDS or "bf16" in fields or "bf16" not in str(exc):
                    raise
                return cls(**fields, bf16=False)
    except TypeError as exc:
        raise UsageError(f"--args: {cls.__name__}: {exc}") from exc
    except (ValueError, ImportError, AttributeError) as exc:
        raise UsageError(f"--args: {cls.__name__}: {str(exc).strip().splitlines()[0]}") from exc


def _strategy(value: Any) -> str:
    return str(getattr(value, "value", value))


def _checkpointing_on(args: Any) -> bool:
    return bool(getattr(args, "activation_checkpointing", False) or getattr(args, "gradient_checkpointing", False))


def _features(args: Any, deepspeed_config: Mapping[str, Any] | None) -> frozenset[Feature]:
    eval_strategy = _strategy(getattr(args, "eval_strategy", getattr(args, "evaluation_strategy", "no")))
    switches = {
        Feature.TRAIN: True,
        Feature.CHECKPOINTING: _checkpointing_on(args),
        Feature.SAVE: _strategy(args.save_strategy) != "no",
        Feature.EVAL: eval_strategy != "no" or bool(getattr(args, "do_eval", False)),
        Feature.PREDICT_WITH_GENERATE: bool(getattr(args, "predict_with_generate", False)),
        Feature.REMOVE_UNUSED_COLUMNS: bool(args.remove_unused_columns),
        Feature.LABEL_SMOOTHING: float(args.label_smoothing_factor or 0) != 0,
        Feature.GRAD_ACCUM: int(args.gradient_accumulation_steps) > 1,
        Feature.NEFTUNE: args.neftune_noise_alpha is not None,
        Feature.LOAD_BEST: bool(args.load_best_model_at_end),
        Feature.RESUME: bool(getattr(args, "resume_from_checkpoint", None)),
        Feature.FSDP: bool(getattr(args, "fsdp", None)),
        Feature.DEEPSPEED: deepspeed_config is not None,
        Feature.TORCH_COMPILE: bool(getattr(args, "torch_compile", False)),
        Feature.PUSH_TO_HUB: bool(getattr(args, "push_to_hub", False)),
    }
    return frozenset(f for f, on in switches.items() if on)
