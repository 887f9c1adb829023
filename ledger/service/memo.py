"""A memory of bodies that verified moments ago, bounded by bytes: a copy identical byte for byte needs no
second parse and RSA check.

Alipay sends copies of a notification, often at once. Only what verified is remembered; a body larger than
`entry_bytes` is never remembered (a genuine notification is one or two kilobytes; a padded replay is not
worth the memory), and the whole memory holds at most `total_bytes` of bodies, the least recently used
going first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class VerifiedMemo(Generic[T]):
    def __init__(self, check: Callable[[bytes], T], *, total_bytes: int = 4 * 1024 * 1024,
                 entry_bytes: int = 8 * 1024) -> None:
        self.check, self.total_bytes, self.entry_bytes = check, total_bytes, entry_bytes
        self._entries: OrderedDict[bytes, T] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __call__(self, body: bytes) -> T:
        with self._lock:
            if body in self._entries:
                self._entries.move_to_end(body)
                return self._entries[body]
        result = self.check(body)  # raises for what does not verify: nothing is remembered
        if len(body) <= self.entry_bytes:
            with self._lock:
                if body not in self._entries:
                    self._entries[body] = result
                    self._bytes += len(body)
                    while self._bytes > self.total_bytes:
                        old, _ = self._entries.popitem(last=False)
                        self._bytes -= len(old)
        return result
