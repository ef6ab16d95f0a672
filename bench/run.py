"""Every benchmark, one after the other, with the durations BENCHMARKS.md reports.

    python -m bench.run [--quick]

``--quick`` shortens every workload (a smoke run: minutes, not tens of minutes).
Results: bench/results/<workload>.json, and all of them in bench/results/all.json.
"""

from __future__ import annotations

import argparse
import json

from bench import compare, growth, latency, overhead, recovery, scale, streams, throughput
from bench.harness import machine, save


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--peers", default="langgraph,aegra")
    args = parser.parse_args()
    quick = args.quick
    runs, duration = (10, 3) if quick else (50, 20)
    results = {"machine": machine()}
    steps = [
        ("overhead", lambda: overhead.run(runs), overhead.report),
        ("latency", lambda: latency.run(runs), latency.report),
        *[
            (f"throughput-{topology}",
             lambda t=topology: throughput.run(duration, (1, 5, 20, 50), t),
             throughput.report)
            for topology in ("single", "replicas", "workers")
        ],
        ("growth", lambda: growth.run((10, 50) if quick else (10, 100, 250, 500)), growth.report),
        ("streams", lambda: streams.run((100,) if quick else (100, 1000)), streams.report),
        ("recovery",
         lambda: recovery.run(recovery.arguments(
             ["--clients", "10", "--duration", "5", "--burst", "20", "--idle", "10,30,55"]
             if quick else [])),
         recovery.report),
        ("scale",
         lambda: scale.run(runs, duration, *((10_000, 100_000) if quick else (100_000, 1_000_000)),
                           restarted=not quick),
         scale.report),
        ("compare",
         lambda: compare.run(tuple(p for p in args.peers.split(",") if p), runs, (1, 5, 20),
                             duration),
         compare.report),
    ]  # fmt: skip
    for name, measure, report in steps:
        outcome = measure()
        results[name] = outcome
        save(name, outcome)
        print(report(outcome), flush=True)
        print(flush=True)
    save("all", results)
    print(json.dumps({"saved": "bench/results/all.json"}))


if __name__ == "__main__":
    main()
