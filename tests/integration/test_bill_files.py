"""Where imported bills' bytes are kept, one contract for every store (memory, a folder, SQLite, PostgreSQL): the
exact bytes back by their SHA-256, kept once, and bytes changed behind the ledger's back refused, not handed out."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from ledger.adapters.bills.folder import FolderBillFiles
from ledger.adapters.bills.memory import MemoryBillFiles
from ledger.adapters.bills.sql import SqlBillFiles, bill_files
from ledger.adapters.sql.engine import make_engine
from ledger.adapters.sql.migrations import migrate
from ledger.service.bills import BillFiles

BILL = "#支付宝业务明细查询\n#账号：[20880000000000010156]\n".encode("gbk") + bytes(range(256))
SHA = hashlib.sha256(BILL).hexdigest()


def sql_files(url: str) -> tuple[SqlBillFiles, Callable[[bytes], None]]:
    migrate(url)
    engine = make_engine(url)

    def alter(data: bytes) -> None:
        with engine.begin() as conn:
            conn.execute(sa.update(bill_files).values(content=data))

    return SqlBillFiles(engine), alter


def make(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[BillFiles, Callable[[bytes], None]]:
    """A store, and how to change the bytes it keeps from outside (a disk or a database edited by hand)."""
    if kind == "memory":
        memory = MemoryBillFiles()
        return memory, lambda data: memory._files.update({SHA: data})
    if kind == "folder":
        folder = FolderBillFiles(tmp_path / "bills")
        return folder, lambda data: (tmp_path / "bills" / SHA[:2] / SHA).write_bytes(data)
    url = f"sqlite:///{tmp_path}/ledger.db" if kind == "sqlite" else request.getfixturevalue("postgres_url")
    return sql_files(url)


@pytest.fixture(params=["memory", "folder", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def files(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[BillFiles, Callable[[bytes], None]]:
    return make(request.param, request, tmp_path)


@pytest.fixture(params=["folder", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def lasting(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[BillFiles, Callable[[bytes], None]]:
    return make(request.param, request, tmp_path)


def test_a_bill_kept_is_read_back_byte_for_byte(files: tuple[BillFiles, object]) -> None:
    store, _ = files
    assert store.read(SHA) is None
    store.keep(SHA, BILL)
    assert store.read(SHA) == BILL


def test_a_bill_kept_twice_is_kept_once_as_it_was(files: tuple[BillFiles, object]) -> None:
    store, _ = files
    store.keep(SHA, BILL)
    store.keep(SHA, BILL)
    assert store.read(SHA) == BILL


def test_bytes_changed_behind_the_ledgers_back_are_refused_not_handed_out(
        lasting: tuple[BillFiles, Callable[[bytes], None]]) -> None:
    store, alter = lasting
    store.keep(SHA, BILL)
    alter(BILL.replace(b"0156", b"0157"))
    with pytest.raises(ValueError, match="changed"):
        store.read(SHA)


def test_a_folder_keeps_no_partial_file_under_a_bills_name(tmp_path: Path) -> None:
    FolderBillFiles(tmp_path).keep(SHA, BILL)
    assert [p.name for p in (tmp_path / SHA[:2]).iterdir()] == [SHA]  # the temporary name is gone
    with pytest.raises(ValueError):
        FolderBillFiles(tmp_path).read("../../etc/passwd")
