"""Verifying notifications as Alipay signs them: V1/V2, RSA/RSA2, charsets, and every way to fail."""

import base64
from collections.abc import Callable
from itertools import count

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from ledger.alipay.form import parse_notification
from ledger.alipay.keys import load_public_key
from ledger.alipay.sandbox import (
    encode_form,
    generate_key_pair,
    load_private_key,
    sign_params,
    trade_notification,
)
from ledger.alipay.signature import signed_string, verify, verify_text
from ledger.domain.errors import SignatureInvalid

APP_ID = "2021000000000001"
Signer = Callable[..., dict[str, str]]


@pytest.fixture(scope="module")
def alipay_private() -> RSAPrivateKey:
    return load_private_key(generate_key_pair()[0])


@pytest.fixture(scope="module")
def alipay_public(alipay_private: RSAPrivateKey) -> RSAPublicKey:
    return alipay_private.public_key()


@pytest.fixture(scope="module")
def signed(alipay_private: RSAPrivateKey) -> Signer:
    """A trade notification signed by Alipay's key; keyword fields go to trade_notification."""

    def signed(*, sign_type: str = "RSA2", v2: bool = False, **fields: str | None) -> dict[str, str]:
        unsigned = trade_notification(APP_ID, "ORDER-1", **fields)
        return sign_params(unsigned, alipay_private, sign_type=sign_type, v2=v2)

    return signed


@pytest.fixture(scope="module")
def app_key_pair() -> tuple[RSAPrivateKey, str]:
    private_pem, public_base64 = generate_key_pair()
    return load_private_key(private_pem), public_base64


def received(params: dict[str, str]) -> dict[str, str]:
    """What the ledger sees: the parameters after Alipay's form encoding and our single decode."""
    return parse_notification(encode_form(params))


def test_signed_string_drops_sign_sign_type_and_empty_values_and_sorts_by_key() -> None:
    params = {"b": "2", "sign": "S", "a": "1", "sign_type": "RSA2", "empty": "", "c": " "}
    assert signed_string(params) == "a=1&b=2&c= "
    assert signed_string(params, keep_sign_type=True) == "a=1&b=2&c= &sign_type=RSA2"


def test_signed_string_keeps_values_exactly_as_given() -> None:
    params = {"passback_params": "a+b%20c%", "body": "q=1&r=2", "subject": "测试 "}
    assert signed_string(params) == "body=q=1&r=2&passback_params=a+b%20c%&subject=测试 "


def test_a_signature_made_over_the_documented_string_verifies(
    alipay_private: RSAPrivateKey, alipay_public: RSAPublicKey
) -> None:
    text = "app_id=2021000000000001&charset=gbk&out_trade_no=ORDER-1&subject=测试 &total_amount=0.10"
    sign = base64.b64encode(alipay_private.sign(text.encode("gbk"), PKCS1v15(), hashes.SHA256())).decode()
    params = {
        "subject": "测试 ",
        "sign_type": "RSA2",
        "app_id": APP_ID,
        "total_amount": "0.10",
        "out_trade_no": "ORDER-1",
        "charset": "gbk",
        "body": "",
        "sign": sign,
    }
    verify(params, alipay_public)


@pytest.mark.parametrize("sign_type", ["RSA2", "RSA"])
@pytest.mark.parametrize("v2", [False, True], ids=["V1", "V2"])
def test_v1_and_v2_signatures_verify_with_rsa_and_rsa2(
    sign_type: str, v2: bool, signed: Signer, alipay_public: RSAPublicKey
) -> None:
    verify(received(signed(sign_type=sign_type, v2=v2)), alipay_public)


def test_v1_and_v2_strings_differ_so_both_must_be_tried(signed: Signer) -> None:
    params = signed(v2=True)
    assert signed_string(params) != signed_string(params, keep_sign_type=True)


def test_rsa_is_sha1_and_rsa2_is_sha256(signed: Signer, alipay_public: RSAPublicKey) -> None:
    # Alipay's legacy RSA is SHA1withRSA; the ledger can only verify it, as Alipay signs it.
    for sign_type, algorithm in [("RSA", hashes.SHA1()), ("RSA2", hashes.SHA256())]:  # noqa: S303
        params = signed(sign_type=sign_type)
        data = signed_string(params).encode()
        alipay_public.verify(base64.b64decode(params["sign"]), data, PKCS1v15(), algorithm)


def test_absent_sign_type_means_rsa2(signed: Signer, alipay_public: RSAPublicKey) -> None:
    rsa2 = signed(sign_type="RSA2")
    del rsa2["sign_type"]
    verify(rsa2, alipay_public)
    rsa = signed(sign_type="RSA")
    del rsa["sign_type"]
    with pytest.raises(SignatureInvalid):
        verify(rsa, alipay_public)


def test_a_sign_type_that_does_not_match_the_signature_fails(
    signed: Signer, alipay_public: RSAPublicKey
) -> None:
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify({**signed(sign_type="RSA"), "sign_type": "RSA2"}, alipay_public)


@pytest.mark.parametrize("sign_type", ["HMAC-SHA256", "SM2", "rsa2", "RSA2 ", "MD5"])
def test_an_unknown_sign_type_fails_even_over_a_valid_v1_signature(
    sign_type: str, signed: Signer, alipay_public: RSAPublicKey
) -> None:
    params = signed()
    verify(params, alipay_public)
    with pytest.raises(SignatureInvalid, match="sign_type"):
        verify({**params, "sign_type": sign_type}, alipay_public)


def test_an_sm2_notification_is_refused_saying_sm2_is_not_supported(
    signed: Signer, alipay_public: RSAPublicKey
) -> None:
    reason = "sign_type SM2 is not supported: configure the app for RSA2"
    with pytest.raises(SignatureInvalid) as caught:
        verify({**signed(), "sign_type": "SM2"}, alipay_public)
    assert str(caught.value) == reason
    with pytest.raises(SignatureInvalid) as caught:
        verify_text(b'{"code":"10000"}', "c2lnbg==", "SM2", alipay_public)
    assert str(caught.value) == reason


def test_the_apps_own_key_instead_of_alipays_fails(
    signed: Signer, app_key_pair: tuple[RSAPrivateKey, str]
) -> None:
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify(received(signed()), load_public_key(app_key_pair[1]))


def test_a_notification_signed_by_another_key_fails(
    app_key_pair: tuple[RSAPrivateKey, str], alipay_public: RSAPublicKey
) -> None:
    forged = sign_params(trade_notification(APP_ID, "ORDER-1"), app_key_pair[0])
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify(forged, alipay_public)


@pytest.mark.parametrize("v2", [False, True], ids=["V1", "V2"])
def test_tampering_with_any_single_field_fails(v2: bool, signed: Signer, alipay_public: RSAPublicKey) -> None:
    params = received(signed(v2=v2, trans_currency="CNY", passback_params="a+b%20c%"))
    verify(params, alipay_public)
    covered = [key for key in params if key != "sign" and (v2 or key != "sign_type")]
    assert len(covered) >= 19
    for key in covered:
        for changed in ({**params, key: params[key] + "0"}, {k: v for k, v in params.items() if k != key}):
            with pytest.raises(SignatureInvalid):
                verify(changed, alipay_public)
    with pytest.raises(SignatureInvalid):
        verify({**params, "refund_fee": "88.00"}, alipay_public)


def test_a_tampered_sign_fails_verification(signed: Signer, alipay_public: RSAPublicKey) -> None:
    params = signed()
    raw = bytearray(base64.b64decode(params["sign"]))
    raw[-1] ^= 1
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify({**params, "sign": base64.b64encode(bytes(raw)).decode()}, alipay_public)


def test_an_extra_field_not_in_any_published_table_is_covered_by_the_signature(
    signed: Signer, alipay_public: RSAPublicKey
) -> None:
    params = received(signed(trans_currency="USD"))
    verify(params, alipay_public)
    with pytest.raises(SignatureInvalid):
        verify({**params, "trans_currency": "CNY"}, alipay_public)


@pytest.mark.parametrize("charset", ["gbk", "gb2312", "GBK"])
def test_gbk_body_verifies_with_its_own_charset(
    charset: str, signed: Signer, alipay_public: RSAPublicKey
) -> None:
    params = received(signed(charset=charset, subject="测试商品", body="中文描述"))
    assert params["subject"] == "测试商品"
    verify(params, alipay_public)
    sign = base64.b64decode(params["sign"])
    with pytest.raises(InvalidSignature):  # the same string as UTF-8 bytes is not what Alipay signed
        alipay_public.verify(sign, signed_string(params).encode("utf-8"), PKCS1v15(), hashes.SHA256())


def test_plus_percent_ampersand_and_equals_in_values_verify(
    signed: Signer, alipay_public: RSAPublicKey
) -> None:
    params = received(signed(passback_params="a+b%20c%", body="q=1&r=2"))
    assert (params["passback_params"], params["body"]) == ("a+b%20c%", "q=1&r=2")
    verify(params, alipay_public)


def test_empty_values_are_dropped_from_the_signed_string_but_kept_in_params(
    signed: Signer, alipay_public: RSAPublicKey
) -> None:
    params = received(signed(body="", buyer_logon_id=""))
    assert params["body"] == "" and params["buyer_logon_id"] == ""
    assert "body=" not in signed_string(params) and "buyer_logon_id" not in signed_string(params)
    verify(params, alipay_public)


def test_a_trailing_space_in_subject_is_preserved_and_verifies_and_trimming_breaks_it(
    signed: Signer, alipay_public: RSAPublicKey
) -> None:
    params = received(signed(subject="测试商品 "))
    assert params["subject"] == "测试商品 "
    verify(params, alipay_public)
    with pytest.raises(SignatureInvalid):
        verify({**params, "subject": params["subject"].strip()}, alipay_public)


def test_a_sign_whose_plus_signs_became_spaces_still_verifies(
    signed: Signer, alipay_public: RSAPublicKey
) -> None:
    params = next(p for p in (signed(notify_id=f"n{n}") for n in count()) if "+" in p["sign"])
    mangled = {**params, "sign": params["sign"].replace("+", " ")}
    verify(mangled, alipay_public)


def wrapped(text: str, width: int, newline: str = "\r\n") -> str:
    return newline.join(text[i:i + width] for i in range(0, len(text), width))


@pytest.mark.parametrize("arrived", [
    lambda sign: wrapped(sign, 76),
    lambda sign: wrapped(sign, 64, "\n"),
    lambda sign: sign + "\r\n",
    lambda sign: "\r\n" + sign + "\n",
    lambda sign: wrapped(sign, 40, "\t"),
], ids=["crlf-every-76", "lf-every-64", "trailing-crlf", "crlf-around", "tabs-inside"])
def test_a_sign_wrapped_with_line_breaks_or_tabs_verifies_as_the_sdks_read_it(
    arrived: Callable[[str], str], signed: Signer, alipay_public: RSAPublicKey
) -> None:
    params = signed()
    verify({**params, "sign": arrived(params["sign"])}, alipay_public)


def test_a_wrapped_sign_whose_plus_signs_became_spaces_still_verifies(
    signed: Signer, alipay_public: RSAPublicKey
) -> None:
    # The '+' become ' ' first, then the value is wrapped: the repair must not lose the spaces with the CRLFs.
    params = next(p for p in (signed(notify_id=f"n{n}") for n in count()) if "+" in p["sign"])
    mangled = {**params, "sign": wrapped(params["sign"].replace("+", " "), 76) + "\r\n"}
    verify(mangled, alipay_public)


def test_whitespace_removed_from_a_sign_never_makes_another_signature_verify(
    signed: Signer, alipay_public: RSAPublicKey
) -> None:
    params = signed()
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify({**params, "sign": "\r\n".join(["c2ln", "bmF0dXJl"])}, alipay_public)  # base64 of b"signature"


@pytest.mark.parametrize("sign", ["not base64!", "c2lnbg=", "签名", "c2ln\u00a0bmF0dXJl", "c2ln-bmF0dXJl"])
def test_a_sign_that_is_not_base64_fails(sign: str, signed: Signer, alipay_public: RSAPublicKey) -> None:
    with pytest.raises(SignatureInvalid, match="not valid base64"):
        verify({**signed(), "sign": sign}, alipay_public)


def test_a_missing_or_empty_sign_fails(signed: Signer, alipay_public: RSAPublicKey) -> None:
    params = signed()
    with pytest.raises(SignatureInvalid, match="sign is missing"):
        verify({**params, "sign": ""}, alipay_public)
    del params["sign"]
    with pytest.raises(SignatureInvalid, match="sign is missing"):
        verify(params, alipay_public)


def test_values_arriving_as_lists_fail_instead_of_verifying_something_else(
    signed: Signer, alipay_public: RSAPublicKey
) -> None:
    params: dict[str, object] = dict(signed())
    params["subject"] = [params["subject"]]
    with pytest.raises(SignatureInvalid, match="'subject' is not a single string"):
        verify(params, alipay_public)  # type: ignore[arg-type]


def test_an_unsupported_charset_fails_verification(signed: Signer, alipay_public: RSAPublicKey) -> None:
    with pytest.raises(SignatureInvalid, match="unsupported charset"):
        verify({**signed(), "charset": "latin-1"}, alipay_public)


def test_a_value_the_charset_cannot_encode_fails(signed: Signer, alipay_public: RSAPublicKey) -> None:
    with pytest.raises(SignatureInvalid, match="cannot be encoded"):
        verify({**signed(charset="gbk"), "subject": "😀"}, alipay_public)


def test_a_key_that_is_not_an_rsa_public_key_fails(signed: Signer, alipay_private: RSAPrivateKey) -> None:
    with pytest.raises(SignatureInvalid, match="not an RSA public key"):
        verify(signed(), alipay_private)  # type: ignore[arg-type]


def test_resends_of_one_trade_carry_the_same_trade_no_and_their_own_notify_id() -> None:
    first, again = trade_notification(APP_ID, "ORDER-1"), trade_notification(APP_ID, "ORDER-1")
    assert first["trade_no"] == again["trade_no"] != trade_notification(APP_ID, "ORDER-2")["trade_no"]
    assert len(first["trade_no"]) == 28 and first["trade_no"].isdigit()
    assert first["notify_id"] != again["notify_id"]


def test_trade_notification_extra_fields_add_override_and_remove() -> None:
    params = trade_notification(APP_ID, "ORDER-1", refund_fee="10.00", subject="退款", gmt_payment=None)
    assert (params["refund_fee"], params["subject"]) == ("10.00", "退款")
    assert "gmt_payment" not in params
    assert params["notify_type"] == "trade_status_sync" and params["version"] == "1.0"
