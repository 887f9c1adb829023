"""The ceiling for the notify benchmark: parse the form and verify the RSA2 signature, then answer
`success` with no storage at all. No intake written in Python on this stack can be faster than this,
so the ledger's throughput over this one's says how close to the limit it runs.

  CEILING_PUBLIC_KEY  Alipay public key, base64 DER (SubjectPublicKeyInfo)

Run: uvicorn --app-dir bench ceiling_verify_only:app --port 8102
"""

import base64
import os
import urllib.parse

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


PUBLIC_KEY = rsa_public_key(os.environ["CEILING_PUBLIC_KEY"])


async def notify(request: Request) -> PlainTextResponse:
    params = dict(urllib.parse.parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
    content = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in ("sign", "sign_type") and v)
    try:
        PUBLIC_KEY.verify(base64.b64decode(params["sign"]), content.encode(), padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return PlainTextResponse("fail")
    return PlainTextResponse("success")


app = Starlette(routes=[Route("/api/alipay/notify", notify, methods=["POST"])])
