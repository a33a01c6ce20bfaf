"""Benchmark 7: ``tf-crnn serve`` under load.

Starts ``tf-crnn serve MODEL`` as a user would (its own process, 127.0.0.1), then C concurrent
clients each send R single-line ``POST /v1/recognize`` requests (lines of ``--csv``, in turn).
Every answer is checked against what ``PredictionModel`` reads from the same image offline;
prints requests/s, latency percentiles and the count of answers by status.

    python benchmarks/serve_load.py --model builtin:printed-latin --clients 8 --requests 200 [--serve-options "--readers 1"]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import DATA, machine, print_table  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def started_server(model: str, *options: str):
    """``tf-crnn serve MODEL`` in its own process on 127.0.0.1, as a user starts it; yields its
    URL once ``/healthz`` answers, and the process (``.url``, ``.pid``)."""
    import httpx

    port = free_port()
    server = subprocess.Popen(["tf-crnn", "serve", model, "--port", str(port), *options],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start: {server.stderr.read()[-2000:]}")
            time.sleep(0.2)
        server.url = url
        yield server
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin:printed-latin")
    parser.add_argument("--csv", type=Path, default=DATA / "val.csv", help="lines to send (their images)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200, help="requests per client")
    parser.add_argument("--lines", type=int, default=200, help="distinct lines sent")
    parser.add_argument("--serve-options", default="", help="options of tf-crnn serve, e.g. '--readers 1'")
    args = parser.parse_args()

    import httpx

    from tf_crnn.reading.model import PredictionModel
    from tf_crnn.records import read_csv_rows, resolve_image_path

    paths = [resolve_image_path(args.csv, p) for _, p, _ in read_csv_rows(args.csv)][: args.lines]
    images = [Path(p).read_bytes() for p in paths]
    expected = PredictionModel(args.model).predict(paths)
    with started_server(args.model, *shlex.split(args.serve_options)) as server:
        url = server.url
        # One request first, so that the graph is traced before the clock starts.
        httpx.post(f"{url}/v1/recognize", files=[("images", ("warm.png", images[0]))], timeout=60)

        latencies: list[float] = []
        statuses: Counter = Counter()
        wrong: list[str] = []
        lock = threading.Lock()

        def client(k: int) -> None:
            with httpx.Client(timeout=60) as session:
                for r in range(args.requests):
                    i = (k * args.requests + r) % len(images)
                    start = time.perf_counter()
                    response = session.post(f"{url}/v1/recognize", files=[("images", (f"{i}.png", images[i]))])
                    seconds = time.perf_counter() - start
                    ok = response.status_code == 200
                    text = response.json()["results"][0]["transcription"] if ok else None
                    with lock:
                        latencies.append(seconds)
                        statuses[response.status_code] += 1
                        if ok and text != expected[i]:
                            wrong.append(f"{paths[i]}: {text!r} != {expected[i]!r}")

        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start

    total = args.clients * args.requests
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"Machine: {machine()}")
    print(f"Model {args.model}; {args.clients} clients x {args.requests} single-line requests; lines of {args.csv}\n")
    print_table(
        ["requests", "requests/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "status counts", "wrong answers"],
        [
            [
                total,
                f"{total / wall:.1f}",
                f"{1000 * quantiles[49]:.0f}",
                f"{1000 * quantiles[94]:.0f}",
                f"{1000 * quantiles[98]:.0f}",
                f"{1000 * max(latencies):.0f}",
                " ".join(f"{k}: {v}" for k, v in sorted(statuses.items())),
                len(wrong),
            ]
        ],
    )
    for line in wrong[:5]:
        print("wrong:", line)
    if wrong or any(status >= 500 for status in statuses):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
