"""Build targets on the meta device: shapes and structure without weights, whatever the model's size.

Inside :func:`on_meta`, ``from_pretrained`` never downloads nor reads weights: when the model's config is
available offline (a local directory or the Hub cache) the model is built from it on the meta device,
otherwise :class:`LoadsWeights` is raised and the target is checked at class level.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from transformers.modeling_utils import PreTrainedModel
    from transformers.models.auto.auto_factory import _BaseAutoModelClass

_T = TypeVar("_T")


class LoadsWeights(Exception):
    """A target's construction asked ``from_pretrained`` for weights whose config is not available offline."""

    def __init__(self, source: str) -> None:
        super().__init__(f"it loads pretrained weights (from_pretrained({source!r})) and that config is not "
                         "available offline")
        self.source = source


@contextmanager
def on_meta() -> Iterator[None]:
    """Tensors created inside land on the meta device; ``from_pretrained`` builds from the config alone."""
    import torch

    with ExitStack() as stack:
        stack.enter_context(torch.device("meta"))
        for owner, build in _pretrained_entry_points():
            stack.enter_context(_patched(owner, build))
        yield


def _pretrained_entry_points() -> list[tuple[type[PreTrainedModel] | type[_BaseAutoModelClass], Callable[..., Any]]]:
    """Every class that defines its own ``from_pretrained``: the auto classes each carry a copy of it."""
    import transformers.models.auto.modeling_auto  # noqa: F401  (the auto classes copy from_pretrained on import)
    from transformers.modeling_utils import PreTrainedModel
    from transformers.models.auto.auto_factory import _BaseAutoModelClass

    found: list[tuple[type[PreTrainedModel] | type[_BaseAutoModelClass], Callable[..., Any]]] = []
    found += [(klass, _model_from_config) for klass in _with_subclasses(PreTrainedModel)
              if "from_pretrained" in klass.__dict__]
    found += [(klass, _auto_from_config) for klass in _with_subclasses(_BaseAutoModelClass)
              if "from_pretrained" in klass.__dict__]
    return found


def _with_subclasses(root: type[_T]) -> list[type[_T]]:
    seen: dict[type[_T], None] = {}
    todo = [root]
    while todo:
        klass = todo.pop()
        if klass not in seen:
            seen[klass] = None
            todo.extend(klass.__subclasses__())
    return list(seen)


@contextmanager
def _patched(owner: type[PreTrainedModel] | type[_BaseAutoModelClass], build: Callable[..., Any]) -> Iterator[None]:
    original = owner.__dict__["from_pretrained"]
    # a patch for the duration of on_meta: the classmethod takes any arguments, the real one a typed signature
    owner.from_pretrained = classmethod(build)  # type: ignore[method-assign, assignment]  # deliberate patch
    try:
        yield
    finally:
        owner.from_pretrained = original  # type: ignore[method-assign]  # the patch undone


def _config(source: Any, kwargs: dict[str, Any], config_class: Any = None) -> Any:
    given = kwargs.get("config")
    if given is not None and not isinstance(given, str):
        return given
    from transformers import AutoConfig

    loader = config_class if config_class is not None else AutoConfig
    try:
        return loader.from_pretrained(given or source, local_files_only=True)
    except Exception as exc:
        raise LoadsWeights(str(source)) from exc


def _model_from_config(cls: type[PreTrainedModel], source: Any = None, *args: Any, **kwargs: Any) -> Any:
    config = _config(source, kwargs, getattr(cls, "config_class", None))
    return cls._from_config(config)


def _auto_from_config(cls: type[_BaseAutoModelClass], source: Any = None, *args: Any, **kwargs: Any) -> Any:
    return cls.from_config(_config(source, kwargs))


def is_on_meta(model: Any) -> bool:
    """True when the model holds at least one tensor and all of them are on the meta device."""
    try:
        tensors = [*model.parameters(), *model.buffers()]
    except Exception:
        return False
    return bool(tensors) and all(t.device.type == "meta" for t in tensors)
