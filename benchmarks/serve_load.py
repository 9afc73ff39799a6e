"""Load test of the studio: `ganforge serve` on a free loopback port in its own process,
concurrent clients sending a few hundred requests, the server's resident memory sampled
throughout. Shows whether memory stays bounded and whether every request gets an answer.

    python benchmarks/serve_load.py                        # tiny runs trained here, 3 rounds of 300
    python benchmarks/serve_load.py runs/digits runs/inpaint --requests 500 --clients 32

Each client is a thread with its own keep-alive httpx connection. Requests cycle through
the API (grids, interpolations, edits of a 64x64 upload with a box, the run listing) over
the runs served; every 25th edit uploads a body over the upload limit, which must be
answered 413 without growing memory. A 503 (queue full, or uvicorn's connection limit when
there are more clients than `2 * (workers + queue) + 16`) is retried after its Retry-After, up
to 20 times; a request is lost when it never gets a final answer. The server's own count
of refused jobs (GET /api/health) is checked against the 503s the clients saw.
"""
from __future__ import annotations

import argparse
import io
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

RETRIES = 20
OVERSIZED_EVERY = 25


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", metavar="RUN", help="runs to serve [tiny runs trained here]")
    parser.add_argument("--requests", type=int, default=300, help="requests per round [300]")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, memory compared across them [3]")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients [16]")
    parser.add_argument("--workers", type=int, default=1, help="ganforge serve --workers [1]")
    parser.add_argument("--queue", type=int, default=8, help="ganforge serve --queue [8]")
    parser.add_argument("--max-upload-mb", type=float, default=2.0, help="ganforge serve --max-upload-mb [2]")
    return parser.parse_args(argv)


def tiny_runs(folder: Path) -> list[Path]:
    """A generation run and an inpainting run, one training step each."""
    import ganforge

    quiet = {"log.progress": False, "log.tensorboard": "no", "train.steps": 1, "train.batch_size": 4}
    ganforge.train(overrides={**quiet, "model.g_width": 8, "model.d_width": 8, "out": str(folder / "digits")})
    ganforge.train(overrides={**quiet, "task": "inpaint", "model.g_width": 8, "model.depth": 3,
                              "model.d_width": 8, "model.d_layers": 1, "out": str(folder / "inpaint")})
    return [folder / "digits", folder / "inpaint"]


def start_server(runs: list[Path], args) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "ganforge", "serve", *map(str, runs), "--port", "0", "--quiet",
               "--workers", str(args.workers), "--queue", str(args.queue),
               "--max-upload-mb", str(args.max_upload_mb)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    found = re.search(r"http://[^ ]+/", line)
    if not found:
        process.kill()
        raise SystemExit(f"ganforge serve did not start: {line!r}")
    return process, found.group(0)


def rss_mb(pid: int) -> float:
    """VmRSS of a process, in MB (from /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class Sampler(threading.Thread):
    """Samples a process's RSS every 20 ms until stopped."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.samples.append(rss_mb(self.pid))
            time.sleep(0.02)


def upload_png() -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def plan(runs: list[dict], count: int, oversized: bytes) -> list[tuple[str, str, dict]]:
    """`count` requests (method, path, httpx keyword arguments) cycling over the runs' kinds."""
    image = upload_png()
    requests, edits = [], 0
    for i in range(count):
        run = runs[i % len(runs)]
        name = run["name"]
        if i % 10 == 9:
            requests.append(("GET", "/api/runs", {}))
        elif run["kind"] == "generate" and i % 3:
            requests.append(("GET", f"/api/runs/{name}/sample", {"params": {"n": 16, "seed": i}}))
        elif run["kind"] == "generate":
            requests.append(("GET", f"/api/runs/{name}/interpolate", {"params": {"from": i, "to": i + 1}}))
        else:
            edits += 1
            body = oversized if edits % OVERSIZED_EVERY == 0 else image
            data = {"box": "8,8,24,24"} if run.get("needs_mask") else {}
            if run.get("needs_class"):
                data["class"] = "0"
            requests.append(("POST", f"/api/runs/{name}/edit",
                             {"files": {"image": ("in.png", body, "image/png")}, "data": data}))
    return requests


def client(base: str, work: queue.Queue, results: list):
    """Send requests from `work` until it is empty; retry 503s after Retry-After."""
    with httpx.Client(base_url=base, timeout=120) as http:
        while True:
            try:
                method, path, options = work.get_nowait()
            except queue.Empty:
                return
            start, refused, turned_away, outcome = time.perf_counter(), 0, 0, None
            for _ in range(RETRIES):
                try:
                    response = http.request(method, path, **options)
                except httpx.HTTPError as error:
                    outcome = f"error: {type(error).__name__}"
                    break
                if response.status_code != 503:
                    outcome = response.status_code
                    break
                # The queue's 503 is JSON; uvicorn's own (over its connection limit) is text.
                if response.headers.get("content-type", "").startswith("application/json"):
                    refused += 1
                else:
                    turned_away += 1
                time.sleep(float(response.headers.get("retry-after", "1")))
            results.append({"status": outcome, "refused": refused, "turned_away": turned_away, "seconds": time.perf_counter() - start})


def one_round(base: str, requests: list, clients: int) -> tuple[list[dict], float]:
    work: queue.Queue = queue.Queue()
    for request in requests:
        work.put(request)
    results: list[dict] = []
    threads = [threading.Thread(target=client, args=(base, work, results)) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="serve-load-") as folder:
        runs = [Path(r) for r in args.runs] or tiny_runs(Path(folder))
        process, base = start_server(runs, args)
        try:
            return measure(process, base, args)
        finally:
            process.terminate()
            process.wait(timeout=30)


def measure(process: subprocess.Popen, base: str, args) -> int:
    listing = httpx.get(base + "api/runs", timeout=60).json()["runs"]
    oversized = b"\0" * int((args.max_upload_mb + 1) * 2**20)
    requests = plan(listing, args.requests, oversized)
    # Warm up: every kind of request once, then the memory the server settles at.
    for method, path, options in requests[:2 * len(listing) + 1]:
        httpx.request(method, base.rstrip("/") + path, timeout=120, **options)
    idle = rss_mb(process.pid)
    print(f"ganforge serve at {base} (pid {process.pid}), runs: {', '.join(r['name'] for r in listing)}; "
          f"{args.clients} clients, --workers {args.workers} --queue {args.queue}, "
          f"--max-upload-mb {args.max_upload_mb:g}; RSS after warm-up {idle:.0f} MB\n")
    print("| round | requests | 200 | 413 | 503 queue full | 503 connections | lost | errors | p50 s | p95 s | req/s "
          "| RSS peak MB | RSS after MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    refused_total, lost_total = 0, 0
    for index in range(1, args.rounds + 1):
        sampler = Sampler(process.pid)
        sampler.start()
        results, seconds = one_round(base, requests, args.clients)
        sampler.stop.set()
        sampler.join()
        after = rss_mb(process.pid)
        statuses = [r["status"] for r in results]
        refused = sum(r["refused"] for r in results)
        turned_away = sum(r["turned_away"] for r in results)
        errors = [s for s in statuses if not isinstance(s, int) or s not in (200, 413)]
        lost = len(requests) - len(results) + sum(1 for s in statuses if s is None)
        times = sorted(r["seconds"] for r in results)
        refused_total, lost_total = refused_total + refused, lost_total + lost + len(errors)
        print(f"| {index} | {len(requests)} | {statuses.count(200)} | {statuses.count(413)} | {refused} | {turned_away} | {lost} | "
              f"{len(errors)} | {statistics.median(times):.3f} | {times[int(0.95 * (len(times) - 1))]:.3f} | "
              f"{len(results) / seconds:.0f} | {max(sampler.samples):.0f} | {after:.0f} |")
        if errors:
            print(f"  errors: {sorted(set(map(str, errors)))}")
    health = httpx.get(base + "api/health", timeout=60).json()["queue"]
    print(f"\nserver: {health['done']} jobs done, {health['rejected']} refused with 503 "
          f"(clients saw {refused_total}); lost or failed requests: {lost_total}")
    return 0 if lost_total == 0 and health["rejected"] == refused_total else 1


if __name__ == "__main__":
    sys.exit(main())
