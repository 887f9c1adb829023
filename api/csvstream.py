"""CSV downloads that spreadsheets open right: UTF-8 with a BOM, China Standard Time, money with two decimals.

Rows are read and written in a worker thread, a chunk at a time, so the event loop only sends bytes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from starlette.concurrency import iterate_in_threadpool
from starlette.responses import StreamingResponse

from projections.common import CST

BOM = "\ufeff"
# A spreadsheet runs a cell that starts like a formula: text from outside must not (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, datetime):
        return value.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    return "'" + text if isinstance(value, str) and text.startswith(_FORMULA_START) else text


def csv_chunks(columns: Sequence[str], rows: Iterable[dict[str, Any]], *, rows_per_chunk: int = 500) -> Iterator[str]:
    """The BOM and header, then the rows, as text chunks of about `rows_per_chunk` rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write(BOM)
    writer.writerow(columns)
    for n, row in enumerate(rows, 1):
        writer.writerow([cell(row.get(name)) for name in columns])
        if n % rows_per_chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def csv_download(chunks: Iterator[str], filename: str) -> StreamingResponse:
    """Stream `chunks` as an attachment; each chunk is produced in the thread pool."""

    async def body() -> AsyncIterator[bytes]:
        async for chunk in iterate_in_threadpool(chunks):
            yield chunk.encode("utf-8")

    return StreamingResponse(body(), media_type="text/csv; charset=utf-8",
                             headers={"content-disposition": f'attachment; filename="{filename}"'})
