"""Bounded load test of SOAP on loopback: the asynchronous endpoint against a synchronous one that runs the
user tower inline, at the same offered load, in one run.

    python benchmarks/soap_load.py                         # trains a user tower on MovieLens (~1 min), serves it, loads it
    python benchmarks/soap_load.py --rate 300 --duration 10 --store redis://127.0.0.1:6379/0

An open-loop client (httpx, asyncio) sends `rate` requests per second for `duration` seconds to each endpoint in
turn (the same seeded users and schedule), against a real `nasrec-lit serve` process (uvicorn). Reports p50/p99
latency, achieved throughput, failed requests (non-200 or transport error), and the staleness of the served
embeddings. Last line: `p99_ratio=<sync p99 / async p99> failed=<n>`.
"""
import argparse, asyncio, json, os, socket, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np


def free_port():
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def prepare(work: Path, events: int, epochs: int):
    "Train the default-size user tower on the first `events` MovieLens events; publish; write features; warm nothing."
    from nasrec_lit.usermodel.sum import movielens_user_data, train_sum, SUMConfig, publish_snapshot
    from nasrec_lit.usermodel.soap import UserFeatures
    ml = movielens_user_data()
    tr = np.flatnonzero(ml.split == 0)[:events]; va = np.flatnonzero(ml.split == 1)[:2000]; te = np.flatnonzero(ml.split == 2)[:2000]
    m, res = train_sum(ml.subset(np.r_[tr, va, te]), SUMConfig(epochs=epochs), log="disabled")
    publish_snapshot(m, work/"snap"); UserFeatures.save(work/"features.npz", ml.latest)
    return sorted(ml.latest)


def warm(work: Path, store_spec: str, users):
    "Two stored versions per user, as a service that has been running would have."
    from nasrec_lit.usermodel.soap import open_store, UserFeatures
    from nasrec_lit.usermodel.sum import load_user_tower, tower_embed
    ut, v = load_user_tower(work/"snap"); f = UserFeatures(work/"features.npz")
    emb = tower_embed(ut, f.get(users)); s = open_store(store_spec)
    if hasattr(s, "clear"): s.clear()
    for _ in range(2): s.push_many([(u, e, v) for u, e in zip(users, emb)])
    s.close()


async def load(base: str, path_fmt: str, users, rate: float, duration: float, seed: int):
    import httpx
    rng = np.random.default_rng(seed); n = int(rate*duration)
    who = rng.choice(users, n); at = np.arange(n) / rate
    lat = np.full(n, np.nan); ok = np.zeros(n, bool); stale = np.full(n, np.nan)
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as c:
        t0 = time.perf_counter()
        async def one(i):
            delay = t0 + at[i] - time.perf_counter()
            if delay > 0: await asyncio.sleep(delay)
            s = time.perf_counter()
            try:
                r = await c.get(path_fmt.format(int(who[i])))
                lat[i] = time.perf_counter() - s
                if r.status_code == 200: ok[i] = True; stale[i] = r.json()["staleness_s"]
            except httpx.HTTPError: lat[i] = time.perf_counter() - s
        await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - t0
    return dict(requests=n, ok=int(ok.sum()), failed=int(n - ok.sum()), throughput_rps=ok.sum()/wall,
                p50_ms=1e3*np.nanpercentile(lat, 50), p99_ms=1e3*np.nanpercentile(lat, 99), max_ms=1e3*np.nanmax(lat),
                staleness_p50_s=float(np.nanpercentile(stale, 50)) if ok.any() else float("nan"),
                staleness_p99_s=float(np.nanpercentile(stale, 99)) if ok.any() else float("nan"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=150, help="offered load, requests/s")
    ap.add_argument("--duration", type=float, default=10, help="seconds per endpoint")
    ap.add_argument("--store", default=None, help="sqlite:PATH (default: a temp file) or redis://...")
    ap.add_argument("--events", type=int, default=20_000, help="MovieLens events to train the tower on")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="soap_load_"))
    t = time.time(); users = prepare(work, a.events, a.epochs); print(f"user tower trained and published in {time.time()-t:.0f}s")
    store = a.store or f"sqlite:{work/'store.db'}"
    warm(work, store, users)
    port = free_port(); base = f"http://127.0.0.1:{port}"
    exe = Path(sys.executable).with_name("nasrec-lit")
    srv = subprocess.Popen([str(exe), "serve", "--snapshots", str(work/"snap"), "--features", str(work/"features.npz"),
                            "--store", store, "--port", str(port)], env=dict(os.environ, OMP_NUM_THREADS="1"))
    import httpx
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/health").status_code == 200: break
            except httpx.HTTPError: time.sleep(0.1)
        else: raise SystemExit("server did not start")
        # warm-up both paths (imports, first-call allocations), not measured
        for u in users[:20]: httpx.get(f"{base}/users/{u}/embedding"); httpx.get(f"{base}/users/{u}/embedding/sync")
        res = {}
        for name, fmt in (("async", "/users/{}/embedding"), ("sync", "/users/{}/embedding/sync")):
            res[name] = asyncio.run(load(base, fmt, users, a.rate, a.duration, a.seed))
            time.sleep(1.0)
        health = httpx.get(base + "/health").json()
    finally:
        srv.terminate(); srv.wait(timeout=10)
    print(f"offered load {a.rate:.0f} req/s for {a.duration:.0f}s per endpoint; store {store.split(':')[0]}; server health {health}")
    cols = ["requests", "ok", "failed", "throughput_rps", "p50_ms", "p99_ms", "max_ms", "staleness_p50_s", "staleness_p99_s"]
    print(f"{'endpoint':<8} " + " ".join(f"{c:>15}" for c in cols))
    for k, r in res.items(): print(f"{k:<8} " + " ".join(f"{r[c]:>15.3f}" if isinstance(r[c], float) else f"{r[c]:>15}" for c in cols))
    failed = res["async"]["failed"] + res["sync"]["failed"]
    print(f"p99_ratio={res['sync']['p99_ms']/res['async']['p99_ms']:.2f} failed={failed}")


if __name__ == "__main__":
    main()
