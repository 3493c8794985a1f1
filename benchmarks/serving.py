"""`esteira serve` vs `mlflow models serve`, side by side: same registered model (the
flight-delay champion), same machine, same client, loopback only, bounded request counts.

    python benchmarks/serving.py [--requests 400] [--concurrent-requests 1600]

Prints the time until the port answers and until ready, single-row latency p50/p99
(sequential), requests/s and p99 with 8 concurrent clients, 1,000-row batch latency, the
in-process predict floor, and the ratios against the targets. The machine is shared and
noisy: read the ratios. Then esteira alone on requests that carry only a departure (its
features from the online store), which `mlflow models serve` cannot take, in turns with
complete requests: their cost against a complete request's.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from esteira.pipelines.runner import run_pipeline

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "flight_delays"
CLIENTS = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start(
    command: list[str], urls: tuple[str, str], env: dict[str, str]
) -> tuple[subprocess.Popen, float, float]:
    """Start a server; seconds until its port answers `urls[0]` and until `urls[1]` says
    ready (200)."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, port_s = time.monotonic() + 180, None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{command[0]} exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if port_s is None:
                httpx.get(urls[0], timeout=1)  # any answer: the port is open
                port_s = time.perf_counter() - started
            if httpx.get(urls[1], timeout=1).status_code == 200:
                return proc, port_s, time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{command} was not ready in 180 s")


class Client:
    """A keep-alive HTTP/1.1 client from the standard library: ~0.1 ms of its own per
    request, so the figures are the servers'. Both servers get the same one."""

    def __init__(self, url: str, body: dict) -> None:
        parts = urlsplit(url)
        self.path = parts.path
        self.body = json.dumps(body).encode()
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

    def post(self) -> None:
        self.connection.request("POST", self.path, self.body, {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")

    def close(self) -> None:
        self.connection.close()


def sequential(url: str, body: dict, n: int) -> list[float]:
    client, times = Client(url, body), []
    for _ in range(n):
        t = time.perf_counter()
        client.post()
        times.append(time.perf_counter() - t)
    client.close()
    return times


def paired(url: str, first: dict, second: dict, n: int) -> tuple[list[float], list[float]]:
    """Two kinds of request in turns, alternating which goes first, on one connection each:
    a burst of other work on the machine hits both alike."""
    a, b, times_a, times_b = Client(url, first), Client(url, second), [], []
    for i in range(n):
        for client, times in ((a, times_a), (b, times_b))[:: 1 if i % 2 else -1]:
            t = time.perf_counter()
            client.post()
            times.append(time.perf_counter() - t)
    a.close()
    b.close()
    return times_a, times_b


def concurrent(url: str, body: dict, total: int) -> tuple[float, list[float]]:
    times: list[float] = []
    lock = threading.Lock()

    def client_loop(count: int) -> None:
        mine = sequential(url, body, count)  # each client: its own keep-alive connection
        with lock:
            times.extend(mine)

    threads = [
        threading.Thread(target=client_loop, args=(total // CLIENTS,)) for _ in range(CLIENTS)
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(times) / (time.perf_counter() - started), times


def clean_environment() -> dict[str, str]:
    """This process's environment without MLflow's and esteira's own settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "ESTEIRA_"))}


def trained_reference(folder: Path, env: dict[str, str]) -> Path:
    """A copy of the reference project in `folder` with its champion trained (2013-01..03)."""
    root = folder / "flight_delays"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".esteira", "__pycache__"))
    print("training the champion (flight_delays, 2013-01..2013-03) ...", flush=True)
    subprocess.run([sys.executable, "-m", "esteira.cli", "run", "train", "-p", str(root)],
                   check=True, env=env, capture_output=True)  # fmt: skip
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrent-requests", type=int, default=1600)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    env = clean_environment()

    with tempfile.TemporaryDirectory() as tmp:
        root = trained_reference(Path(tmp), env)
        sys.path.insert(0, str(REPO / "src"))
        from esteira import load_project

        project = load_project(root)
        features = run_pipeline(project, "train", until="features").output("features")
        project.tracker.activate()
        import mlflow.sklearn

        model = mlflow.sklearn.load_model("models:/flight_delays/1")
        columns = model.feature_names_in_.tolist()
        complete = features[columns].dropna()  # JSON has no NaN; both servers get whole rows
        one = complete.head(1)
        batch = complete.head(1000)
        row_body = {"dataframe_records": one.to_dict(orient="records")}
        batch_body = {"dataframe_records": batch.to_dict(orient="records")}
        # The last departure: the online store's weather is from just before it.
        departure = features.sort_values("scheduled_at").tail(1)
        fields = ["carrier", "origin", "dest", "tailnum", "distance"]
        key_body = {"records": [{"scheduled_at": departure.scheduled_at.iloc[0].isoformat(),
                                 **departure[fields].iloc[0].to_dict()}]}  # fmt: skip

        floor = [time.perf_counter() for _ in range(0)]
        for _ in range(200):
            t = time.perf_counter()
            model.predict_proba(one)
            floor.append(time.perf_counter() - t)

        esteira_port, mlflow_port = free_port(), free_port()
        tracking = project.settings.tracking_uri
        servers = {
            "esteira serve": (
                [sys.executable, "-m", "esteira.cli", "serve", "-p", str(root), "--model",
                 "flight_delays", "--port", str(esteira_port)],
                f"http://127.0.0.1:{esteira_port}",
                f"http://127.0.0.1:{esteira_port}/health",
                f"http://127.0.0.1:{esteira_port}/ready",
                env,
            ),
            "mlflow models serve": (
                [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/flight_delays/1",
                 "--env-manager", "local", "--host", "127.0.0.1", "-p", str(mlflow_port)],
                f"http://127.0.0.1:{mlflow_port}",
                f"http://127.0.0.1:{mlflow_port}/ping",
                f"http://127.0.0.1:{mlflow_port}/ping",
                # it runs `uvicorn` from PATH: the one of this environment
                env | {"MLFLOW_TRACKING_URI": tracking,
                       "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}"},
            ),
        }  # fmt: skip
        results: dict[str, dict[str, float]] = {}
        for name, (command, base, port_url, ready_url, server_env) in servers.items():
            proc, port_s, ready_s = start(command, (port_url, ready_url), server_env)
            url = f"{base}/{'predict' if name == 'esteira serve' else 'invocations'}"
            try:
                sequential(url, row_body, 30)  # warm-up
                single = sequential(url, row_body, args.requests)
                rps, loaded = concurrent(url, row_body, args.concurrent_requests)
                batches = sequential(url, batch_body, args.batches)
                if name == "esteira serve":
                    sequential(url, key_body, 30)  # warm-up
                    complete_rows, by_key = paired(url, row_body, key_body, args.requests)
                    key_rps, key_loaded = concurrent(url, key_body, args.concurrent_requests)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
            results[name] = {
                "port_s": port_s,
                "ready_s": ready_s,
                "p50_ms": statistics.median(single) * 1000,
                "p99_ms": percentile(single, 0.99) * 1000,
                "rps8": rps,
                "p50_8_ms": statistics.median(loaded) * 1000,
                "p99_8_ms": percentile(loaded, 0.99) * 1000,
                "batch_ms": statistics.median(batches) * 1000,
            }

    ours, theirs = results["esteira serve"], results["mlflow models serve"]
    floor_ms = statistics.median(floor) * 1000
    print(f"\nin-process predict_proba, 1 row (floor): {floor_ms:.2f} ms\n")
    print(f"{'':38}{'esteira':>12}{'mlflow':>12}{'ratio':>10}")
    rows = [
        ("port answers after (s)", "port_s", False),
        ("ready after (s)", "ready_s", False),
        ("1 row, sequential p50 (ms)", "p50_ms", False),
        ("1 row, sequential p99 (ms)", "p99_ms", False),
        (f"1 row, {CLIENTS} clients: requests/s", "rps8", True),
        (f"1 row, {CLIENTS} clients: p50 (ms)", "p50_8_ms", False),
        (f"1 row, {CLIENTS} clients: p99 (ms)", "p99_8_ms", False),
        ("1,000 rows, p50 (ms)", "batch_ms", False),
    ]
    for label, key, higher_better in rows:
        ratio = ours[key] / theirs[key] if higher_better else theirs[key] / ours[key]
        print(f"{label:<38}{ours[key]:>12.2f}{theirs[key]:>12.2f}{ratio:>9.1f}x")
    print("\ntargets:")
    print(f"  requests/s with {CLIENTS} clients >= 4x mlflow: {ours['rps8'] / theirs['rps8']:.1f}x")
    print(f"  p99 with {CLIENTS} clients <= 1/4 of mlflow's: "
          f"{ours['p99_8_ms'] / theirs['p99_8_ms']:.2f} of it")  # fmt: skip
    print(f"  single-row p50 within 2 ms of the floor: +{ours['p50_ms'] - floor_ms:.2f} ms")
    print("\nesteira, requests carrying only the departure (features from the online store),")
    print("in turns with complete requests:")
    key_ms, complete_ms = statistics.median(by_key) * 1000, statistics.median(complete_rows) * 1000
    print(
        f"  1 row, sequential p50 / p99: {key_ms:.2f} / "
        f"{percentile(by_key, 0.99) * 1000:.2f} ms (complete rows: {complete_ms:.2f} ms)"
    )
    print(f"  departure-only within 1.2x of a complete request: {key_ms / complete_ms:.2f}x")
    print(f"  {CLIENTS} clients: {key_rps:.0f} requests/s, p99 "
          f"{percentile(key_loaded, 0.99) * 1000:.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
