#!/usr/bin/env python3
"""Load benchmark of the notify path as deployed (not a test: a developer runs it to catch regressions).

Starts `ledger serve` (projections and dispatcher running) on a fresh PostgreSQL database and Redis index,
signs notifications with a fresh key, drives them with wrk at a fixed number of connections, and reports:
throughput, p50/p99, answers other than `success`, the mean group-commit size, the CPU time per callback
of the serving process and of the projections process (steadier than throughput on a shared machine),
and how long the projections took to catch up after the load.

  apt-get install -y wrk
  .venv/bin/python bench/notify.py [--duplicates 3] [--seconds 10] [--connections 32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import psycopg
import redis
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

APP_ID, SELLER_ID = "2021000000000001", "2088000000000001"
LUA = """
local bodies = {}
for line in io.lines(os.getenv("BENCH_BODIES")) do bodies[#bodies + 1] = line end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
init = function(args) n, good, bad = 0, 0, 0 end
request = function()
  n = n + 1
  return wrk.format("POST", "/api/alipay/notify",
    {["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"}, bodies[(n % #bodies) + 1])
end
response = function(status, headers, body)
  if status == 200 and body == "success" then good = good + 1 else bad = bad + 1 end
end
done = function(summary, latency, requests)
  local g, b = 0, 0
  for _, t in ipairs(threads) do g = g + t:get("good"); b = b + t:get("bad") end
  io.write(string.format("RESULT good=%d bad=%d p50=%.3f p99=%.3f\\n", g, b,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def signed_bodies(key: rsa.RSAPrivateKey, count: int, duplicates: int) -> list[str]:
    lines = []
    for _ in range(count):
        order = f"B{uuid.uuid4().hex[:24]}"
        params = {"app_id": APP_ID, "charset": "utf-8", "notify_id": uuid.uuid4().hex,
                  "notify_time": "2026-11-21 10:00:00", "notify_type": "trade_status_sync", "out_trade_no": order,
                  "trade_no": f"2026{order}", "trade_status": "TRADE_SUCCESS", "total_amount": "88.00",
                  "receipt_amount": "88.00", "buyer_pay_amount": "88.00", "gmt_payment": "2026-11-21 09:59:59",
                  "seller_id": SELLER_ID, "buyer_id": "2088000000000002", "subject": "基准 bench", "version": "1.0"}
        text = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if v)
        signature = key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
        params.update(sign_type="RSA2", sign=base64.b64encode(signature).decode())
        lines += [urllib.parse.urlencode(params)] * (1 + duplicates)
    return lines


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? ([\d.e+]+)$", text, re.M))


def one_run(args: argparse.Namespace, key: rsa.RSAPrivateKey, public: str, work: Path, port: int) -> dict[str, float]:
    admin = args.postgres
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("drop database if exists bench_notify with (force)")
        conn.execute("create database bench_notify")
    database = urllib.parse.urlunsplit(urllib.parse.urlsplit(admin)._replace(path="/bench_notify"))
    redis_url = re.sub(r"/\d*$", "", args.redis.rstrip("/")) + "/7"
    redis.Redis.from_url(redis_url).flushdb()
    bodies = work / "bodies.txt"
    bodies.write_text("\n".join(signed_bodies(key, 4000 * args.seconds // (1 + args.duplicates), args.duplicates)))
    env = {**os.environ, "LEDGER_DATABASE_URL": database, "LEDGER_REDIS_URL": redis_url,
           "LEDGER_ALIPAY_PUBLIC_KEY": public, "LEDGER_ALIPAY_APP_ID": APP_ID}
    ledger = Path(sys.executable).with_name("ledger")
    server = subprocess.Popen([str(ledger), "serve", "--port", str(port), "--log-level", "warning"], env=env,
                              stdout=(work / "serve.log").open("w"), stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(1)
        procs = [server.pid, *children(server.pid)]
        before = [cpu_ticks(p) for p in procs]
        out = subprocess.run(["wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "--latency", "-s",
                              str(work / "notify.lua"), f"http://127.0.0.1:{port}"],
                             env={**os.environ, "BENCH_BODIES": str(bodies)}, capture_output=True, text=True,
                             check=True).stdout
        after = [cpu_ticks(p) for p in procs]
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
        m = re.search(r"RESULT good=(\d+) bad=(\d+) p50=([\d.]+) p99=([\d.]+)", out)
        assert m, out
        good = int(m[1])
        ticks = os.sysconf("SC_CLK_TCK")
        used = [(b - a) / ticks for a, b in zip(before, after, strict=True)]
        batch = metric(port, "ledger_group_commit_size_sum") / max(1.0, metric(port, "ledger_group_commit_size_count"))
        started = time.monotonic()
        while max(metric(port, "ledger_projection_lag"), 0) > 0 and time.monotonic() - started < 120:
            time.sleep(0.2)
        return {"rps": rps, "bad": int(m[2]), "p50": float(m[3]), "p99": float(m[4]), "batch": batch,
                "serve_us": used[0] * 1e6 / max(good, 1), "proj_us": sum(used[1:]) * 1e6 / max(good, 1),
                "catch_up": time.monotonic() - started}
    finally:
        server.terminate()
        server.wait(20)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("drop database if exists bench_notify with (force)")
        redis.Redis.from_url(redis_url).flushdb()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="index 7 of this server is used")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--duplicates", type=int, default=0, help="extra copies of each notification")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--port", type=int, default=8731)
    args = ap.parse_args()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    with tempfile.TemporaryDirectory(prefix="bench-notify-") as folder:
        work = Path(folder)
        (work / "notify.lua").write_text(LUA)
        runs = [one_run(args, key, public, work, args.port) for _ in range(args.rounds)]
    print(f"{'run':>3} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'bad':>5} {'batch':>6} "
          f"{'serve µs/cb':>11} {'proj µs/cb':>10} {'catch-up s':>10}")
    for i, r in enumerate(runs):
        print(f"{i:>3} {r['rps']:>7.0f} {r['p50']:>7.1f} {r['p99']:>7.1f} {r['bad']:>5} {r['batch']:>6.1f} "
              f"{r['serve_us']:>11.0f} {r['proj_us']:>10.0f} {r['catch_up']:>10.1f}")
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"median: {med['rps']:.0f} req/s, p99 {med['p99']:.1f} ms, {med['serve_us']:.0f} µs CPU per callback "
          f"serving + {med['proj_us']:.0f} projecting; {args.connections} connections, duplicates "
          f"{args.duplicates}, non-success {sum(r['bad'] for r in runs)}")
    return 0 if all(r["bad"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
