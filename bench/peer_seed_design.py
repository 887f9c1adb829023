"""Reference peer for the notify benchmark: the design in the original task card, written the way a
performance-minded Python developer would write it with no event sourcing at all.

POST /api/alipay/notify: verify the RSA2 signature, take a Redis SET NX PX lock per order, upsert one
row of an `orders` table, release the lock with a compare-and-delete script, answer `success`.
It keeps no history, no projections and no jobs: it is the floor that the ledger has to beat while doing
far more. Configured by environment variables:

  PEER_POSTGRES   libpq conninfo or URL of the database (default postgresql://postgres@127.0.0.1:5432/test)
  PEER_REDIS      Redis URL (default redis://127.0.0.1:6379/0)
  PEER_PUBLIC_KEY Alipay public key, base64 DER (SubjectPublicKeyInfo)

Run: uvicorn --app-dir bench peer_seed_design:app --port 8101
"""

import base64
import os
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg_pool
import redis.asyncio as aioredis
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route


def rsa_public_key(b64_der: str) -> RSAPublicKey:
    key = load_der_public_key(base64.b64decode(b64_der))
    if not isinstance(key, RSAPublicKey):
        raise SystemExit("the public key is not an RSA key")
    return key


PUBLIC_KEY = rsa_public_key(os.environ["PEER_PUBLIC_KEY"])
RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
pool = psycopg_pool.AsyncConnectionPool(
    os.environ.get("PEER_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"),
    min_size=8,
    max_size=8,
    open=False,
)
cache = aioredis.Redis.from_url(os.environ.get("PEER_REDIS", "redis://127.0.0.1:6379/0"))


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await pool.open()
    async with pool.connection() as conn:
        await conn.execute(
            "create table if not exists peer_orders(out_trade_no text primary key, status int not null,"
            " trade_no text, total_amount numeric, finished_time timestamptz)"
        )
    yield
    await pool.close()
    await cache.aclose()


def signed_content(params: dict[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in ("sign", "sign_type") and v)


async def notify(request: Request) -> PlainTextResponse:
    body = await request.body()
    params = dict(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    try:
        PUBLIC_KEY.verify(
            base64.b64decode(params["sign"]), signed_content(params).encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except Exception:
        return PlainTextResponse("fail")
    if params.get("trade_status") not in ("TRADE_SUCCESS", "TRADE_FINISHED"):
        return PlainTextResponse("fail")
    key = "peer:lock:" + params["out_trade_no"]
    token = uuid.uuid4().hex
    if not await cache.set(key, token, nx=True, px=300_000):
        return PlainTextResponse("fail")
    try:
        async with pool.connection() as conn:
            await conn.execute(
                "insert into peer_orders values (%s, 1, %s, %s, now()) on conflict (out_trade_no) do update"
                " set status = 1, trade_no = excluded.trade_no, finished_time = excluded.finished_time",
                (params["out_trade_no"], params["trade_no"], params["total_amount"]),
            )
    finally:
        await cache.eval(RELEASE, 1, key, token)
    return PlainTextResponse("success")


app = Starlette(routes=[Route("/api/alipay/notify", notify, methods=["POST"])], lifespan=lifespan)
