#!/usr/bin/env python3
"""Side-by-side load benchmark of the Alipay notify endpoint: the ledger against the reference peer.

Both servers get the same kind of traffic: RSA2-signed trade_status_sync notifications for distinct
orders (optionally with duplicates), sent by wrk over loopback at a fixed number of connections.
Runs alternate (peer, ledger, peer, ledger, ...) so that machine drift hits both; each run gets fresh
orders. A response counts as good only if its body is exactly `success`.

  python bench/notify_bench.py --target 'ledger serve --port {port}'

The target command is started with these environment variables (on top of the caller's):
  LEDGER_DATABASE_URL       a fresh PostgreSQL database made for this run
  LEDGER_REDIS_URL          a Redis database index flushed for this run
  LEDGER_ALIPAY_PUBLIC_KEY  the public key of a fresh RSA-2048 key (base64 DER), which signs the traffic
  LEDGER_ALIPAY_APP_ID      the app_id the traffic carries
Extra variables for the target: --env NAME=VALUE (repeatable).

Needs: wrk (Debian package `wrk`), a PostgreSQL server and a Redis server, and a Python with
cryptography, psycopg, psycopg_pool, redis, starlette and uvicorn (the project's own environment).
A third server, `ceiling_verify_only.py`, only verifies and answers: the limit for any Python intake
on this stack. Prints a table, `ratio ledger/ceiling ...`, then last `ratio ledger/peer throughput X.XX ...`.
Exit status 0 when every response of the ledger was `success`, 1 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import os
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

HERE = Path(__file__).resolve().parent
APP_ID = "2021000000000001"
SELLER_ID = "2088000000000001"

LUA = r"""
local bodies = {}
for line in io.lines(os.getenv("BENCH_BODIES")) do bodies[#bodies + 1] = line end
local threads = {}
local next_id = 0
setup = function(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
init = function(args)
  counter = id * 1000003
  good = 0
  bad = 0
end
request = function()
  counter = counter + 1
  local body = bodies[(counter % #bodies) + 1]
  local headers = {["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"}
  return wrk.format("POST", "/api/alipay/notify", headers, body)
end
response = function(status, headers, body)
  if status == 200 and body == "success" then good = good + 1 else bad = bad + 1 end
end
done = function(summary, latency, requests)
  local g, b = 0, 0
  for _, t in ipairs(threads) do g = g + t:get("good"); b = b + t:get("bad") end
  io.write(string.format("RESULT good=%d bad=%d p50=%.3f p99=%.3f max=%.3f\n", g, b,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def signed_content(params: dict[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in ("sign", "sign_type") and v)


def _signed_lines(args: tuple[bytes, int, int]) -> list[str]:
    pem, count, duplicates = args
    key = serialization.load_pem_private_key(pem, None)
    assert isinstance(key, rsa.RSAPrivateKey)
    lines = []
    for _ in range(count):
        params = {
            "app_id": APP_ID,
            "charset": "utf-8",
            "notify_id": uuid.uuid4().hex,
            "notify_time": "2026-11-21 10:00:00",
            "notify_type": "trade_status_sync",
            "out_trade_no": f"B{uuid.uuid4().hex[:24]}",
            "trade_no": f"2026{uuid.uuid4().hex[:24]}",
            "trade_status": "TRADE_SUCCESS",
            "total_amount": "88.00",
            "receipt_amount": "88.00",
            "buyer_pay_amount": "88.00",
            "gmt_create": "2026-11-21 09:59:50",
            "gmt_payment": "2026-11-21 09:59:59",
            "seller_id": SELLER_ID,
            "buyer_id": "2088000000000002",
            "subject": "基准测试商品 bench",
            "version": "1.0",
        }
        signature = key.sign(signed_content(params).encode(), padding.PKCS1v15(), hashes.SHA256())
        params.update(sign_type="RSA2", sign=base64.b64encode(signature).decode())
        lines.extend([urllib.parse.urlencode(params)] * (1 + duplicates))
    return lines


def make_bodies(key: rsa.RSAPrivateKey, count: int, duplicates: int, path: Path) -> None:
    """Write `count` distinct signed notifications, each repeated 1 + `duplicates` times, one per line."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    workers = os.cpu_count() or 1
    chunks = [(pem, count // workers + (i < count % workers), duplicates) for i in range(workers)]
    with concurrent.futures.ProcessPoolExecutor(workers) as pool, path.open("w") as out:
        for lines in pool.map(_signed_lines, chunks):
            out.writelines(line + "\n" for line in lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_database(admin_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
    parts = urllib.parse.urlsplit(admin_url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def fresh_redis(redis_url: str, index: int) -> str:
    import redis

    url = re.sub(r"/\d*$", "", redis_url.rstrip("/")) + f"/{index}"
    redis.Redis.from_url(url).flushdb()
    return url


def wait_ready(port: int, probe_body: bytes, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {proc.returncode} before it was ready")
        try:
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/alipay/notify",
                data=probe_body,
                headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
            )
            with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 (http://127.0.0.1 only)
                last = resp.read().decode(errors="replace")
                if last == "success":
                    return
        except Exception as exc:  # not up yet
            last = repr(exc)
        time.sleep(0.25)
    raise SystemExit(f"server on port {port} was not ready in {seconds:.0f} s: last answer {last!r}")


def run_wrk(port: int, bodies: Path, lua: Path, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(lua), f"http://127.0.0.1:{port}"],
        env=dict(os.environ, BENCH_BODIES=str(bodies)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    m = re.search(r"RESULT good=(\d+) bad=(\d+) p50=([\d.]+) p99=([\d.]+) max=([\d.]+)", out)
    if rate is None or m is None:
        raise SystemExit(f"wrk printed no result:\n{out}")
    rps = float(rate.group(1))
    return {"rps": rps, "good": int(m[1]), "bad": int(m[2]), "p50": float(m[3]), "p99": float(m[4]), "max": float(m[5])}


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", required=True, help="command that serves the ledger; {port} is replaced")
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the target (repeatable)")
    ap.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0"))
    ap.add_argument("--seconds", type=int, default=10, help="length of one wrk run")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2, help="runs of each server, alternating")
    ap.add_argument("--duplicates", type=int, default=0, help="extra copies of each notification")
    ap.add_argument("--max-rate", type=int, default=4000, help="highest rate the bodies must last for")
    ap.add_argument("--no-peer", action="store_true", help="leave out the reference peer")
    ap.add_argument("--no-ceiling", action="store_true", help="leave out the verify-only ceiling")
    ap.add_argument("--keep", help="folder to keep logs in")
    args = ap.parse_args()

    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    work = Path(args.keep or tempfile.mkdtemp(prefix="notify-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_b64 = base64.b64encode(
        key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).decode()
    lua = work / "notify.lua"
    lua.write_text(LUA)
    # Enough distinct orders that no run wraps around, up to --max-rate requests/s.
    per_run = max(args.max_rate * args.seconds, 1000) // (1 + args.duplicates) + 1

    names = [n for n, off in (("peer", args.no_peer), ("ceiling", args.no_ceiling), ("ledger", False)) if not off]
    print(f"signing notifications for {args.rounds} rounds of {', '.join(names)} ...", file=sys.stderr)
    for round_no in range(args.rounds):
        for name in names:
            # The ceiling stores nothing, so a small set of bodies, reused, measures it the same.
            count = min(per_run, 2000) if name == "ceiling" else per_run
            make_bodies(key, count, args.duplicates, work / f"bodies-{name}-{round_no}.txt")
    servers: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}
    try:
        if not args.no_peer:
            ports["peer"] = free_port()
            peer_env = dict(
                os.environ,
                PEER_POSTGRES=fresh_database(args.postgres, "bench_peer"),
                PEER_REDIS=fresh_redis(args.redis, 6),
                PEER_PUBLIC_KEY=public_b64,
            )
            servers["peer"] = start(
                [sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "peer_seed_design:app",
                 "--port", str(ports["peer"]), "--log-level", "warning", "--no-access-log"],
                peer_env,
                work / "peer.log",
            )
        if not args.no_ceiling:
            ports["ceiling"] = free_port()
            servers["ceiling"] = start(
                [sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "ceiling_verify_only:app",
                 "--port", str(ports["ceiling"]), "--log-level", "warning", "--no-access-log"],
                dict(os.environ, CEILING_PUBLIC_KEY=public_b64),
                work / "ceiling.log",
            )
        ports["ledger"] = free_port()
        ledger_env = dict(
            os.environ,
            LEDGER_DATABASE_URL=fresh_database(args.postgres, "bench_ledger"),
            LEDGER_REDIS_URL=fresh_redis(args.redis, 5),
            LEDGER_ALIPAY_PUBLIC_KEY=public_b64,
            LEDGER_ALIPAY_APP_ID=APP_ID,
        )
        for item in args.env:
            name, _, value = item.partition("=")
            ledger_env[name] = value
        servers["ledger"] = start(
            shlex.split(args.target.format(port=ports["ledger"])), ledger_env, work / "ledger.log"
        )
        for name, port in ports.items():
            probe = work / f"probe-{name}.txt"
            make_bodies(key, 1, 0, probe)
            wait_ready(port, probe.read_bytes().strip(), servers[name])

        results: dict[str, list[dict[str, float]]] = {name: [] for name in ports}
        order = [n for n in names if n in ports]
        for round_no in range(args.rounds):
            for name in order:
                bodies = work / f"bodies-{name}-{round_no}.txt"
                results[name].append(run_wrk(ports[name], bodies, lua, args.seconds, args.connections))
                bodies.unlink()
    finally:
        for proc in servers.values():
            stop(proc)

    print(f"{'server':8} {'run':>3} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'good':>8} {'bad':>6}")
    for name, runs in results.items():
        for i, r in enumerate(runs):
            print(f"{name:8} {i:>3} {r['rps']:>9.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['max']:>8.2f} "
                  f"{r['good']:>8} {r['bad']:>6}")
    med = {n: {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99")} for n, runs in results.items()}
    bad = sum(r["bad"] for r in results["ledger"])
    led = med["ledger"]
    if "ceiling" in med:
        print(
            f"ratio ledger/ceiling throughput {led['rps'] / med['ceiling']['rps']:.2f} "
            f"(ceiling: verify only, no storage, {med['ceiling']['rps']:.0f} req/s p99 {med['ceiling']['p99']:.1f} ms)"
        )
    if "peer" in med:
        print(
            f"ratio ledger/peer throughput {led['rps'] / med['peer']['rps']:.2f} "
            f"(ledger {led['rps']:.0f} req/s p99 {led['p99']:.1f} ms; peer {med['peer']['rps']:.0f} req/s "
            f"p99 {med['peer']['p99']:.1f} ms; {args.connections} connections, ledger non-success {bad})"
        )
    else:
        print(f"ledger {led['rps']:.0f} req/s p50 {led['p50']:.1f} ms p99 {led['p99']:.1f} ms; non-success {bad}")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
