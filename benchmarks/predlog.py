"""What the prediction log costs the service: `esteira serve` with its log against the same
service with `--no-log`, side by side on the flight-delay champion, loopback only, in
alternating rounds (so a burst elsewhere on the shared machine hits both), bounded counts.

    python benchmarks/predlog.py [--rounds 4] [--requests 800]

Prints requests/s and p99 with 8 concurrent clients for complete rows and for departures
(features from the online store), and the logged service's share of the unlogged one's
throughput: the target is under 10% of cost. Then the rows the log holds against the
requests answered.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from serving import clean_environment, concurrent, free_port, percentile, start, trained_reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=800, help="per service and round")
    args = parser.parse_args()
    env = clean_environment()

    with tempfile.TemporaryDirectory() as tmp:
        root = trained_reference(Path(tmp), env)
        from esteira import load_project
        from esteira.pipelines.runner import run_pipeline

        project = load_project(root)
        features = run_pipeline(project, "train", until="features").output("features")
        departure = features.sort_values("scheduled_at").tail(1)
        columns = [c.name for c in _signature(project)]
        row = features[columns].dropna().head(1)
        fields = ["carrier", "origin", "dest", "tailnum", "distance"]
        bodies = {
            "complete row": {"records": row.to_dict(orient="records")},
            "departure": {"records": [{"scheduled_at": departure.scheduled_at.iloc[0].isoformat(),
                                       **departure[fields].iloc[0].to_dict()}]},
        }  # fmt: skip
        servers = {}
        for name, extra in (("no log", ["--no-log"]), ("log", [])):
            port = free_port()
            command = [sys.executable, "-m", "esteira.cli", "serve", "-p", str(root), "--model",
                       "flight_delays", "--port", str(port), *extra]  # fmt: skip
            proc, _ = start(command, f"http://127.0.0.1:{port}/ready", env)
            servers[name] = (proc, f"http://127.0.0.1:{port}/predict")
        figures: dict[tuple[str, str], list[tuple[float, list[float]]]] = {}
        try:
            for body_name, body in bodies.items():
                for name in servers:
                    concurrent(servers[name][1], body, 160)  # warm-up
                for r in range(args.rounds):
                    order = list(servers) if r % 2 == 0 else list(reversed(servers))
                    for name in order:
                        found = concurrent(servers[name][1], body, args.requests)
                        figures.setdefault((body_name, name), []).append(found)
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=60)
        answered = sum(len(times) for (_, name), runs in figures.items() if name == "log"
                       for _, times in runs)  # fmt: skip
        answered += 160 * len(bodies)  # the warm-up
        logged, _ = load_project(root).lake.read("predictions_flight_delays")

    print(f"\n{'requests':<14} {'service':<8} {'requests/s':>11} {'p99 ms':>8}")
    for body_name in bodies:
        rates = {}
        for name in servers:
            runs = figures[(body_name, name)]
            rates[name] = statistics.median(rps for rps, _ in runs)
            p99 = percentile([t for _, times in runs for t in times], 0.99) * 1000
            print(f"{body_name:<14} {name:<8} {rates[name]:>11.0f} {p99:>8.1f}")
        cost = 1 - rates["log"] / rates["no log"]
        print(f"{body_name:<14} the log costs {cost:.1%} of throughput (target: under 10%)")
    print(f"\nthe log holds {len(logged)} rows for {answered} answered requests")


def _signature(project):  # the model's inputs, in order
    from esteira.models import load

    return load(project, "flight_delays", "1").columns


if __name__ == "__main__":
    main()
