"""Which transformers the verdicts are for, and version ranges in the protocol data."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from packaging.version import Version


def _distribution_version(name: str) -> str:
    """The installed release: the loaded module's own ``__version__``, else the package metadata (which
    costs nothing: ``--static`` and ``--version`` say which release a verdict is for without importing it)."""
    import sys

    module = sys.modules.get(name)
    if module is not None and getattr(module, "__version__", None):
        return str(module.__version__)
    from importlib.metadata import version

    return version(name)  # PackageNotFoundError (an ImportError) when it is not installed


@lru_cache(maxsize=1)
def installed_transformers() -> Version:
    return Version(_distribution_version("transformers"))


def installed_accelerate() -> Version | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return Version(version("accelerate"))
    except PackageNotFoundError:
        return None


def installed_torch() -> str:
    return _distribution_version("torch")


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
