"""Generated notifications, signed as Alipay signs, with any value in the fields the ledger books (within and
beyond Alipay's limits, control characters, odd dates and amounts): the endpoint never answers 500, a normal
payment afterwards still reaches the read model, and the read model rebuilt from the log equals the one built
as the notifications came. On SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from api.app import create_app
from ledger.alipay.sandbox import encode_form
from ledger.bootstrap import Ledger
from projections.queries import order_row
from tests.support.alipay import APP_ID, SandboxAlipay
from tests.support.histories import snapshot

FORM = {"content-type": "application/x-www-form-urlencoded"}
# Any character a UTF-8 body can carry (lone surrogates cannot be encoded at all), control characters included.
ANY_TEXT = st.one_of(st.text(st.characters(exclude_categories=("Cs",)), max_size=80),
                     st.sampled_from(["a\x00b", "\x00", "\u0085", "\x7f", "tab\there", "line\r\nbreak", "L" * 65,
                                      "L" * 64 + "X", "L" * 64 + "Y", "测" * 257]))
AMOUNTS = st.one_of(st.from_regex(r"[0-9]{1,14}(\.[0-9]{1,3})?", fullmatch=True),
                    st.sampled_from(["0.00", "0.01", "9999999999999.99", "1000.00", "100000000.00", "100000000.01",
                                     "９９.００", "٩٩.٠٠", "-1.00", "1e3", "88.00", " 88.00", "NaN", "Infinity"]),
                    ANY_TEXT)
TIMES = st.one_of(st.datetimes().map(lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S")),
                  st.sampled_from(["0001-01-01 00:00:00", "0001-01-01 07:59:59", "9999-12-31 23:59:59",
                                   "2026-02-30 10:00:00", "2026-11-21 10:00:00.123", ""]), ANY_TEXT)
IDS = st.one_of(st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=70), ANY_TEXT)
FIELDS = st.fixed_dictionaries({}, optional={
    "total_amount": AMOUNTS, "refund_fee": AMOUNTS, "receipt_amount": AMOUNTS, "gmt_payment": TIMES,
    "gmt_refund": TIMES, "gmt_close": TIMES, "notify_time": TIMES, "subject": ANY_TEXT, "trade_no": IDS,
    "out_biz_no": IDS, "buyer_id": IDS, "auth_app_id": IDS, "notify_id": IDS,
    "trade_status": st.one_of(st.sampled_from(["TRADE_SUCCESS", "TRADE_FINISHED", "TRADE_CLOSED",
                                               "WAIT_BUYER_PAY"]), ANY_TEXT)})


@pytest.fixture
def ledger(request: pytest.FixtureRequest, make_ledger: Callable[..., Ledger]) -> Iterator[Ledger]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    yield make_ledger(url)


@pytest.mark.parametrize("ledger", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_generated_notifications_never_break_the_endpoint_nor_the_read_side(
        ledger: Ledger, alipay: SandboxAlipay) -> None:
    orders = [f"G{uuid.uuid4().hex[:8]}" for _ in range(3)]  # few numbers: notifications meet on one order
    answered: set[str] = set()

    with TestClient(create_app(ledger, close_on_shutdown=False)) as client:
        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(fields=FIELDS, order=st.one_of(st.sampled_from(orders), IDS))
        def notify_anything(fields: dict[str, str], order: str) -> None:
            body = encode_form(alipay.params(order, **fields))
            answer = client.post("/api/alipay/notify", content=body, headers=FORM)
            assert (answer.status_code, answer.text) in {(200, "success"), (400, "fail")}
            answered.add(answer.text)

        notify_anything()
        assert answered == {"success", "fail"}  # both kinds were generated
        normal = f"N{uuid.uuid4().hex[:8]}"
        answer = client.post("/api/alipay/notify", content=alipay.body(normal), headers=FORM)
        assert answer.text == "success"
    assert ledger.runner is not None and ledger.engine is not None
    ledger.runner.catch_up()
    row = order_row(ledger.engine, APP_ID, normal)
    assert row is not None and row["status"] == "PAID"
    incremental = snapshot(ledger.engine)
    ledger.runner.rebuild()
    assert snapshot(ledger.engine) == incremental
