"""Which transformers the verdicts are for, and version ranges in the protocol data."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from packaging.version import Version


@lru_cache(maxsize=1)
def installed_transformers() -> Version:
    import transformers

    return Version(transformers.__version__)


def installed_accelerate() -> Version | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return Version(version("accelerate"))
    except PackageNotFoundError:
        return None


def installed_torch() -> str:
    import torch

    return str(torch.__version__)


@dataclass(frozen=True)
class VersionRange:
    """Half-open range ``[since, until)`` of transformers releases; ``None`` means unbounded."""

    since: str | None = None
    until: str | None = None

    def __contains__(self, version: object) -> bool:
        v = version if isinstance(version, Version) else Version(str(version))
        v = Version(v.base_version)  # 5.0.0.dev0 counts as 5.0.0
        if self.since is not None and v < Version(self.since):
            return False
        return not (self.until is not None and v >= Version(self.until))

    def __str__(self) -> str:
        if self.since and self.until:
            return f">={self.since},<{self.until}"
        if self.since:
            return f">={self.since}"
        if self.until:
            return f"<{self.until}"
        return "all"


ALWAYS = VersionRange()
