"""pytest plugin (entry point ``pytest11``): ``pytest --trainer-compat`` and the ``trainer_compat`` fixture.

``--trainer-compat`` adds one test item per target of ``[tool.trainer-compat]`` (the nearest pyproject.toml
above the rootdir, or ``--trainer-compat-config``); an item fails when its target fails the gate, and its
failure text is the report. The ``trainer_compat`` fixture checks a model built inside a test:

    def test_wrapper(trainer_compat):
        trainer_compat.assert_compatible(MyWrapper(), args={"gradient_checkpointing": True})
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from trainer_compat.config import Config
    from trainer_compat.report import Report


class IncompatibleModel(AssertionError):
    def __init__(self, report: Report) -> None:
        super().__init__(str(report))
        self.report = report


def assert_compatible(model: Any, args: Any = None, trainer: str = "trainer", *, probe: bool = False,
                      sample: Any = None, fail_on: str = "error", select: Sequence[str] | None = None,
                      ignore: Sequence[str] | None = None, init_kwargs: dict[str, Any] | None = None) -> Report:
    """Check ``model`` (instance, class or factory); raise AssertionError with the report when it fails."""
    from trainer_compat.api import check
    from trainer_compat.catalog import Selection
    from trainer_compat.verdict import fails
    from trainer_compat.verdict import select as select_findings

    report = check(model, args=args, trainer=trainer, probe=probe, sample=sample, init_kwargs=init_kwargs)
    report = select_findings(report, Selection.of(select, ignore))
    if fails(report, fail_on):
        raise IncompatibleModel(report)
    return report


class Checker:
    """What the ``trainer_compat`` fixture gives a test."""

    def check(self, model: Any, args: Any = None, trainer: str = "trainer", **kwargs: Any) -> Report:
        from trainer_compat.api import check

        return check(model, args=args, trainer=trainer, **kwargs)

    assert_compatible = staticmethod(assert_compatible)

    def preflight(self, trainer: Any, probe: bool = True, **kwargs: Any) -> Report:
        from trainer_compat.trainer_check import preflight

        return preflight(trainer, probe=probe, raise_on_error=True, **kwargs)


@pytest.fixture
def trainer_compat() -> Checker:
    """Check models built inside a test: ``.check()``, ``.assert_compatible()``, ``.preflight()``."""
    return Checker()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("trainer-compat")
    group.addoption("--trainer-compat", action="store_true", default=False,
                    help="check every [tool.trainer-compat] target as a test item")
    group.addoption("--trainer-compat-config", metavar="PYPROJECT", default=None,
                    help="read [tool.trainer-compat] from this file (default: the nearest pyproject.toml)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "trainer_compat: a trainer-compat target check")


class TargetFailed(Exception):
    def __init__(self, report: Report) -> None:
        super().__init__(report.verdict())
        self.report = report


class TargetItem(pytest.Item):
    """One configured target; it fails when the target fails the gate, with the report as its text."""

    def __init__(self, *, settings: Any, config_path: Path | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.config_path = config_path
        self.add_marker("trainer_compat")

    def runtest(self) -> None:
        from trainer_compat.verdict import fails
        from trainer_compat.workflow import check_target

        report = check_target(self.settings)
        self.user_properties.append(("trainer_compat", report.verdict()))
        if fails(report, self.settings.fail_on):
            raise TargetFailed(report)

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        from trainer_compat.errors import UsageError

        if isinstance(excinfo.value, TargetFailed):
            return str(excinfo.value.report)
        if isinstance(excinfo.value, UsageError):
            return f"trainer-compat: error: {excinfo.value}"
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.config_path or Path.cwd(), None, f"trainer-compat {self.settings.target}"


_LOADED = pytest.StashKey["Config"]()
_COLLECTED = pytest.StashKey[bool]()


def _loaded(config: pytest.Config) -> Config:
    """``[tool.trainer-compat]`` for this run, read once (and only when targets are asked for)."""
    if _LOADED not in config.stash:
        from trainer_compat.config import load_config

        config.stash[_LOADED] = load_config(config.getoption("trainer_compat_config"), start=Path(str(config.rootpath)))
    return config.stash[_LOADED]


class TargetsFile(pytest.File):
    """The config file as a collector: one TargetItem per configured target."""

    def collect(self) -> Iterator[TargetItem]:
        from trainer_compat.config import settings_for

        loaded = _loaded(self.config)
        if not loaded.targets:
            raise pytest.UsageError("--trainer-compat: no targets under [tool.trainer-compat] in pyproject.toml")
        self.config.stash[_COLLECTED] = True
        for target in loaded.targets:
            yield TargetItem.from_parent(self, name=f"trainer-compat[{target}]",
                                         settings=settings_for(target, loaded, {}), config_path=loaded.path)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> TargetsFile | None:
    """The config file, when it is walked over (or named: ``pyproject.toml::trainer-compat[...]``)."""
    if file_path.suffix != ".toml":
        return None
    if not (parent.config.getoption("trainer_compat") or parent.session.isinitpath(file_path)):
        return None
    loaded = _loaded(parent.config)
    if loaded.path is None or Path(loaded.path).resolve() != file_path.resolve():
        return None
    return TargetsFile.from_parent(parent, path=file_path)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[Any]) -> None:
    """``--trainer-compat`` where the walk did not reach the config file (``testpaths``, or test files named): its
    targets are collected here, through pytest's own collection, so ``collected N items`` counts them."""
    if not config.getoption("trainer_compat") or config.stash.get(_COLLECTED, False):
        return
    loaded = _loaded(config)
    if not loaded.targets or loaded.path is None:
        raise pytest.UsageError("--trainer-compat: no targets under [tool.trainer-compat] in pyproject.toml")
    items.extend(session.genitems(TargetsFile.from_parent(session, path=Path(loaded.path))))
