"""Start a peer Agent Protocol server on a free port, serving ``fake_graph.py`` as ``agent``.

    python -m bench.peers.serve_peer langgraph|aegra   # prints {"url": …}, stops on Ctrl+C

``langgraph``: the official server, ``langgraph dev`` from ``langgraph-cli[inmem]`` (in-memory
runtime), analytics off. ``aegra``: ``aegra-api`` on a throwaway Postgres 15 of its own.

Each peer runs at its newest release: at every start the newest final release of each of its
packages is looked up on the index (``pip index versions``, whatever Python it requires), and
``bench/.peers/<name>`` is made anew unless it holds exactly those, installed with ``pkg==X``
into a venv whose Python satisfies their Requires-Python (this one, or the oldest pyenv /
``python3.X`` that does: Aegra 0.11 needs 3.12). A peer older than its newest release is refused
(:class:`OutdatedPeer`), never reported.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

try:
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version
except ImportError:  # pip always carries a copy
    from pip._vendor.packaging.specifiers import SpecifierSet
    from pip._vendor.packaging.version import InvalidVersion, Version

HERE = Path(__file__).parent
VENVS = HERE.parent / ".peers"


@dataclass(frozen=True)
class Spec:
    install: list[str]  # what pip installs, each pinned to its newest release at install time
    current: list[str]  # the peer's own packages: never reported older than their newest release


SPECS = {
    "langgraph": Spec(
        ["langgraph-cli[inmem]", "langgraph-api"], ["langgraph-cli", "langgraph-api"]
    ),
    "aegra": Spec(["aegra-api"], ["aegra-api"]),
}
# Printed with every result, whichever of them a peer's venv holds.
REPORTED = ("aegra-api", "langgraph-api", "langgraph-cli", "langgraph")


class OutdatedPeer(RuntimeError):
    """The peer's installed release is older than its newest one on the index: not reported."""

    def __init__(self, message: str, info: dict[str, Any]) -> None:
        super().__init__(message)
        self.info = info


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pip(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"pip {' '.join(args)} failed: {done.stderr.strip()[-1500:]}")
    return done.stdout


def _base(requirement: str) -> str:
    return requirement.split("[", 1)[0]


def newest(package: str) -> str:
    """The newest final release of ``package`` on the index, whatever Python it requires."""
    out = _pip("index", "versions", package, "--json", "--ignore-requires-python")
    return json.loads(out)["latest"]


def requires_python(pins: dict[str, str]) -> str:
    """The Requires-Python of each pinned release, joined (``>=3.12,>=3.11``)."""
    report = json.loads(_pip(
        "install", "--dry-run", "--quiet", "--no-deps", "--ignore-installed",
        "--ignore-requires-python", "--report", "-",
        *(f"{package}=={version}" for package, version in pins.items()),
    ))  # fmt: skip
    specs = [item["metadata"].get("requires_python") or "" for item in report["install"]]
    return ",".join(s for s in specs if s)


def _interpreters() -> list[Path]:
    """This Python first, then pyenv's and the ``python3.X`` on PATH."""
    found = [Path(sys.executable)]
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found += sorted(root.glob("versions/*/bin/python3"))
    found += [Path(p) for x in range(10, 20) if (p := shutil.which(f"python3.{x}"))]
    return found


def _version_of(python: Path) -> Version | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError, InvalidVersion):
        out = subprocess.run(
            [str(python), "-c", "import platform; print(platform.python_version())"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
        return Version(out.strip())
    return None


def interpreter_for(spec: str) -> tuple[Path, Version]:
    """This Python if it satisfies ``spec``, else the oldest other one here that does."""
    wanted = SpecifierSet(spec)
    fits = [(p, v) for p in _interpreters() if (v := _version_of(p)) and v in wanted]
    if not fits:
        raise RuntimeError(f"no Python here satisfies Requires-Python {spec!r}: install one "
                           f"(e.g. pyenv install 3.12) and rerun")  # fmt: skip
    if fits[0][0] == Path(sys.executable):
        return fits[0]
    return min(fits, key=lambda fit: fit[1])


def installed(venv: Path) -> dict[str, str | None]:
    """The versions of ``REPORTED`` (and the Python) in a peer's venv, ``None`` if absent."""
    script = (
        "import importlib.metadata as m, json, platform\n"
        "def v(p):\n"
        "    try:\n"
        "        return m.version(p)\n"
        "    except m.PackageNotFoundError:\n"
        "        return None\n"
        f"print(json.dumps({{p: v(p) for p in {list(REPORTED)!r}}}"
        " | {'python': platform.python_version()}))"
    )
    out = subprocess.run([str(venv / "bin" / "python"), "-c", script], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    return json.loads(out)


def _stale(spec: Spec, versions: dict[str, str | None], pins: dict[str, str]) -> list[str]:
    return [
        f"{package} {versions.get(package) or 'missing'} < newest {pins[package]}"
        for package in spec.current
        if versions.get(package) is None or Version(versions[package]) < Version(pins[package])
    ]


def install(name: str) -> tuple[Path, dict[str, Any]]:
    """Install the newest release of peer ``name`` into ``bench/.peers/<name>``.

    The newest releases are looked up on the index each time; a venv that holds anything older,
    or runs a Python their Requires-Python rules out, is made anew with one that satisfies it.
    Returns the venv and ``{"versions": installed (and its Python), "newest": newest releases,
    "requires_python": …}``.
    Raises :class:`OutdatedPeer` if the peer still is not at its newest release.
    """
    spec = SPECS[name]
    pins = {_base(r): newest(_base(r)) for r in spec.install}
    needs = requires_python(pins)
    venv = VENVS / name
    python = venv / "bin" / "python"
    versions: dict[str, str | None] = {}
    if python.exists():
        with contextlib.suppress(subprocess.CalledProcessError, OSError, ValueError):
            versions = installed(venv)  # a broken venv is made anew
    fresh = (
        versions
        and not _stale(spec, versions, pins)
        and all(versions.get(p) == v for p, v in pins.items())
        and Version(versions["python"]) in SpecifierSet(needs)
    )
    if not fresh:
        interpreter, _ = interpreter_for(needs)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([str(interpreter), "-m", "venv", str(venv)], check=True)
        requirements = [f"{r}=={pins[_base(r)]}" for r in spec.install]
        done = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", *requirements],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"pip install {' '.join(requirements)} failed in {venv}: "
                               f"{done.stderr.strip()[-1500:]}")  # fmt: skip
        versions = installed(venv)
    newest_reported = dict(pins)
    for package in REPORTED:
        if versions.get(package) and package not in newest_reported:
            newest_reported[package] = newest(package)
    info = {"versions": versions, "newest": newest_reported, "requires_python": needs}
    if stale := _stale(spec, versions, pins):
        raise OutdatedPeer(f"{name}: refusing to report an old release: {'; '.join(stale)}", info)
    return venv, info


@dataclass
class Peer:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    info: dict[str, Any]  # installed and newest versions, see ``install``


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"peer exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"peer did not answer {url}: {log.read_text()[-2000:]}")


PG_BIN = Path("/usr/lib/postgresql/15/bin")


@contextlib.contextmanager
def debian_postgres() -> Iterator[str]:
    """A throwaway Postgres 15 cluster from Debian's package, on a free port.

    Aegra's migrations need the ``uuid-ossp`` extension, which the embedded Postgres
    (pgserver) does not ship; Debian's ``postgresql-15`` does (``apt-get install postgresql-15``).
    """
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError("Aegra needs Postgres with uuid-ossp: apt-get install -y postgresql-15")
    port = _free_port()
    data = Path(tempfile.mkdtemp(prefix="peer-pg-", dir="/tmp"))
    shutil.chown(data, "postgres")

    def as_postgres(*args: str) -> None:
        subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", " ".join(args)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    as_postgres(f"{PG_BIN}/initdb", "-D", f"{data}/db", "-A", "trust", "-U", "postgres")
    options = f"'-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=200'"
    as_postgres(f"{PG_BIN}/pg_ctl", "-D", f"{data}/db", "-o", options, "-w", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        as_postgres(f"{PG_BIN}/pg_ctl", "-D", f"{data}/db", "-m", "fast", "-w", "stop")
        shutil.rmtree(data, ignore_errors=True)


@contextlib.contextmanager
def start_peer(name: str) -> Iterator[Peer]:
    venv, info = install(name)
    port = _free_port()
    work = Path(tempfile.mkdtemp(prefix=f"peer-{name}-", dir="/tmp"))
    log = work / "server.log"
    env = {**os.environ, "LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGSMITH_TRACING": "false"}
    for key in ("DATABASE_URL", "REDIS_URL"):
        env.pop(key, None)
    stack = contextlib.ExitStack()
    stack.callback(shutil.rmtree, work, True)
    try:
        if name == "langgraph":
            command = [
                str(venv / "bin" / "langgraph"), "dev", "--no-browser", "--no-reload",
                "--host", "127.0.0.1", "--port", str(port),
                "--config", str(HERE / "langgraph.json"), "--server-log-level", "WARNING",
            ]  # fmt: skip
            health = "/ok"
        elif name == "aegra":
            env.update(
                DATABASE_URL=stack.enter_context(debian_postgres()),
                AEGRA_CONFIG=str(HERE / "langgraph.json"),
                HOST="127.0.0.1",
                PORT=str(port),
                LOG_LEVEL="WARNING",
                AUTH_TYPE="noop",
            )
            # What ``aegra serve`` (aegra-cli) runs; 0.11 reads the same variables as 0.6.
            command = [
                str(venv / "bin" / "python"), "-m", "uvicorn", "aegra_api.main:app",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            ]  # fmt: skip
            health = "/health"
        else:
            raise ValueError(f"unknown peer {name!r}")
        out = log.open("wb")
        proc = subprocess.Popen(
            command, cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

        def stop() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            out.close()

        stack.callback(stop)
        url = f"http://127.0.0.1:{port}"
        _wait(url + health, proc, log)
        yield Peer(name, url, proc, log, info)
    finally:
        stack.close()


if __name__ == "__main__":
    with start_peer(sys.argv[1]) as peer:
        print(
            json.dumps(
                {"url": peer.url, "pid": peer.proc.pid, "assistant_id": "agent", **peer.info}
            )
        )
        with contextlib.suppress(KeyboardInterrupt):
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
