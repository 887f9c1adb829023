"""A gateway answer: the signed text cut out exactly, its verification with the key ring, its code's meaning."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from hypothesis import given
from hypothesis import strategies as st

from ledger.alipay.keyring import AlipayKey, KeyRing, fingerprint, load_key_ring
from ledger.alipay.response import check_code, read_answer, signed_content, verify_answer
from ledger.domain.errors import GatewayError
from tests.support.alipay import APP_ID, SandboxAlipay

QUERY = "alipay.trade.query"
ROOT = "alipay_trade_query_response"
PAID = '{"code":"10000","msg":"Success","out_trade_no":"T1","total_amount":"88.00","trade_status":"TRADE_SUCCESS"}'


def sign(content: str, key: rsa.RSAPrivateKey) -> str:
    return base64.b64encode(key.sign(content.encode("utf-8"), PKCS1v15(), hashes.SHA256())).decode()


def answer(content: str, key: rsa.RSAPrivateKey, *, cert_sn: str = "", root: str = ROOT) -> str:
    cert = f',"alipay_cert_sn":"{cert_sn}"' if cert_sn else ""
    return f'{{"{root}":{content}{cert},"sign":"{sign(content, key)}"}}'


def ring(alipay: SandboxAlipay) -> KeyRing:
    return load_key_ring(alipay.public_key_b64)


# -- the signed text -------------------------------------------------------------------------------------

def test_the_response_object_is_cut_out_exactly_as_received() -> None:
    content = '{ "code" : "10000",\n  "msg":"Success", "sub_msg": "\\u4ea4\\u6613" }'
    assert signed_content(f'{{"{ROOT}" :  {content} , "sign":"c2ln"}}', QUERY) == (content, "c2ln", "")


def test_nested_objects_and_lists_stay_inside() -> None:
    content = '{"code":"10000","fund_bill_list":[{"amount":"1.00","x":{"y":{}}}],"z":{}}'
    assert signed_content(f'{{"{ROOT}":{content},"sign":"s"}}', QUERY)[0] == content


def test_braces_quotes_and_backslashes_inside_strings_do_not_move_the_end() -> None:
    content = r'{"code":"10000","subject":"a } \" { b","body":"\\","note":"\\\"}"}'
    assert signed_content(f'{{"{ROOT}":{content},"sign":"s"}}', QUERY)[0] == content


def test_escaped_slashes_are_kept_as_sent() -> None:
    content = r'{"code":"10000","url":"https:\/\/example.com\/x"}'
    assert signed_content(f'{{"{ROOT}":{content},"sign":"s"}}', QUERY)[0] == content


def test_the_root_named_inside_a_string_is_no_root() -> None:
    fake = json.dumps({"x": f'"{ROOT}":{{"code":"10000"}}'})[1:-1]
    text = f'{{{fake},"{ROOT}":{{"code":"40004"}},"sign":"s"}}'
    assert signed_content(text, QUERY)[0] == '{"code":"40004"}'


def test_a_second_root_is_refused() -> None:
    text = f'{{"{ROOT}":{{"code":"40004"}},"{ROOT}":{{"code":"10000"}},"sign":"s"}}'
    with pytest.raises(GatewayError, match="2 times") as caught:
        signed_content(text, QUERY)
    assert caught.value.reason == "malformed" and caught.value.text == text


def test_without_the_root_the_error_response_is_the_signed_object() -> None:
    content = '{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id"}'
    assert signed_content(f'{{"error_response":{content}}}', QUERY) == (content, "", "")


def test_certificate_mode_names_the_signing_certificate_after_the_object() -> None:
    assert signed_content(f'{{"{ROOT}":{PAID},"alipay_cert_sn":"a53c6a9683b032b1","sign":"s"}}', QUERY) == (
        PAID, "s", "a53c6a9683b032b1")


def test_the_sign_may_come_before_the_object() -> None:
    assert signed_content(f'{{"sign":"s","alipay_cert_sn":"sn","{ROOT}":{PAID}}}', QUERY) == (PAID, "s", "sn")


@pytest.mark.parametrize("text", [
    "", "<html>502 Bad Gateway</html>", "[]", '"x"', "{", '{"a":1}', f'{{"{ROOT}":{PAID}}} trailing',
    f'{{"{ROOT}":{PAID},}}', f'{{"{ROOT}":"ZW5jcnlwdGVk","sign":"s"}}', f'{{"{ROOT}":{PAID},"sign":1}}',
    f'{{"{ROOT}":{PAID},"sign":"a","sign":"b"}}', f'{{"{ROOT}":{{"a":NaN}}}}', f'{{"{ROOT}":{PAID}',
])
def test_anything_but_one_json_object_holding_one_response_object_is_malformed(text: str) -> None:
    with pytest.raises(GatewayError) as caught:
        signed_content(text, QUERY)
    assert (caught.value.reason, caught.value.text) == ("malformed", text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.sampled_from('{}[]":,\\/ aé交\n\t')),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12)


@given(fields=st.dictionaries(st.text(max_size=8), json_values, max_size=5), ascii_only=st.booleans(),
       spaced=st.booleans(), sign_first=st.booleans())
def test_whatever_the_object_holds_its_exact_text_is_what_comes_out(
        fields: dict[str, Any], ascii_only: bool, spaced: bool, sign_first: bool) -> None:
    separators = (", ", ": ") if spaced else (",", ":")
    content = json.dumps(fields, ensure_ascii=ascii_only, separators=separators)
    members = [f'"{ROOT}":{content}', '"sign":"s"']
    text = "{" + ",".join(reversed(members) if sign_first else members) + "}"
    assert signed_content(text, QUERY) == (content, "s", "")


# -- verification ----------------------------------------------------------------------------------------

def test_a_signed_answer_is_believed_with_the_key_that_verified_it(alipay: SandboxAlipay) -> None:
    text = answer(PAID, alipay.private_key)
    verified = verify_answer(APP_ID, text, QUERY, ring(alipay))
    assert (verified.app_id, verified.method, verified.text) == (APP_ID, QUERY, text)
    assert verified.key == fingerprint(alipay.private_key.public_key())
    assert verified.fields == json.loads(PAID) and verified.ok and verified.code == "10000"


def test_a_stored_answer_verifies_again_from_its_text_alone(alipay: SandboxAlipay) -> None:
    first = read_answer(APP_ID, answer(PAID, alipay.private_key), QUERY, ring(alipay))
    assert verify_answer(first.app_id, first.text, first.method, ring(alipay)) == first


def test_the_signature_covers_the_exact_text_not_a_re_serialisation(alipay: SandboxAlipay) -> None:
    content = '{"code": "10000", "msg": "Success", "subject": "\\u4e66 / 书", "total_amount": "88.00"}'
    verified = verify_answer(APP_ID, answer(content, alipay.private_key), QUERY, ring(alipay))
    assert verified.fields["subject"] == "书 / 书"
    resigned = json.dumps(json.loads(content), ensure_ascii=False, separators=(",", ":"))
    text = answer(content, alipay.private_key).replace(content, resigned)
    with pytest.raises(GatewayError) as caught:
        verify_answer(APP_ID, text, QUERY, ring(alipay))
    assert caught.value.reason == "bad_signature"


def test_escaped_slashes_verify_as_alipay_java_sdk_retries_them(alipay: SandboxAlipay) -> None:
    signed = '{"code":"10000","url":"https://example.com/x"}'
    text = f'{{"{ROOT}":{signed.replace("/", chr(92) + "/")},"sign":"{sign(signed, alipay.private_key)}"}}'
    assert verify_answer(APP_ID, text, QUERY, ring(alipay)).fields["url"] == "https://example.com/x"


def test_an_unsigned_answer_is_a_configuration_error_never_business_data(alipay: SandboxAlipay) -> None:
    for text in (f'{{"{ROOT}":{PAID}}}',
                 '{"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id"}}'):
        with pytest.raises(GatewayError) as caught:
            verify_answer(APP_ID, text, QUERY, ring(alipay))
        error = caught.value
        assert (error.reason, error.retryable, error.text, error.code) == ("unsigned", False, text, "")
    assert "isv.invalid-app-id" in str(error)  # what it claims, for the operator: never believed


@pytest.mark.parametrize("change", ["wrong key", "tampered", "not base64", "truncated sign"])
def test_a_badly_signed_answer_is_refused_with_its_text(alipay: SandboxAlipay, change: str) -> None:
    text = answer(PAID, alipay.private_key)
    if change == "wrong key":
        text = answer(PAID, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    elif change == "tampered":
        text = text.replace('"88.00"', '"0.01"')
    elif change == "not base64":
        text = text[:text.index('"sign":"') + 8] + '*#"}'
    else:
        text = text[:-12] + '"}'
    with pytest.raises(GatewayError) as caught:
        verify_answer(APP_ID, text, QUERY, ring(alipay))
    assert (caught.value.reason, caught.value.retryable, caught.value.text) == ("bad_signature", False, text)


def test_the_apps_own_public_key_configured_as_alipays_verifies_nothing(alipay: SandboxAlipay) -> None:
    own = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(GatewayError, match="not the app's own") as caught:
        verify_answer(APP_ID, answer(PAID, alipay.private_key), QUERY, KeyRing.of(own.public_key()))
    assert caught.value.reason == "bad_signature"


def test_either_key_of_a_ring_verifies_and_is_named(alipay: SandboxAlipay) -> None:
    new = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    both = KeyRing.of(alipay.private_key.public_key(), new.public_key())
    assert verify_answer(APP_ID, answer(PAID, new), QUERY, both).key == fingerprint(new.public_key())
    assert verify_answer(APP_ID, answer(PAID, alipay.private_key), QUERY, both).key == fingerprint(
        alipay.private_key.public_key())


def test_certificate_mode_answers_verify_with_the_certificate_named_or_any_other(alipay: SandboxAlipay) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    named = AlipayKey(alipay.private_key.public_key(), fingerprint(alipay.private_key.public_key()), cert_sn="sn-2")
    certificates = KeyRing((AlipayKey(other, fingerprint(other), cert_sn="sn-1"), named))
    for cert_sn in ("sn-2", "sn-1", "unknown"):
        verified = verify_answer(APP_ID, answer(PAID, alipay.private_key, cert_sn=cert_sn), QUERY, certificates)
        assert verified.key == named.fingerprint


# -- what the code means ---------------------------------------------------------------------------------

def verified(alipay: SandboxAlipay, **fields: str) -> Any:
    return verify_answer(APP_ID, answer(json.dumps(fields, ensure_ascii=False), alipay.private_key), QUERY,
                         ring(alipay))


def test_success_and_business_failures_are_answers(alipay: SandboxAlipay) -> None:
    assert check_code(verified(alipay, code="10000", msg="Success")).ok
    missing = check_code(verified(alipay, code="40004", msg="Business Failed", sub_code="ACQ.TRADE_NOT_EXIST",
                                  sub_msg="交易不存在"))
    assert (missing.ok, missing.code, missing.sub_code) == (False, "40004", "ACQ.TRADE_NOT_EXIST")


def test_an_unknown_outcome_is_retryable(alipay: SandboxAlipay) -> None:
    busy = verified(alipay, code="20000", msg="Service Currently Unavailable", sub_code="isp.unknow-error",
                    sub_msg="系统繁忙")
    with pytest.raises(GatewayError) as caught:
        check_code(busy)
    error = caught.value
    assert (error.reason, error.retryable, error.code, error.sub_code, error.text) == (
        "unavailable", True, "20000", "isp.unknow-error", busy.text)


@pytest.mark.parametrize(("code", "sub_code", "sub_msg"), [
    ("40001", "isv.missing-signature", "缺少签名参数"),
    ("40002", "isv.invalid-signature", "验签出错"),
    ("40002", "isv.invalid-app-id", "无效的AppID参数"),
    ("40003", "isv.missing-signature-config", "应用未配置对应签名算法的公钥或者证书"),
    ("20001", "aop.invalid-app-auth-token", "无效的应用授权令牌"),
])
def test_a_refused_request_is_not_retried_and_says_why(alipay: SandboxAlipay, code: str, sub_code: str,
                                                       sub_msg: str) -> None:
    refused = verified(alipay, code=code, msg="Invalid Arguments", sub_code=sub_code, sub_msg=sub_msg)
    with pytest.raises(GatewayError) as caught:
        check_code(refused)
    error = caught.value
    assert (error.reason, error.retryable, error.code, error.sub_code) == ("request_refused", False, code, sub_code)
    assert code in str(error) and sub_code in str(error) and sub_msg in str(error) and error.text == refused.text


def test_an_unexpected_code_is_not_acted_on(alipay: SandboxAlipay) -> None:
    for fields in ({"code": "99999"}, {"msg": "no code"}):
        with pytest.raises(GatewayError) as caught:
            check_code(verified(alipay, **fields))
        assert (caught.value.reason, caught.value.retryable) == ("unexpected_code", False)


def test_a_refusal_showing_the_signed_string_keeps_the_app_auth_token_out_of_its_message(
        alipay: SandboxAlipay) -> None:
    shown = "验签出错，网关生成的验签字符串为：app_auth_token=202612BBsecret&amp;app_id=2021&amp;charset=utf-8"
    refused = verified(alipay, code="40002", msg="Invalid Arguments", sub_code="isv.invalid-signature", sub_msg=shown)
    with pytest.raises(GatewayError) as caught:
        check_code(refused)
    assert "202612BBsecret" not in str(caught.value) and "app_auth_token=(hidden)&amp;app_id=2021" in str(caught.value)
    assert "202612BBsecret" in caught.value.text  # the evidence stays whole
