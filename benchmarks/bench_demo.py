"""The demo's latency: one /classify request, end to end over HTTP on 127.0.0.1.

    python benchmarks/bench_demo.py [--requests 10]

Target (issue 6): one request -- render the strokes, fine-tune a copy of the shipped theta
(50 inner Adam steps), classify the query -- completes in under 2 s on this machine.
Requests with 2, 3, 4 and 5 classes alternate; the table gives the median and the slowest
wall time seen by the client, and the server's own fine-tuning time.
"""
import argparse
import json
import threading
import time
import urllib.request

import numpy as np

import minireptile
from minireptile import demo

minireptile.own_process()    # as the command line runs: keep freed buffers, one BLAS thread


def strokes(rng, n_strokes=3, points=20):
    """A random character: a few smooth random strokes on a 140 x 140 canvas."""
    out = []
    for _ in range(n_strokes):
        start, end, bend = rng.uniform(20, 120, (3, 2))
        t = np.linspace(0, 1, points)[:, None]
        out.append(((1 - t) ** 2 * start + 2 * t * (1 - t) * bend + t ** 2 * end).tolist())
    return out


def post(url, body):
    request = urllib.request.Request(url + "/classify", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.loads(response.read())
    return time.perf_counter() - start, answer["seconds"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10, help="requests per class count")
    parser.add_argument("--smoke", action="store_true", help="seconds, to check that this script runs")
    args = parser.parse_args()
    if args.smoke:
        args.requests = 1
    httpd = demo.make_server(demo.Model(), port=0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_port}"
    rng = np.random.default_rng(0)
    times = {ways: [] for ways in (2, 3, 4, 5)}
    try:
        for _ in range(args.requests):                       # alternate the class counts
            for ways in times:
                body = {"support": [strokes(rng) for _ in range(ways)], "query": strokes(rng),
                        "size": [140, 140]}
                times[ways].append(post(url, body))
    finally:
        httpd.shutdown()
        httpd.server_close()
    print("| classes | request, median | request, slowest | fine-tuning, median | target |")
    print("|---:|---:|---:|---:|---|")
    for ways, samples in times.items():
        wall, tuning = np.array(samples).T
        print(f"| {ways} | {np.median(wall):.3f} s | {wall.max():.3f} s | {np.median(tuning):.3f} s | "
              f"< 2 s: {'met' if wall.max() < 2 else 'NOT met'} |")


if __name__ == "__main__":
    main()
