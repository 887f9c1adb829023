"""Every error the ledger raises on purpose, in one hierarchy.

Entrypoints map the two families to answers: `Rejected` will never succeed (HTTP 400, Alipay `fail`),
`RetryLater` may succeed when asked again (HTTP 503, Alipay `fail`, Alipay comes back).
"""


class LedgerError(Exception):
    """Root of the ledger's own errors."""

    reason = "ledger_error"

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        super().__init__(message or self.__doc__ or self.reason)
        if reason is not None:
            self.reason = reason


class Rejected(LedgerError):
    """The request is wrong and will stay wrong: answer 400 and change nothing."""

    reason = "rejected"


class MalformedNotification(Rejected):
    """The notification body cannot be decoded into parameters."""

    reason = "malformed"


class SignatureInvalid(Rejected):
    """The notification's signature does not verify with Alipay's public key for its app."""

    reason = "bad_signature"


class UnknownApp(Rejected):
    """The notification names an app_id this ledger has no key for."""

    reason = "unknown_app"


class SellerMismatch(Rejected):
    """The notification's seller_id is not the seller configured for its app."""

    reason = "seller_mismatch"


class EncryptedMessage(Rejected):
    """A message of Alipay's message service whose biz_content is AES-encrypted (`encrypt_type`): the ledger
    holds no AES key to read it, so it is refused and Alipay sends it again."""

    reason = "aes_encrypted"


class Unbookable(Rejected):
    """The notification's signature verified, but what it says lies beyond Alipay's own limits (or has no
    order, status or amount the ledger can book): kept whole in quarantine for an operator, never booked."""

    reason = "unbookable"

    def __init__(self, message: str, params: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.params = params or {}  # as verified, without the parameters of empty value


class InvalidRequest(Rejected):
    """An API request has a missing or malformed field."""

    reason = "invalid_request"


class BillRefused(Rejected):
    """A trade bill (对账单) the ledger will not use, and uses nothing of: `reason` is `not_a_bill`, `not_gbk`,
    `too_large`, `unknown_columns`, `missing_columns`, `bad_row` or `totals_differ`; the message, written for
    finance, says where and what to do."""

    reason = "bill_refused"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, reason=reason)


class OrderConflict(LedgerError):
    """The order exists with different registered details."""

    reason = "order_conflict"


class NothingToDo(LedgerError):
    """The order is not in the state this action needs (for example, no abandoned delivery to retry)."""

    reason = "nothing_to_do"


class OrderNotFound(LedgerError):
    """No stream exists for this order."""

    reason = "order_not_found"


class RetryLater(LedgerError):
    """Nothing was recorded, but asking again may succeed: answer 503."""

    reason = "retry_later"


class LockTimeout(RetryLater):
    """Another delivery of the same order held its lock for longer than we may wait."""

    reason = "lock_timeout"


class StorageUnavailable(RetryLater):
    """The event store could not be reached or did not commit."""

    reason = "storage_unavailable"


class UnknownOrder(RetryLater):
    """Strict mode: the order was never registered; Alipay retries while the merchant registers it."""

    reason = "unknown_order"


class TooManyConflicts(RetryLater):
    """The order's stream kept moving under us; the bounded reload-and-decide loop gave up."""

    reason = "version_conflicts"


class GatewayError(LedgerError):
    """Alipay's gateway gave no answer the ledger may believe: none in time, an HTTP error, an answer too large,
    not JSON, unsigned or badly signed, or a refusal of the request itself (a missing or invalid signature or
    app: a configuration error). `retryable`: asking again later may work (a timeout, a 5xx, `20000`);
    `text` is the answer as received, if there was one, kept as evidence and never applied."""

    reason = "gateway_error"

    def __init__(self, message: str, *, reason: str, retryable: bool, text: str = "",
                 code: str = "", sub_code: str = "") -> None:
        super().__init__(message, reason=reason)
        self.retryable, self.text, self.code, self.sub_code = retryable, text, code, sub_code


class BillNotYet(RetryLater):
    """Alipay has no trade bill for that day yet (it publishes the day before's by about 9:00 or 10:00 CST)."""

    reason = "bill_not_yet"
