"""Decoding notification bodies: once, in the notification's own charset, rejecting anything malformed."""

import pytest

from ledger.alipay.form import MAX_BODY_BYTES, SUPPORTED_CHARSETS, parse_notification
from ledger.alipay.sandbox import encode_form, trade_notification
from ledger.domain.errors import MalformedNotification


def notification(**extra: str | None) -> dict[str, str]:
    return trade_notification("2021000000000001", "ORDER-1", notify_id="n-1", sign="c2lnbg==", **extra)


def test_a_body_encoded_as_alipay_does_parses_back_to_the_same_parameters() -> None:
    params = notification()
    assert parse_notification(encode_form(params)) == params


@pytest.mark.parametrize("charset", ["gbk", "gb2312", "GBK", "GB2312"])
def test_gbk_body_decodes_chinese_with_its_own_charset(charset: str) -> None:
    params = notification(charset=charset, subject="测试商品")
    body = encode_form(params)
    assert "测".encode("gbk").hex().upper() in body.decode("ascii").replace("%", "")
    assert parse_notification(body)["subject"] == "测试商品"


def test_the_same_chinese_subject_in_utf8_decodes_too() -> None:
    body = encode_form(notification(subject="测试商品"))
    assert b"%E6%B5%8B" in body
    assert parse_notification(body)["subject"] == "测试商品"


def test_a_gbk_body_is_not_decoded_as_utf8() -> None:
    body = "subject=测试&charset=gbk&sign=x".encode("gbk")
    assert parse_notification(body)["subject"] == "测试"


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "utf8", "Utf8"])
def test_utf8_charset_names_are_accepted_in_any_case(charset: str) -> None:
    params = parse_notification(encode_form(notification(charset=charset)))
    assert params["charset"] == charset


def test_charset_defaults_to_utf8_when_absent() -> None:
    params = parse_notification("subject=测试&sign=x".encode())
    assert params == {"subject": "测试", "sign": "x"}


def test_supported_charsets_are_the_three_alipay_sends() -> None:
    assert {"utf-8", "gbk", "gb2312"} == SUPPORTED_CHARSETS


def test_plus_and_percent_inside_values_survive_a_single_decode() -> None:
    params = notification(passback_params="a+b%20c%", body="100%25 off")
    body = encode_form(params)
    assert b"a%2Bb%2520c%25" in body
    parsed = parse_notification(body)
    assert parsed["passback_params"] == "a+b%20c%"
    assert parsed["body"] == "100%25 off"


def test_plus_in_the_body_means_space_and_escaped_plus_means_plus() -> None:
    assert parse_notification(b"subject=a+b%2Bc&sign=x")["subject"] == "a b+c"


def test_ampersand_and_equals_inside_a_value_are_kept() -> None:
    parsed = parse_notification(encode_form(notification(body="q=1&r=2", passback_params="==&&")))
    assert parsed["body"] == "q=1&r=2"
    assert parsed["passback_params"] == "==&&"


def test_empty_values_are_kept_in_the_parameters() -> None:
    assert parse_notification(b"subject=&body=&sign=x") == {"subject": "", "body": "", "sign": "x"}


def test_values_keep_their_leading_and_trailing_whitespace() -> None:
    parsed = parse_notification(encode_form(notification(subject=" 测试商品 ", body="\tline\n")))
    assert parsed["subject"] == " 测试商品 "
    assert parsed["body"] == "\tline\n"


def test_a_body_of_exactly_the_limit_is_accepted() -> None:
    head = b"sign=x&body="
    body = head + b"a" * (MAX_BODY_BYTES - len(head))
    assert len(body) == MAX_BODY_BYTES
    assert parse_notification(body)["body"] == "a" * (MAX_BODY_BYTES - len(head))


def test_a_body_over_64_kib_is_rejected() -> None:
    head = b"sign=x&body="
    body = head + b"a" * (MAX_BODY_BYTES + 1 - len(head))
    assert MAX_BODY_BYTES == 64 * 1024 and len(body) == MAX_BODY_BYTES + 1
    with pytest.raises(MalformedNotification, match="larger"):
        parse_notification(body)


def test_an_empty_body_is_rejected() -> None:
    with pytest.raises(MalformedNotification, match="empty"):
        parse_notification(b"")


@pytest.mark.parametrize("body", [b"sign=x&subject", b"sign=x&", b"sign=x&&subject=y", b"sign"])
def test_a_field_without_equals_is_rejected(body: bytes) -> None:
    with pytest.raises(MalformedNotification, match="'='"):
        parse_notification(body)


def test_a_field_with_an_empty_name_is_rejected() -> None:
    with pytest.raises(MalformedNotification, match="empty name"):
        parse_notification(b"sign=x&=y")


@pytest.mark.parametrize(
    "body",
    [
        b"sign=x&total_amount=1.00&total_amount=100.00",
        b"sign=x&subject=a&subject=a",
        b"sign=x&sign=y",
        b"sign=x&%73ubject=a&subject=b",
        b"sign=x&charset=utf-8&charset=gbk",
    ],
)
def test_a_repeated_key_is_rejected(body: bytes) -> None:
    with pytest.raises(MalformedNotification, match="more than once"):
        parse_notification(body)


@pytest.mark.parametrize("charset", ["latin-1", "big5", "utf-16", "utf-8 ", "%E6%B5%8B"])
def test_an_unsupported_charset_is_rejected(charset: str) -> None:
    with pytest.raises(MalformedNotification, match="unsupported charset"):
        parse_notification(f"sign=x&charset={charset}".encode())


@pytest.mark.parametrize(
    "body", [b"sign=x&subject=%FF", b"sign=x&subject=\xff", b"sign=x&charset=gbk&subject=%81%20"]
)
def test_bytes_that_do_not_decode_in_the_charset_are_rejected(body: bytes) -> None:
    with pytest.raises(MalformedNotification, match="does not decode"):
        parse_notification(body)


@pytest.mark.parametrize("body", [b"subject=x", b"subject=x&sign="])
def test_a_body_without_sign_is_rejected(body: bytes) -> None:
    with pytest.raises(MalformedNotification, match="sign is missing"):
        parse_notification(body)


def test_a_str_body_is_rejected() -> None:
    with pytest.raises(MalformedNotification, match="bytes"):
        parse_notification("sign=x")  # type: ignore[arg-type]
