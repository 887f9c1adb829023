#!/usr/bin/env bash
# Set up .venv and run the ledger on the embedded default (SQLite file, no Redis), then act as Alipay:
# post a signed notification twice (as Alipay re-sends) and print the order's history. The server keeps
# running until Ctrl-C; DEMO_EXIT=1 stops it after the demonstration.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
export PATH="$PWD/.venv/bin:$PATH"
export LEDGER_DATABASE_URL="${LEDGER_DATABASE_URL:-sqlite:///ledger.db}"
export LEDGER_ALIPAY_APP_ID="${LEDGER_ALIPAY_APP_ID:-2021000000000001}"
[ -f .sandbox/alipay_public.txt ] || ledger keygen --dir .sandbox
export LEDGER_ALIPAY_PUBLIC_KEY_FILE="${LEDGER_ALIPAY_PUBLIC_KEY_FILE:-.sandbox/alipay_public.txt}"
port="${PORT:-8000}"

ledger serve --port "$port" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
python - "$port" <<'PY'
import sys, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=1)
        break
    except Exception:
        time.sleep(0.2)
else:
    sys.exit("the ledger did not become ready")
PY
order="DEMO-$(date +%Y%m%d%H%M%S)"
echo "== Alipay sends a payment notification for $order, then sends it again:"
ledger simulate --url "http://127.0.0.1:$port/api/alipay/notify" --out-trade-no "$order" --repeat 2
echo "== The order's history (ledger history $order):"
ledger history "$order"
if [ "${DEMO_EXIT:-0}" = 1 ]; then exit 0; fi
echo "== The ledger keeps serving on http://127.0.0.1:$port (Ctrl-C stops it)"
wait $server
