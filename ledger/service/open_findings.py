"""The alert for a day whose reconciliation findings stay open: raised once a day for each app and day with findings
opened longer ago than the grace (LEDGER_FINDINGS_GRACE_HOURS) and neither resolved nor closed since."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa

from ledger.service.alerting import once_a_day
from projections.queries.reconciliation import days_with_open_findings

KIND = "findings_open"


def alert_open_findings(engine: sa.Engine, raise_alert: Callable[..., bool], *, now: datetime,
                        grace: timedelta) -> int:
    """Raise the alert for each app and day with findings open since before `now - grace`; how many were not
    raised already today."""
    hours = f"{grace.total_seconds() / 3600:g}"
    raised = 0
    for app_id, day, count in days_with_open_findings(engine, opened_before=now - grace):
        findings = "finding is" if count == 1 else "findings are"
        message = (f"app {app_id}: {count} reconciliation {findings} of {day} still open more than {hours} h after "
                   f"being found; see GET /api/reconciliation/{day}?app_id={app_id}&state=open and resolve each "
                   "with a note saying why")
        raised += bool(raise_alert(KIND, f"{app_id}/{day}", message, once_a_day(now)))
    return raised
