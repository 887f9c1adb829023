"""Bills' bytes in a dict: the twin of the SQL and folder stores, for unit tests and the in-memory ledger."""

from __future__ import annotations

import threading


class MemoryBillFiles:
    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def keep(self, sha256: str, data: bytes) -> None:
        with self._lock:
            self._files.setdefault(sha256, bytes(data))

    def read(self, sha256: str) -> bytes | None:
        with self._lock:
            return self._files.get(sha256)
