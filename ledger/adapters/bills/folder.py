"""Bills' bytes as files in a folder (LEDGER_BILL_DIR), `<sha256[:2]>/<sha256>`: written to a temporary name and
renamed, so a file under its hash is always whole; one already there is left as it is (same hash, same bytes)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class FolderBillFiles:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a SHA-256 in hex")
        return self.folder / sha256[:2] / sha256

    def keep(self, sha256: str, data: bytes) -> None:
        path = self._path(sha256)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def read(self, sha256: str) -> bytes | None:
        try:
            data = self._path(sha256).read_bytes()
        except FileNotFoundError:
            return None
        # A file changed on disk after it was kept is not the bill: say so rather than hand it out.
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError(f"the file kept for bill {sha256} no longer has that hash: it was changed")
        return data
