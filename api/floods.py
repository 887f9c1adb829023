"""Floods of notifications that fail verification: beyond a rate per source address, each is answered `fail`
without its rejected-log row or log line, and one line per source sums them up.

The counts live in the serving process (each of `--workers` counts its own): a bound on the work a flood
makes, not a shared quota.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ledger.domain.errors import EncryptedMessage, LedgerError, Rejected, Unbookable

log = logging.getLogger(__name__)


def floods_count(exc: LedgerError) -> bool:
    """Whether a refusal counts towards its source's rate: every failed verification, never a notification
    whose signature verified (an unbookable one is Alipay's own, kept whole in quarantine; an encrypted message
    is Alipay's too)."""
    return isinstance(exc, Rejected) and not isinstance(exc, Unbookable | EncryptedMessage)


@dataclass
class _Bucket:
    tokens: float
    updated: float
    suppressed: int = 0


class RefusalFloods:
    """A token bucket per source address, refilled at `per_second` and holding as many (one second's burst).

    Called on the serving event loop only. Sources whose bucket is full again are forgotten at each report,
    and at most `max_sources` are kept, so a flood from many addresses cannot grow it without bound."""

    def __init__(self, per_second: float, *, report_seconds: float = 10.0, max_sources: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second, self.report_seconds, self.max_sources, self.clock = (per_second, report_seconds,
                                                                              max_sources, clock)
        self.buckets: dict[str, _Bucket] = {}
        self.reported_at = clock()

    def admit(self, source: str) -> bool:
        """True: refuse this one in full (rejected log, log line). False: over the rate, answer and count."""
        now = self.clock()
        if now - self.reported_at >= self.report_seconds:
            self._report(now)
        bucket = self.buckets.get(source)
        if bucket is None:
            if len(self.buckets) >= self.max_sources:
                self._report(now)  # forgets the sources that went quiet
                while len(self.buckets) >= self.max_sources:
                    del self.buckets[next(iter(self.buckets))]  # the longest known
            bucket = self.buckets[source] = _Bucket(self.per_second, now)
        bucket.tokens = min(self.per_second, bucket.tokens + (now - bucket.updated) * self.per_second)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return True
        bucket.suppressed += 1
        return False

    def _report(self, now: float) -> None:
        """One line per source with suppressed refusals since the last report; quiet sources forgotten."""
        for source, bucket in list(self.buckets.items()):
            if bucket.suppressed:
                log.warning("%d refused notifications from %s suppressed in the last %.0f s", bucket.suppressed,
                            source, now - self.reported_at)
                bucket.suppressed = 0
            elif bucket.tokens + (now - bucket.updated) * self.per_second >= self.per_second:
                del self.buckets[source]
        self.reported_at = now
