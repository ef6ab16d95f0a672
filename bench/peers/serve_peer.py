"""Start a peer Agent Protocol server on a free port, serving ``fake_graph.py`` as ``agent``.

    python -m bench.peers.serve_peer langgraph|aegra   # prints {"url": …}, stops on Ctrl+C

``langgraph``: the official server, ``langgraph dev`` from ``langgraph-cli[inmem]`` (in-memory
runtime), analytics off. ``aegra``: ``aegra-api`` on an embedded Postgres of its own. Each is
installed from PyPI into ``bench/.peers/<name>`` on first use.
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

import httpx

HERE = Path(__file__).parent
VENVS = HERE.parent / ".peers"
# aegra-api 0.6.0 leaves out greenlet, which its SQLAlchemy asyncio engine needs.
PACKAGES = {"langgraph": ["langgraph-cli[inmem]"], "aegra": ["aegra-api", "greenlet"]}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def install(name: str) -> Path:
    venv = VENVS / name
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", *PACKAGES[name]],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return venv


@dataclass
class Peer:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


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
    venv = install(name)
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
            command = [str(venv / "bin" / "python"), "-m", "aegra_api.main"]
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
        yield Peer(name, url, proc, log)
    finally:
        stack.close()


if __name__ == "__main__":
    with start_peer(sys.argv[1]) as peer:
        print(json.dumps({"url": peer.url, "pid": peer.proc.pid, "assistant_id": "agent"}))
        with contextlib.suppress(KeyboardInterrupt):
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
