"""YAML for ``--args`` files, parsed with limits: a size cap, and a cap on the nodes the document expands to
(an alias bomb, "billion laughs", is a few lines that expand to billions). Anything over is one clear line."""

from __future__ import annotations

from typing import Any

from trainer_compat.errors import UsageError

MAX_BYTES = 1 << 20  # an arguments file is a few hundred bytes
MAX_NODES = 100_000  # nodes after expanding every alias


def load(text: str, where: str) -> Any:
    """The document's data, or UsageError naming ``where``."""
    import yaml

    if len(text) > MAX_BYTES:
        raise UsageError(f"{where}: {len(text)} characters of YAML; an arguments file is capped at {MAX_BYTES}")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        expanded = _expanded(node, {})
        if expanded > MAX_NODES:
            raise UsageError(f"{where}: YAML aliases expand to more than {MAX_NODES} nodes (an alias bomb?); "
                             "write the values out")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise UsageError(f"{where}: invalid YAML: {str(exc).splitlines()[0]}") from exc
    except RecursionError as exc:
        raise UsageError(f"{where}: YAML nested too deeply") from exc
    finally:
        loader.dispose()


def _expanded(node: Any, sizes: dict[int, int]) -> int:
    """How many nodes ``node`` stands for once aliases are copied out (shared nodes counted at each use)."""
    import yaml

    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = MAX_NODES + 1  # a recursive alias expands forever
    if isinstance(node, yaml.SequenceNode):
        total = 1 + sum(_expanded(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total = 1 + sum(_expanded(k, sizes) + _expanded(v, sizes) for k, v in node.value)
    else:
        total = 1
    sizes[id(node)] = min(total, MAX_NODES + 1)
    return sizes[id(node)]
