"""The attack run, in CI: schemathesis (pinned in pyproject) over every operation of both APIs
of a started server, once with a user's token and once with an admin's, every check but the
response time on.

Each run generates a bounded number of examples per operation (``SWITCHBOARD_ST_EXAMPLES``,
10 by default: some 9,300 requests a run, 3 to 6 minutes) from a fixed seed
(``SWITCHBOARD_ST_SEED``), so CI is repeatable; set other values to attack harder. Any failure
of any check fails the test with schemathesis' own report: the operation, the check, the
response and a curl command that reproduces it.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.servers import ADMIN, Server, admin_env, stop_postgres

ST = str(Path(sys.executable).with_name("st"))
CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = os.environ.get("SWITCHBOARD_ST_EXAMPLES", "10")
SEED = os.environ.get("SWITCHBOARD_ST_SEED", "20261203")


def _closed_port() -> int:
    """A loopback port that was free a moment ago: connections to it are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    data_dir = Path(tempfile.mkdtemp(prefix="switchboard-schemathesis-", dir="/tmp"))
    # An admin may create an agent on `fake:tokens-999999@999999`, which the schema allows:
    # `/runs/wait` on it would outlast any client, so runs stop after 2 s (a run error). A
    # `/runs/wait` behind runs enqueued on the same thread waits for them too: at 5 s each, a
    # few of them outlasted the 30 s client timeout on a busy machine.
    # And a short shutdown grace: the teardown's SIGTERM must end within the 30 s it waits,
    # whatever runs the attack left going (once, on a loaded machine, it did not).
    # An admin may also create agents on `openai:*` models: their calls go to a local port
    # nothing listens on (refused at once), never to the internet. And the crons it creates
    # (hundreds, many every minute) are not fired: each firing would be a run competing with
    # the attack's requests; crons' firing is tested in tests/test_crons.py.
    env = admin_env(
        data_dir,
        SWITCHBOARD_RUN_TIMEOUT_SECONDS="2",
        SWITCHBOARD_SHUTDOWN_GRACE_SECONDS="5",
        SWITCHBOARD_CRON_POLL_SECONDS="0",
        # Each token is taken once, before a run that can outlast the default 15 minutes.
        SWITCHBOARD_ACCESS_TOKEN_TTL_SECONDS="3600",
        OPENAI_BASE_URL=f"http://127.0.0.1:{_closed_port()}/v1",
    )
    started = Server(data_dir, env)
    try:
        yield started
    finally:
        started.signal(15)
        stop_postgres(data_dir / "pgdata")
        shutil.rmtree(data_dir, ignore_errors=True)


def _token(server: Server, role: str) -> str:
    if role == "admin":
        answer = httpx.post(f"{server.url}/auth/login", json=ADMIN)
    else:
        account = {"name": "Attacker", "email": "attacker@example.org", "password": PASSWORD}
        answer = httpx.post(f"{server.url}/auth/register", json=account)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["access_token"]


def _failures(report: str) -> str:
    """Schemathesis' failures section, first and short: CI shows only the head and the tail of
    a long failure message, and once cut exactly the part naming the operation."""
    start = report.find("FAILURES")
    end = report.find("SUMMARY", start)
    if start == -1:
        return report[-5_000:]
    return report[start : end if end != -1 else None][:8_000]


@pytest.mark.parametrize("role", ["user", "admin"])
def test_every_operation_passes_every_check(server: Server, role: str) -> None:
    done = subprocess.run(
        [
            ST, "--config-file", str(CONFIG), "--no-color", "run", f"{server.url}/openapi.json",
            "--header", f"Authorization: Bearer {_token(server, role)}",
            # The default checks: all of them but the response time (speed is measured in
            # bench/, not asserted).
            "--max-examples", EXAMPLES,
            "--seed", SEED,
            "--workers", "2",
            "--request-timeout", "30",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )  # fmt: skip
    report = done.stdout + done.stderr
    assert done.returncode == 0, _failures(report)
    # Not vacuous: it reached every operation of both APIs, and found nothing.
    document = httpx.get(f"{server.url}/openapi.json").json()
    operations = sum(len(methods) for methods in document["paths"].values())
    assert f"Tested: {operations}" in report, report[-5_000:]
    generated = re.search(r"(\d+) generated, (\d+) passed\n", report)
    assert generated is not None, report[-5_000:]
    assert generated[1] == generated[2], report[-5_000:]
    assert "Failures:" not in report and "❌" not in report, report[-5_000:]
