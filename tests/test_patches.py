"""Importing the project changes nothing global; ``graphs.patches.install`` is the one place
that changes LangGraph and LangSmith, and it refuses releases it was not written for."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import langgraph.checkpoint.postgres.aio as postgres_saver
import langgraph.checkpoint.serde._msgpack as msgpack_serde
import pytest

from graphs import patches
from storage.checkpoints import DELTA_PAGE_SIZE, CachingSerializer

# In a fresh interpreter (this test session has installed the patches): load the libraries,
# remember every global of their modules, import every module of the project, compare.
_PROBE = textwrap.dedent(
    """
    import importlib, os, pkgutil, sys

    import langchain.agents, langgraph.checkpoint.postgres.aio, langgraph.graph
    import langgraph.checkpoint.serde._msgpack, langgraph._internal._serde
    import langsmith, langsmith._runtime_overrides

    WATCHED = ("langgraph", "langsmith", "langchain", "langchain_core")

    def snapshot():
        return {
            name: {key: id(value) for key, value in vars(module).items()}
            for name, module in list(sys.modules.items())
            if name.split(".")[0] in WATCHED and module is not None
        }

    before, environ = snapshot(), dict(os.environ)
    imported = []
    for package in ("api", "graphs", "storage", "tools"):
        root = importlib.import_module(package)
        imported.append(package)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            # graphs.local needs the optional [local] extra.
            if info.name == "graphs.local" and importlib.util.find_spec("llama_cpp") is None:
                continue
            importlib.import_module(info.name)
            imported.append(info.name)
    after = snapshot()
    changed = sorted(
        f"{name}.{key}"
        for name, attrs in before.items()
        for key, ident in attrs.items()
        if after[name].get(key) != ident
    )
    print("imported", len(imported))
    print("changed", changed)
    print("environ", sorted(set(os.environ.items()) ^ set(environ.items())))
    """
)


def test_importing_every_project_module_changes_no_global_of_langgraph_or_langsmith() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": "."}
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=120
    )
    assert probe.returncode == 0, probe.stderr
    lines = dict(line.split(" ", 1) for line in probe.stdout.splitlines())
    # Every package and module of the project was imported (a subset would prove nothing).
    assert int(lines["imported"]) > 40, probe.stdout
    assert lines["changed"] == "[]"
    assert lines["environ"] == "[]"


def test_install_applies_every_change() -> None:
    patches.install()
    assert msgpack_serde.STRICT_MSGPACK_ENABLED is True
    assert postgres_saver._DELTA_PAGE_SIZE == DELTA_PAGE_SIZE
    assert type(postgres_saver.asyncio).__name__ == "_OnTheLoop"


@pytest.mark.parametrize(
    ("name", "found"),
    [("langgraph-checkpoint-postgres", "3.3.0"), ("langsmith", "0.14.9"), ("langgraph", "2.0")],
)
def test_install_refuses_a_release_it_was_not_written_for(name: str, found: str) -> None:
    installed = patches.installed_versions() | {name: found}
    with pytest.raises(patches.UnsupportedVersion) as refused:
        patches.install(installed)
    assert f"{name} {found} (written for {patches.SUPPORTED[name]}.x)" in str(refused.value)


def test_the_version_check_names_a_missing_distribution() -> None:
    installed = {k: v for k, v in patches.installed_versions().items() if k != "langsmith"}
    with pytest.raises(patches.UnsupportedVersion, match="langsmith missing"):
        patches.check_versions(installed)


def test_the_supported_series_are_the_installed_ones() -> None:
    patches.check_versions(patches.installed_versions())
    # A series matches its own releases only: 3.2 is not 3.20.
    with pytest.raises(patches.UnsupportedVersion):
        patches.check_versions(
            patches.installed_versions() | {"langgraph-checkpoint-postgres": "3.20.1"}
        )


@dataclasses.dataclass
class _Foreign:
    value: int


def test_after_install_a_checkpoint_cannot_rebuild_a_class_it_does_not_know() -> None:
    patches.install()
    serde = CachingSerializer()
    decoded = serde.loads_typed(serde.dumps_typed(_Foreign(7)))
    assert decoded == {"value": 7}
    assert not isinstance(decoded, _Foreign)
