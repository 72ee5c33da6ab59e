"""Open-loop load test of SOAP on loopback: the asynchronous endpoint (answers from the store; workers recompute stale
users in their own processes) against a synchronous one that runs the user tower inline, at the same offered loads.

    python benchmarks/soap_load.py                                    # 150 req/s, SQLite, the notebook's tower
    python benchmarks/soap_load.py --tower-scale 4 --rates 30,150,400 --stores sqlite,redis --freshness 0.5,2,8,30

Each store gets a real `nasrec-lit serve` process (uvicorn, one recompute worker); `redis` starts a private
redis-server (or give a redis:// URL). The store is warmed with two versions per user, written between 0 and
`refresh_s` seconds ago (the ages a service in steady state has). An open-loop client (aiohttp, asyncio) sends `rate`
requests/s for `duration` s to each endpoint in turn (the same seeded users and schedule). `--tower-scale s` widens the
SUM user tower (internal width, mix width and pyramid counts times s) towards a production tower's cost.
`--freshness R1,R2,..` then serves the async endpoint with each recompute interval on the first store and reports the
staleness and the recompute rate it buys. Results: `<out>/results.json` and two figures.

Last line: `p99_ratio=<sync p99 / async p99 at the highest offered load, first store> failed=<failed requests, all runs>`.
"""
import argparse, asyncio, json, os, shutil, socket, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np


def free_port():
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def prepare(work: Path, events: int, epochs: int, scale: int):
    "Train the user tower (times `scale`) on the first `events` MovieLens events; publish it; write the features."
    from nasrec_lit.usermodel.sum import movielens_user_data, train_sum, SUMConfig, publish_snapshot
    from nasrec_lit.usermodel.soap import UserFeatures
    ml = movielens_user_data()
    tr = np.flatnonzero(ml.split == 0)[:events]; va = np.flatnonzero(ml.split == 1)[:2000]; te = np.flatnonzero(ml.split == 2)[:2000]
    cfg = SUMConfig(epochs=epochs, dim=32*scale, mix_dim=32*scale, pyramid=[8*scale, 4*scale])
    m, _ = train_sum(ml.subset(np.r_[tr, va, te]), cfg, log="disabled")
    publish_snapshot(m, work/"snap"); UserFeatures.save(work/"features.npz", ml.latest)
    return sorted(ml.latest), sum(p.numel() for p in m.user_tower.parameters())


def tower_cost(work: Path, users):
    "Milliseconds per call of the published tower, one thread: one user, and a batch of 64."
    import torch
    from nasrec_lit.usermodel.soap import SOAPState, UserFeatures
    torch.set_num_threads(1)
    st = SOAPState(work/"snap", UserFeatures(work/"features.npz"), None)
    out = {}
    for b in (1, 64):
        st.compute(users[:b]); t = time.perf_counter(); n = 20
        for _ in range(n): st.compute(users[:b])
        out[f"tower_ms_batch{b}"] = round(1e3*(time.perf_counter() - t)/n, 2)
    return out


def warm(work: Path, store_spec: str, users, refresh_s: float, seed: int):
    "Two stored versions per user, the newest written between 0 and `refresh_s` ago."
    from nasrec_lit.usermodel.soap import open_store, UserFeatures
    from nasrec_lit.usermodel.sum import load_user_tower, tower_embed
    ut, v = load_user_tower(work/"snap"); f = UserFeatures(work/"features.npz")
    emb = tower_embed(ut, f.get(users)); s = open_store(store_spec)
    if hasattr(s, "clear"): s.clear()
    else:
        import sqlite3
        with sqlite3.connect(s.path) as c: c.execute("DELETE FROM emb"); c.execute("DELETE FROM queue"); c.execute("DELETE FROM workers")
    age = np.random.default_rng(seed).uniform(0, refresh_s, len(users)); now = time.time()
    for k in (1, 0): s.push_many([(u, e, v, now - a - k) for u, e, a in zip(users, emb, age)])
    s.close()


class Server:
    "`nasrec-lit serve` in a process, with one worker; waits until it answers and its worker reports."
    def __init__(self, work, store, refresh_s):
        import httpx
        self.port = free_port(); self.base = f"http://127.0.0.1:{self.port}"
        exe = Path(sys.executable).with_name("nasrec-lit")
        self.p = subprocess.Popen([str(exe), "serve", "--snapshots", str(work/"snap"), "--features", str(work/"features.npz"),
                                   "--store", store, "--port", str(self.port), "--refresh-s", str(refresh_s)],
                                  env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.DEVNULL)
        for _ in range(600):
            try:
                if httpx.get(self.base + "/health").json().get("workers_alive"): break
            except (httpx.HTTPError, ValueError): pass
            time.sleep(0.1)
        else: self.stop(); raise SystemExit("server did not start")
    def health(self):
        import httpx
        return httpx.get(self.base + "/health", timeout=30).json()
    def stop(self): self.p.terminate(); self.p.wait(timeout=20)


async def load(base: str, path_fmt: str, users, rate: float, duration: float, seed: int, connections: int = 256):
    "Send `rate` req/s for `duration` s (seeded users, fixed schedule) over a pool of `connections`; latency from the scheduled time."
    import aiohttp
    rng = np.random.default_rng(seed); n = int(rate*duration)
    who = rng.choice(users, n); at = np.arange(n) / rate
    lat = np.full(n, np.nan); ok = np.zeros(n, bool); stale = np.full(n, np.nan)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(base, connector=aiohttp.TCPConnector(limit=connections), timeout=timeout) as c:
        t0 = time.perf_counter() + 1.0              # the schedule starts once all its tasks exist (creating them takes client time)
        async def one(i):
            s = t0 + at[i]                          # latency from the scheduled send time: a late client counts against the service
            delay = s - time.perf_counter()
            if delay > 0: await asyncio.sleep(delay)
            try:
                async with c.get(path_fmt.format(int(who[i]))) as r:
                    body = await r.read(); lat[i] = time.perf_counter() - s
                    if r.status == 200: ok[i] = True; stale[i] = json.loads(body)["staleness_s"]
            except (aiohttp.ClientError, asyncio.TimeoutError): lat[i] = time.perf_counter() - s
        await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - t0
    pct = lambda x, q: float(np.nanpercentile(x, q)) if np.isfinite(x).any() else float("nan")
    return dict(requests=n, ok=int(ok.sum()), failed=int(n - ok.sum()), achieved_rps=float(ok.sum()/wall),
                p50_ms=1e3*pct(lat, 50), p99_ms=1e3*pct(lat, 99), max_ms=1e3*float(np.nanmax(lat)),
                staleness_p50_s=pct(stale, 50), staleness_p99_s=pct(stale, 99))


def start_redis(spec):
    "A redis:// URL as given, or a private redis-server for `redis`."
    if spec != "redis": return spec, None
    exe = shutil.which("redis-server")
    if exe is None: raise SystemExit("--stores redis: no redis-server installed (apt install redis-server), or give a redis:// URL")
    port = free_port(); p = subprocess.Popen([exe, "--port", str(port), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    from nasrec_lit.usermodel.soap import RedisStore
    for _ in range(100):
        try: RedisStore(f"redis://127.0.0.1:{port}/0").close(); break
        except Exception: time.sleep(0.1)
    return f"redis://127.0.0.1:{port}/0", p


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="150", help="offered loads, requests/s, comma-separated")
    ap.add_argument("--duration", type=float, default=10, help="seconds per endpoint and load")
    ap.add_argument("--stores", default="sqlite", help="comma-separated: sqlite (a temp file) | redis (a private server) | redis://...")
    ap.add_argument("--tower-scale", type=int, default=1, help="user tower widths times this (1: the notebook's SUM tower)")
    ap.add_argument("--refresh-s", type=float, default=30.0, help="the service's recompute interval")
    ap.add_argument("--freshness", default="", help="recompute intervals (s) for the freshness sweep, comma-separated (empty: none)")
    ap.add_argument("--freshness-rate", type=float, default=150, help="offered load of the freshness sweep")
    ap.add_argument("--freshness-duration", type=float, default=20)
    ap.add_argument("--events", type=int, default=20_000, help="MovieLens events to train the tower on")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="nbs/runs/soap_load", help="folder for results.json and the figures")
    a = ap.parse_args()
    rates = [float(x) for x in a.rates.split(",")]; stores = a.stores.split(",")
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="soap_load_"))
    t = time.time(); users, n_params = prepare(work, a.events, a.epochs, a.tower_scale)
    cost = tower_cost(work, users)
    print(f"user tower x{a.tower_scale}: {n_params:,} parameters, trained and published in {time.time()-t:.0f}s; "
          f"{cost['tower_ms_batch1']} ms per user inline, {cost['tower_ms_batch64']/64:.2f} ms per user in batches of 64", flush=True)
    rows, fresh, redis_procs = [], [], []
    try:
        for k, spec in enumerate(stores):
            spec, rp = (f"sqlite:{work/'store.db'}", None) if spec == "sqlite" else start_redis(spec)
            if rp: redis_procs.append(rp)
            kind = spec.split(":")[0]
            warm(work, spec, users, a.refresh_s, a.seed)
            srv = Server(work, spec, a.refresh_s)
            try:
                import httpx
                for u in users[:20]: httpx.get(f"{srv.base}/users/{u}/embedding"); httpx.get(f"{srv.base}/users/{u}/embedding/sync")
                for rate in rates:
                    for name, fmt in (("async", "/users/{}/embedding"), ("sync", "/users/{}/embedding/sync")):
                        h0 = srv.health(); t0 = time.time()
                        r = asyncio.run(load(srv.base, fmt, users, rate, a.duration, a.seed))
                        h1 = srv.health(); dt = time.time() - t0
                        r.update(store=kind, rate=rate, endpoint=name, recomputed=h1["recomputed"] - h0["recomputed"],
                                 recompute_rate=(h1["recomputed"] - h0["recomputed"]) / dt, queue_depth=h1["queue_depth"],
                                 dropped=h1["dropped"] - h0["dropped"])
                        rows.append(r); print(json.dumps({k2: (round(v, 3) if isinstance(v, float) else v) for k2, v in r.items()}), flush=True)
                        time.sleep(1.0)
            finally: srv.stop()
            if k == 0 and a.freshness:
                for R in [float(x) for x in a.freshness.split(",")]:
                    warm(work, spec, users, R, a.seed); srv = Server(work, spec, R)
                    try:
                        h0 = srv.health(); t0 = time.time()
                        r = asyncio.run(load(srv.base, "/users/{}/embedding", users, a.freshness_rate, a.freshness_duration, a.seed))
                        h1 = srv.health(); dt = time.time() - t0
                    finally: srv.stop()
                    r.update(store=kind, refresh_s=R, rate=a.freshness_rate, recompute_rate=(h1["recomputed"] - h0["recomputed"]) / dt)
                    fresh.append(r); print(json.dumps({k2: (round(v, 3) if isinstance(v, float) else v) for k2, v in r.items()}), flush=True)
    finally:
        for p in redis_procs: p.terminate(); p.wait()
    meta = dict(tower_scale=a.tower_scale, parameters=n_params, **cost, refresh_s=a.refresh_s, duration=a.duration, users=len(users))
    (out/"results.json").write_text(json.dumps(dict(meta=meta, load=rows, freshness=fresh), indent=1))
    from nasrec_lit.usermodel.soap import plot_load, plot_freshness
    plot_load(rows, meta).savefig(out/"soap_load.png", dpi=110)
    if fresh: plot_freshness(fresh, meta).savefig(out/"soap_freshness.png", dpi=110)
    cols = ["store", "rate", "endpoint", "achieved_rps", "p50_ms", "p99_ms", "max_ms", "failed", "staleness_p50_s", "staleness_p99_s", "recompute_rate"]
    print(f"\n{'  '.join(f'{c:>15}' for c in cols)}")
    for r in rows: print("  ".join(f"{r[c]:>15.2f}" if isinstance(r[c], float) else f"{r[c]:>15}" for c in cols))
    if fresh:
        cols = ["refresh_s", "staleness_p50_s", "staleness_p99_s", "recompute_rate", "p99_ms"]
        print(f"\nfreshness ({fresh[0]['store']}, {a.freshness_rate:.0f} req/s)\n{'  '.join(f'{c:>15}' for c in cols)}")
        for r in fresh: print("  ".join(f"{r[c]:>15.2f}" for c in cols))
    print(f"results and figures: {out}")
    top = {r["endpoint"]: r for r in rows if r["store"] == rows[0]["store"] and r["rate"] == max(rates)}
    failed = sum(r["failed"] for r in rows + fresh)
    print(f"p99_ratio={top['sync']['p99_ms']/top['async']['p99_ms']:.2f} failed={failed}")


if __name__ == "__main__":
    main()
