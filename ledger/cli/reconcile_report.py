"""What `ledger reconcile` prints: a bill imported, a run's counts, and a day's report with its open findings."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

import sqlalchemy as sa

from ledger.service.bills import Imported
from ledger.service.reconciliation import Run
from projections.queries.reconciliation import STATES, day_findings, days_report

UNSETTLED = ("open", "carried")


def print_import(done: Imported) -> None:
    bill = done.bill
    what = "imported" if done.newly else "already imported (nothing new recorded)"
    print(f"{what}: bill {done.bill_id} of app {bill.app_id}, account {bill.account}, day {bill.bill_date}, "
          f"sha256 {done.sha256}, {bill.size} bytes")
    print(f"  {bill.payments} payments, {bill.refunds} refunds; 订单金额 {bill.total_amount}, 商家实收 "
          f"{bill.receipt_amount}, 服务费 {bill.fee}, 分润 {bill.share}, 实收净额 {bill.net}")


def print_run(run: Run) -> None:
    counts = ", ".join(f"{kind} {n}" for kind, n in run.counts.items() if n or kind == "matched")
    print(f"matched: run {run.run} of app {run.app_id}'s {run.day}: {counts}; {len(run.opened)} findings opened, "
          f"{len(run.closed)} closed")
    for finding_id, answer in run.queried.items():
        print(f"  asked Alipay about finding {finding_id}: {answer or 'not asked'}")


def print_day(engine: sa.Engine, day: date, *, app_id: str | None) -> None:
    rows = days_report(engine, day_from=day, day_to=day, app_id=app_id)
    if not rows:
        print(f"{day}: no bill imported and no run recorded")
        return
    findings = day_findings(engine, day, app_id=app_id)
    for row in rows:
        _print_row(row, [f for f in findings if f["app_id"] == row["app_id"]])


def _print_row(row: dict[str, Any], findings: list[dict[str, Any]]) -> None:
    bill = f"bill {row['bill_id']}" if row["bill_imported"] else "no bill imported"
    fetch = f"; fetch {row['fetch_state']}: {_text(row['fetch_error'])}" if row["fetch_state"] else ""
    print(f"{row['day']} app {row['app_id']}: {bill}, {row['runs']} runs, last at {_text(row['last_run_at'])}{fetch}")
    if not row["runs"]:
        return
    print(f"  bill:   {row['bill_payments']} payments {row['bill_payment_amount']}, {row['bill_refunds']} refunds "
          f"{row['bill_refund_amount']}; 服务费 {row['fee']}, 分润 {row['share']}, 实收净额 {row['net']}")
    print(f"  ledger: {row['ledger_payments']} payments {row['ledger_payment_amount']}, {row['ledger_refunds']} "
          f"refunds {row['ledger_refund_amount']}; fees posted {row['fees_posted']}")
    kinds = Counter(f["kind"] for f in findings)
    by_kind = "".join(f", {kind} {n}" for kind, n in sorted(kinds.items()))
    states = ", ".join(f"{row[f'findings_{state}']} {state}" for state in STATES)
    print(f"  matched {row['matched']}{by_kind}; findings: {states}")
    for f in findings:
        if f["state"] in UNSETTLED:
            print(f"  {f['finding_id']} {f['state']} {f['kind']} {f['out_trade_no']} {f['request_no'] or '-'} "
                  f"bill {_text(f['bill_amount'])} ledger {_text(f['ledger_amount'])}: {f['detail']}")


def _text(value: object) -> str:
    return "-" if value is None or value == "" else str(value)
