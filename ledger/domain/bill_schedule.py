"""When the daily job fetches a trade bill: the day before's (China Standard Time) from a time of day on, again after
a backoff while Alipay has none, until that day's deadline, when it gives up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone

CST = timezone(timedelta(hours=8), "CST")
FIRST_WAIT = timedelta(minutes=15)  # doubling after each attempt that brought no bill...
LONGEST_WAIT = timedelta(hours=2)  # ...to at most this


@dataclass(frozen=True)
class BillSchedule:
    fetch_at: time  # China Standard Time: when Alipay has published the day before's bill (by 9:00 or 10:00)
    deadline: time  # China Standard Time, the same day, later: the bill not in by then is given up and alerted

    def due_day(self, now: datetime) -> date | None:
        """The day whose bill is due at `now`: yesterday in China Standard Time, once today's fetch time has come;
        None before it."""
        today = now.astimezone(CST).date()
        if now < datetime.combine(today, self.fetch_at, CST):
            return None
        return today - timedelta(days=1)

    def deadline_of(self, day: date) -> datetime:
        """When the job gives up the bill of `day`: the deadline on the day after (UTC)."""
        return datetime.combine(day + timedelta(days=1), self.deadline, CST).astimezone(UTC)

    def retry_at(self, day: date, attempt: int, now: datetime) -> datetime | None:
        """When to try again after attempt number `attempt` (1, 2, ...) of `day`'s bill failed at `now`: 15 minutes
        later, doubling with each attempt to at most 2 hours, but never past the deadline; None (given up) at or
        after it."""
        deadline = self.deadline_of(day)
        if now >= deadline:
            return None
        wait = min(FIRST_WAIT * (1 << min(max(attempt, 1) - 1, 16)), LONGEST_WAIT)
        return min(now + wait, deadline)
