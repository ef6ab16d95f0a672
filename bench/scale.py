"""Scale: the same measurements on an empty database and on a full one. Latency (create a chat +
stream a 50-token answer, sequential, native and Agent Protocol) and throughput at 20 concurrent
clients, first on an empty database (twice: the ratios are to the second); then the same
database is filled in SQL with ``--chats`` chats of a few generated users and
``--finished-runs`` finished runs, vacuumed and analyzed, and both are measured again on the
same running server (and, unless ``--no-restart``, once more after restarting it). The ratio
full/empty of p50 latency and runs/s is what to look at.

    python -m bench.scale [--runs 50] [--duration 20] [--chats 100000] [--finished-runs 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import psutil
import psycopg

from bench import throughput
from bench.harness import (
    Deployment,
    Sampler,
    _wait_http,
    finish,
    machine,
    sequential_turns,
    summary,
    table,
)
from storage import runs as runs_store

CLIENTS = 20
WARMUP_S = 3
USERS = 8
FILL_TABLES = ("users", "chats", "runs")

# The chats to come, numbered, so that the runs can be spread over them (and carry their chat's
# user and agent) by a join on the number. Chats belong to USERS generated users and to every
# agent in the table (the seeded ones and the benchmark's), and are spread over the year before
# yesterday.
PLAN_CHATS = """
CREATE TEMP TABLE scale_chats AS
SELECT i AS n, gen_random_uuid() AS id,
       u.ids[1 + i %% cardinality(u.ids)] AS user_id,
       a.ids[1 + (i / 7) %% cardinality(a.ids)] AS agent_id,
       now() - interval '366 days' + i * (interval '365 days' / %(chats)s) AS created_at
FROM generate_series(0, %(chats)s - 1) i,
     (SELECT array_agg(id ORDER BY email) AS ids FROM users
      WHERE email LIKE 'scale-user-%%@example.org') u,
     (SELECT array_agg(id ORDER BY slug) AS ids FROM agents) a
"""
INSERT_USERS = """
INSERT INTO users (name, email, password_hash, onboarding_completed)
SELECT 'Scale user ' || i, 'scale-user-' || i || '@example.org', '!not-a-hash', true
FROM generate_series(1, %(users)s) i
"""
# The numbers are those of chats that have had runs (``message_count`` two per run).
INSERT_CHATS = """
INSERT INTO chats (id, user_id, agent_id, title, created_at, updated_at, last_message_at,
                   message_count, metadata)
SELECT c.id, c.user_id, c.agent_id, 'Scale chat ' || c.n, c.created_at,
       c.created_at + interval '1 hour', c.created_at + interval '1 hour',
       2 * (%(runs)s / %(chats)s + (c.n < %(runs)s %% %(chats)s)::int),
       jsonb_build_object('source', 'bench.scale')
FROM scale_chats c
"""
# Run j goes to chat j mod chats, a minute after the previous run of that chat. Finished only:
# 90% success, 6% error, 3% cancelled, 1% interrupted, by workers on hosts long gone.
INSERT_RUNS = """
INSERT INTO runs (chat_id, user_id, agent_id, agent_version, model_name, status,
                  multitask_strategy, error, usage, worker_id, heartbeat_at, created_at,
                  started_at, ended_at, input)
SELECT c.id, c.user_id, c.agent_id, a.version, coalesce(a.model_name, 'fake:tokens-50'),
       s.status, 'reject',
       CASE s.status WHEN 'error' THEN 'RuntimeError: the model failed'
                     WHEN 'interrupted' THEN 'The process running it stopped before it finished'
       END,
       CASE WHEN s.status = 'success'
            THEN jsonb_build_object('input_tokens', 20 + j %% 300, 'output_tokens', 50) END,
       'otherhost-' || (j %% 16) || ':' || (1000 + j %% 997),
       t.at + interval '2 seconds', t.at, t.at + interval '10 ms', t.at + interval '2 seconds',
       NULL
FROM generate_series(0, %(runs)s - 1) j
JOIN scale_chats c ON c.n = j %% %(chats)s
JOIN agents a ON a.id = c.agent_id
CROSS JOIN LATERAL (SELECT CASE WHEN j %% 100 < 90 THEN 'success'
                                WHEN j %% 100 < 96 THEN 'error'
                                WHEN j %% 100 < 99 THEN 'cancelled'
                                ELSE 'interrupted' END AS status) s
CROSS JOIN LATERAL (SELECT c.created_at + (j / %(chats)s) * interval '1 minute' AS at) t
"""
COUNTS = "SELECT (SELECT count(*) FROM chats) AS chats, (SELECT count(*) FROM runs) AS runs"
# Rows read by sequential scans: a query that scans a table grows with the table.
TABLE_STATS = """
SELECT relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0) AS idx_scan
FROM pg_stat_user_tables WHERE relname = ANY(%s)
"""
SIZES = """
SELECT relname, pg_total_relation_size(oid) AS bytes FROM pg_class
WHERE relname = ANY(%s) AND relkind = 'r'
"""


def fill(url: str, chats: int, runs: int) -> dict[str, Any]:
    """Insert USERS users, ``chats`` chats and ``runs`` finished runs; VACUUM ANALYZE them."""
    params = {"users": USERS, "chats": chats, "runs": runs}
    seconds: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        with conn.transaction():
            conn.execute(INSERT_USERS, params)
            conn.execute(PLAN_CHATS, params)
            conn.execute("CREATE INDEX ON scale_chats (n)")
            conn.execute("ANALYZE scale_chats")
            conn.execute(INSERT_CHATS, params)
            seconds["chats"] = round(time.perf_counter() - started, 1)
            conn.execute(INSERT_RUNS, params)
            conn.execute("DROP TABLE scale_chats")
        seconds["insert"] = round(time.perf_counter() - started, 1)
        seconds["runs"] = round(seconds["insert"] - seconds["chats"], 1)
        mark = time.perf_counter()
        conn.execute("VACUUM ANALYZE users, chats, runs")
        seconds["vacuum_analyze"] = round(time.perf_counter() - mark, 1)
        seconds["total"] = round(time.perf_counter() - started, 1)
        counts = conn.execute(COUNTS).fetchone()
        sizes = {r[0]: r[1] for r in conn.execute(SIZES, (list(FILL_TABLES),)).fetchall()}
    assert counts is not None
    return {
        "seconds": seconds,
        "inserted": {"users": USERS, "chats": chats, "runs": runs},
        "total_rows": {"chats": counts[0], "runs": counts[1]},
        "mib": {name: round(b / 2**20, 1) for name, b in sorted(sizes.items())},
    }


def sweep_ms(url: str) -> dict[str, Any]:
    """What the liveness sweep's two queries (every ``heartbeat_seconds`` in each process) cost
    on this database, and whether Postgres scans the runs table for them. The update is rolled
    back (it matches nothing anyway: no run is active)."""
    queries = {
        "active_on_host": (runs_store.ACTIVE_ON_HOST, ("nohost:%",)),
        "interrupt_stale": (runs_store.INTERRUPT_STALE, {"ids": [], "stale": 30.0}),
    }
    out: dict[str, Any] = {}
    with psycopg.connect(url) as conn:
        for name, (query, params) in queries.items():
            plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query, params).fetchone()
            assert plan is not None
            top = plan[0][0]
            out[name] = {
                "ms": round(top["Execution Time"], 2),
                "seq_scan": "Seq Scan" in json.dumps(top["Plan"]),
            }
        conn.rollback()
    return out


def table_stats(url: str) -> dict[str, dict[str, int]]:
    time.sleep(1.0)  # backends report their statistics about once a second
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(TABLE_STATS, (["chats", "runs"],)).fetchall()
    return {r[0]: {"seq_scan": r[1], "seq_tup_read": r[2], "idx_scan": r[3]} for r in rows}


def restart(deployment: Deployment) -> None:
    """Stop the (single) API process and start it again, same command, environment and port.

    The deployment's stop-on-exit callbacks cover the new process: it is started through the
    deployment's own ``_spawn``.
    """
    old = deployment.procs[0]
    info = psutil.Process(old.pid)
    cmd, env = info.cmdline(), info.environ()
    old.terminate()
    old.wait(timeout=60)
    log = deployment.dir / "api-0-restarted.log"
    proc = deployment._spawn(cmd, env, log)
    deployment.procs.remove(old)
    _wait_http(f"{deployment.urls[0]}/healthz", proc, log)


def measure(deployment: Deployment, headers: dict, agent: dict, runs: int, duration: float):
    url = deployment.urls[0]
    # Warm up at full concurrency, so that the pool has grown and the code paths are warm (the
    # first phase, or a restarted server, would otherwise pay for it in its numbers).
    asyncio.run(throughput.level(deployment.urls, headers, agent["id"], CLIENTS, WARMUP_S))
    before = table_stats(deployment.pg.uri())
    samples = asyncio.run(sequential_turns(url, headers, agent, runs, 5, timed_create=True))
    paths = {
        name: {"ttft_ms": summary([s[0] for s in v]), "total_ms": summary([s[1] for s in v])}
        for name, v in samples.items()
    }
    groups = {"switchboard": deployment.server_processes, "postgres": deployment.postgres_processes}
    with Sampler(groups) as sampler:
        level = asyncio.run(
            throughput.level(deployment.urls, headers, agent["id"], CLIENTS, duration)
        )
    level["resources"] = sampler.report()
    after = table_stats(deployment.pg.uri())
    scans = {name: {k: after[name][k] - before[name][k] for k in after[name]} for name in after}
    return {"latency": paths, "throughput": level, "table_scans": scans}


def ratios(empty: dict[str, Any], other: dict[str, Any]) -> dict[str, float]:
    out = {
        f"{path}_total_p50": round(
            other["latency"][path]["total_ms"]["p50"] / empty["latency"][path]["total_ms"]["p50"], 3
        )
        for path in empty["latency"]
    }
    out["runs_per_second"] = round(
        other["throughput"]["runs_per_second"] / empty["throughput"]["runs_per_second"], 3
    )
    return out


def run(
    runs: int = 50,
    duration: float = 20,
    chats: int = 100_000,
    finished_runs: int = 1_000_000,
    restarted: bool = True,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "workload": "scale",
        "runs": runs,
        "duration_s": duration,
        "clients": CLIENTS,
        "machine": machine(),
        "phases": {},
    }
    with Deployment() as deployment:
        headers, agents = deployment.setup({"bench": "fake:tokens-50"})
        agent = agents["bench"]
        phases = result["phases"]
        # Twice: the first measurement of a fresh server has been slower on a small machine
        # (15-30%, whatever the data), so the ratios are to the second, the one next to the fill.
        phases["empty, first"] = measure(deployment, headers, agent, runs, duration)
        phases["empty"] = measure(deployment, headers, agent, runs, duration)
        result["fill"] = fill(deployment.pg.uri(), chats, finished_runs)
        result["sweep_ms"] = sweep_ms(deployment.pg.uri())
        phases["full"] = measure(deployment, headers, agent, runs, duration)
        if restarted:
            restart(deployment)
            phases["full, restarted"] = measure(deployment, headers, agent, runs, duration)
    result["ratio_to_empty"] = {
        name: ratios(phases["empty"], phase)
        for name, phase in phases.items()
        if not name.startswith("empty")
    }
    return result


def report(result: dict[str, Any]) -> str:
    rows = []
    for name, phase in result["phases"].items():
        lat, tp = phase["latency"], phase["throughput"]
        rows.append([
            name, lat["native"]["total_ms"]["p50"], lat["native"]["total_ms"]["p90"],
            lat["protocol"]["total_ms"]["p50"], lat["protocol"]["total_ms"]["p90"],
            tp["runs_per_second"], tp["errors"], tp["latency_ms"]["p50"],
            tp["resources"]["postgres"]["cpu_percent_mean"],
            phase["table_scans"]["runs"]["seq_tup_read"],
        ])  # fmt: skip
    header = ["database", "native p50", "native p90", "protocol p50", "protocol p90",
              f"runs/s @{result['clients']}", "errors", "p50 ms @20", "pg cpu%",
              "runs rows seq-read"]  # fmt: skip
    fill_ = result["fill"]
    lines = [
        table("scale: create + stream 50 tokens (ms), and throughput", header, rows),
        f"fill: {fill_['inserted']['chats']} chats, {fill_['inserted']['runs']} runs in "
        f"{fill_['seconds']['total']} s ({fill_['seconds']}); sizes MiB {fill_['mib']}",
    ]
    lines.append(f"liveness sweep queries on the full database: {result['sweep_ms']}")
    for name, r in result["ratio_to_empty"].items():
        lines.append(f"{name} / empty: {r}")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--chats", type=int, default=100_000)
    parser.add_argument("--finished-runs", type=int, default=1_000_000)
    parser.add_argument(
        "--restart", action=argparse.BooleanOptionalAction, default=True,
        help="also measure after restarting the server on the full database",
    )  # fmt: skip
    args = parser.parse_args()
    outcome = run(args.runs, args.duration, args.chats, args.finished_runs, args.restart)
    finish("scale", outcome, report)
