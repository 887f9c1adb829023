#!/usr/bin/env bash
# Set up .venv and run the ledger on the embedded default (SQLite file, no Redis), then act as Alipay:
# post a signed notification twice (as Alipay re-sends) and print the order's history, then the API tokens
# and a few curl lines that use them. The server keeps running until Ctrl-C. Beside it runs a stand-in for
# Alipay's gateway on port N+10 (unless LEDGER_ALIPAY_GATEWAY_URL is set), which the ledger asks about
# trades whose notification does not come; `ledger doctor` checks the whole configuration first.
#
#   bash scripts/demo.sh [--port N]     N: the HTTP port, 8000 by default (or $PORT)
#
# DEMO_EXIT=1 stops the server after the demonstration. Without LEDGER_API_TOKENS the API is closed, so the
# demo makes one token per role once, into .sandbox/tokens.env (git-ignored), and uses them from then on.
# The LEDGER_* settings it serves with go to .sandbox/demo.env, for `ledger` commands in a second shell.
set -euo pipefail
port="${PORT:-8000}"
while [ $# -gt 0 ]; do
    case "$1" in
        --port) port="${2:?--port needs a number}"; shift 2 ;;
        --port=*) port="${1#--port=}"; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "demo.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$port" in ''|*[!0-9]*) echo "demo.sh: --port needs a number, not '$port'" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
export PATH="$PWD/.venv/bin:$PATH"
export LEDGER_DATABASE_URL="${LEDGER_DATABASE_URL:-sqlite:///ledger.db}"
export LEDGER_ALIPAY_APP_ID="${LEDGER_ALIPAY_APP_ID:-2021000000000001}"
[ -f .sandbox/alipay_public.txt ] || ledger keygen --dir .sandbox
export LEDGER_ALIPAY_PUBLIC_KEY_FILE="${LEDGER_ALIPAY_PUBLIC_KEY_FILE:-.sandbox/alipay_public.txt}"
if [ -z "${LEDGER_ALIPAY_GATEWAY_URL:-}" ]; then
    # The app's own key pair (its private half signs requests to the gateway), and the stand-in gateway.
    [ -f .sandbox/app/alipay_public.txt ] || ledger keygen --dir .sandbox/app > /dev/null
    gateway_port=$((port + 10))
    ledger sandbox-gateway --port "$gateway_port" --app-public-key .sandbox/app/alipay_public.txt \
        --log-level warning > /dev/null &
    gateway=$!
    export LEDGER_ALIPAY_GATEWAY_URL="http://127.0.0.1:$gateway_port/gateway.do"
    export LEDGER_ALIPAY_APP_PRIVATE_KEY_FILE="${LEDGER_ALIPAY_APP_PRIVATE_KEY_FILE:-.sandbox/app/alipay_private.pem}"
fi
export LEDGER_PUBLIC_NOTIFY_URL="${LEDGER_PUBLIC_NOTIFY_URL:-http://127.0.0.1:$port/api/alipay/notify}"
if [ -z "${LEDGER_API_TOKENS:-}" ]; then
    if [ ! -f .sandbox/tokens.env ]; then
        mkdir -p .sandbox
        (umask 077; python -c 'import secrets
for role in ("merchant", "operator", "finance", "auditor"):
    print(f"{role.upper()}_TOKEN={secrets.token_urlsafe(24)}")' > .sandbox/tokens.env)
    fi
    # shellcheck disable=SC1091
    . .sandbox/tokens.env
    export LEDGER_API_TOKENS="merchant/demo:$MERCHANT_TOKEN,operator/demo:$OPERATOR_TOKEN,finance/demo:$FINANCE_TOKEN,auditor/demo:$AUDITOR_TOKEN"
    demo_tokens=1
fi
# The settings it serves with, for `ledger` commands in a second shell: `source .sandbox/demo.env` (the tour does).
(umask 077; for name in $(compgen -e | grep '^LEDGER_'); do printf 'export %s=%q\n' "$name" "${!name}"; done \
    > .sandbox/demo.env)

ledger serve --port "$port" --log-level warning &
server=$!
trap 'kill $server ${gateway:-} 2>/dev/null || true' EXIT
python - "$port" "$server" <<'PY'
import os, sys, time, urllib.request
for _ in range(150):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=1)
        break
    except Exception:
        try:
            os.kill(int(sys.argv[2]), 0)
        except OSError:
            sys.exit("the ledger exited before it was ready (see above)")
        time.sleep(0.2)
else:
    sys.exit("the ledger did not become ready")
PY
order="DEMO-$(date +%Y%m%d%H%M%S)"
base="http://127.0.0.1:$port"
echo "== ledger doctor: the keys, the gateway, the clock, the database, the notify URL:"
ledger doctor || echo "(ledger doctor: a check failed, see above)"
echo "== Alipay sends a payment notification for $order, then sends it again:"
ledger simulate --url "$base/api/alipay/notify" --out-trade-no "$order" --repeat 2
echo "== The order's history (ledger history $order):"
ledger history "$order"
if [ -n "${demo_tokens:-}" ]; then
    echo "== The API's tokens, one per role (kept in .sandbox/tokens.env; LEDGER_API_TOKENS set from them):"
    cat .sandbox/tokens.env
    echo "== Try it (after: . .sandbox/tokens.env):"
    echo "curl -H \"Authorization: Bearer \$MERCHANT_TOKEN\" $base/api/orders/$order"
    echo "curl -H \"Authorization: Bearer \$AUDITOR_TOKEN\" $base/api/orders/$order/history"
    today="$(TZ=Asia/Shanghai date +%Y-%m-%d)"  # the ledger's business day is China Standard Time
    echo "curl -H \"Authorization: Bearer \$FINANCE_TOKEN\" \"$base/api/reports/daily?from=$today&to=$today\""
    echo "curl -H \"Authorization: Bearer \$OPERATOR_TOKEN\" $base/api/manual-queue"
    echo "== The first of them, as the merchant reads the order:"
    python - "$base/api/orders/$order" "$MERCHANT_TOKEN" <<'PY'
import json, sys, time, urllib.error, urllib.request
request = urllib.request.Request(sys.argv[1], headers={"Authorization": f"Bearer {sys.argv[2]}"})
for _ in range(50):  # the read model follows the log: a moment after the notification it has the order
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            order = json.load(answer)
        print(json.dumps({k: order[k] for k in ("out_trade_no", "status", "paid_amount", "callback_count")}))
        break
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            sys.exit(f"HTTP {exc.code} {exc.read().decode()}")
        time.sleep(0.2)
else:
    sys.exit("the read model did not show the order")
PY
fi
if [ "${DEMO_EXIT:-0}" = 1 ]; then exit 0; fi
echo "== The ledger keeps serving on $base (Ctrl-C stops it)"
wait $server
