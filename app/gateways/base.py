"""The one small interface every gateway adapter implements, and the plain data it speaks.

An adapter turns our payment into the gateway's HTTP requests and the gateway's HTTP back into our results.
It never touches the database: it gets a `PaymentInfo` and a `GatewayContext` (credentials, base URL, our
callback URLs) and returns frozen dataclasses. The services decide what to do with them.

    start(payment, ctx)                 → StartResult (redirect or auto-submitted form post)
    identify(kind, req)                 → Lookup (which payment an *unverified* callback claims to be about)
    verify_callback(kind, req, p, ctx)  → CallbackResult (verified; raises CallbackError otherwise)
    acknowledge(kind, ack)              → (body, status, headers) in the gateway's own response contract
    query(payment, ctx)                 → CallbackResult (the gateway's answer, trusted)
    refund(payment, amount, refund_id, ctx) → RefundResult
    cancel(payment, ctx)                → CallbackResult (where `can_cancel`: end an open attempt there)
    review(payment, decision, ctx)      → CallbackResult (where `can_review`: approve or deny a payment its
                                          fraud detection holds for review)
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import requests

from app.safe_text import storable, storable_text

log = logging.getLogger(__name__)


def unix_seconds(naive_utc):
    """Our naive-UTC datetimes → Unix seconds."""
    return int(naive_utc.replace(tzinfo=UTC).timestamp())


def as_utc(naive_utc):
    """Our naive-UTC datetimes → aware UTC (for converting to a gateway's time zone)."""
    return naive_utc.replace(tzinfo=UTC)


@dataclass(frozen=True)
class PaymentInfo:
    """What an adapter may know about a payment (amount in our minor units)."""

    id: str
    amount: int
    currency: str
    reference: str
    description: str | None
    items: list
    customer: dict
    created_at: datetime
    expires_at: datetime
    checkout_token: str
    gateway_reference: str | None = None
    gateway_transaction_id: str | None = None
    gateway_data: dict = field(default_factory=dict)
    amount_refunded: int = 0
    merchant_name: str = ""
    #: Our id for this attempt, the order id the gateway knows us by and echoes back (`att_…`; for an attempt
    #: made before attempts existed, the payment's own id).
    order_id: str = ""
    #: The shopper's language (en, vi, id, ne, bn), for gateways whose protocol has a field for it.
    locale: str = "en"


@dataclass(frozen=True)
class GatewayContext:
    """A merchant's account at one gateway, and where things live."""

    code: str
    credentials: dict
    mode: str  # sandbox | live
    base_url: str  # the gateway's API (our simulator when the sandbox switch is on)
    public_base_url: str  # this app, as shoppers and gateways reach it
    shopper_ip: str = "127.0.0.1"

    def callback_url(self, kind):
        return f"{self.public_base_url}/callbacks/{self.code}/{kind}"


@dataclass(frozen=True)
class Redirect:
    url: str


@dataclass(frozen=True)
class FormPost:
    """An auto-submitted form to the gateway (for gateways that want a browser POST)."""

    url: str
    fields: dict


@dataclass(frozen=True)
class StartResult:
    action: Redirect | FormPost
    gateway_reference: str | None = None
    gateway_data: dict = field(default_factory=dict)
    raw: dict | None = None


@dataclass(frozen=True)
class CallbackRequest:
    """An incoming gateway request, framework-free (built by the callbacks blueprint).

    The one place where whatever arrived becomes text we can store and compare: the query, the form, the
    headers and the parsed JSON body have every NUL and lone surrogate escaped (`app.safe_text`), whatever
    the method and content type, so an adapter's lookups, signature checks and raw records never meet one.
    `body` stays the exact bytes, for the signatures computed over them.
    """

    method: str
    args: dict
    form: dict
    headers: dict
    body: bytes = b""
    remote_addr: str | None = None

    def __post_init__(self):
        for name in ("method", "args", "form", "headers", "remote_addr"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, storable(value))
        if not isinstance(self.body, bytes):
            object.__setattr__(self, "body", storable_text(self.body or "").encode())

    def json(self):
        """The body as a JSON object (storable), or None."""
        import json

        try:
            data = json.loads(self.body or b"null")
        except (ValueError, RecursionError):
            return None
        return storable(data) if isinstance(data, dict) else None

    def raw(self):
        """A JSON-able, storable record of what arrived, for the timeline."""
        data = {"method": self.method}
        if self.args:
            data["query"] = self.args
        if self.form:
            data["form"] = self.form
        body = self.json()
        if body is not None:
            data["json"] = body
        elif self.body and not self.form:
            data["body"] = storable_text(self.body[:4096])
        return data


@dataclass(frozen=True)
class Lookup:
    """Which attempt a callback is about: our order id (`PaymentInfo.order_id`), else our handle at the
    gateway, else the gateway's transaction id."""

    order_id: str | None = None
    gateway_reference: str | None = None
    gateway_transaction_id: str | None = None

    def __post_init__(self):
        # What a callback claims comes from its JSON too: a number, list or object there is no id of ours
        # (and compared with a text column it would fail in the query, not refuse the callback).
        for name in ("order_id", "gateway_reference", "gateway_transaction_id"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                object.__setattr__(self, name, None)


class Reason(StrEnum):
    """Why an attempt did not succeed, in words a shopper can act on; the checkout translates each one.

    Adapters map their gateway's failure codes to these; the gateway's own text stays on the timeline.
    """

    DECLINED = "declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    WRONG_CODE = "wrong_code"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    LIMIT_EXCEEDED = "limit_exceeded"
    BLOCKED = "blocked"
    GATEWAY_UNAVAILABLE = "gateway_unavailable"
    FAILED = "failed"


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    PROCESSING = "processing"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    #: Nothing to apply (an informational notification).
    NONE = "none"


@dataclass(frozen=True)
class CallbackResult:
    outcome: Outcome
    #: In our minor units and currency (the adapter undoes the gateway's scaling).
    amount: int | None = None
    currency: str | None = None
    #: Our order id as the gateway echoes it (checked against the attempt's).
    order_id: str | None = None
    gateway_reference: str | None = None
    gateway_transaction_id: str | None = None
    #: False for what a browser brought back unverified: shown, never applied.
    trusted: bool = True
    needs_review: bool = False
    failure_code: str | None = None
    #: For a failure: what the shopper is told (the checkout translates it); None lets the outcome decide.
    reason: Reason | None = None
    message: str | None = None
    fee_amount: int | None = None
    card_summary: str | None = None
    #: The gateway's own event id, for de-duplication (Stripe `evt_…`).
    event_id: str | None = None
    raw: dict | None = None


@dataclass(frozen=True)
class RefundResult:
    #: succeeded | failed | pending (the gateway is making it: ask again) | unknown (the gateway answered
    #: but cannot say whether it made it, like a timeout: sent again only where refund_idempotent)
    status: str
    gateway_reference: str | None = None
    message: str | None = None
    raw: dict | None = None


class Ack(StrEnum):
    """What we tell the gateway about its callback; each adapter maps these to its own contract."""

    OK = "ok"
    DUPLICATE = "duplicate"
    NOT_FOUND = "not_found"
    INVALID_SIGNATURE = "invalid_signature"
    INVALID_AMOUNT = "invalid_amount"
    INVALID_REQUEST = "invalid_request"
    ERROR = "error"


class GatewayError(Exception):
    """The gateway refused a call or could not be reached. `code`/`raw` carry the gateway's own answer."""

    def __init__(self, message, *, code=None, raw=None, timeout=False):
        super().__init__(message)
        self.code = code
        self.raw = raw
        self.timeout = timeout


class CallbackError(Exception):
    """A callback that must not be applied; `ack` says how the gateway is answered."""

    def __init__(self, ack, message, *, raw=None):
        super().__init__(message)
        self.ack = Ack(ack)
        self.raw = raw


class Gateway:
    """Base class of the adapters. Subclasses set the class attributes and implement the methods."""

    code: str = ""
    name: str = ""
    #: ISO currencies the gateway takes.
    currencies: frozenset = frozenset()
    #: The gateway's own hosts: {"sandbox": url, "live": url}.
    base_urls: dict = {}
    #: Credential fields a merchant enters in the dashboard: {field: label}.
    credential_fields: dict = {}
    #: Callback kinds (path segments under /callbacks/<code>/) that are browser returns, not server-to-server.
    browser_kinds: frozenset = frozenset({"return"})
    #: Callback kinds whose verification is local (a signature check, no call to the gateway). Any other
    #: kind may call the gateway, so no database transaction is held open while it is verified.
    local_kinds: frozenset = frozenset()
    #: The refund request carries our refund id and the gateway applies it once: a refund call that timed out
    #: may be sent again. When False, a timed-out refund call has an unknown outcome (sending it again could
    #: refund twice), so the refund waits for a person to check at the gateway.
    refund_idempotent: bool = False
    #: Money moves only when we capture it while handling the shopper's callback (bKash's execute): an
    #: attempt we ended is never captured, so leaving it can never charge the shopper.
    captures_on_callback: bool = False
    #: The gateway can end an open attempt for us (`cancel()`), so a new attempt can never double-charge.
    can_cancel: bool = False
    #: A payment the gateway's fraud detection holds for review (`needs_review`) can be approved or denied
    #: through its API (`review()`).
    can_review: bool = False
    timeout_seconds = 30

    def start(self, payment: PaymentInfo, ctx: GatewayContext) -> StartResult:
        raise NotImplementedError

    def identify(self, kind: str, req: CallbackRequest) -> Lookup:
        raise NotImplementedError

    def verify_callback(self, kind: str, req: CallbackRequest, payment: PaymentInfo, ctx: GatewayContext) -> CallbackResult:
        raise NotImplementedError

    def acknowledge(self, kind: str, ack: Ack):
        """Default contract: JSON, 200 for accepted or duplicate, 4xx otherwise."""
        status = {
            Ack.OK: 200,
            Ack.DUPLICATE: 200,
            Ack.NOT_FOUND: 404,
            Ack.INVALID_SIGNATURE: 401,
            Ack.INVALID_AMOUNT: 400,
            Ack.INVALID_REQUEST: 400,
            Ack.ERROR: 500,
        }[ack]
        return {"received": ack in (Ack.OK, Ack.DUPLICATE), "result": ack.value}, status, {}

    def query(self, payment: PaymentInfo, ctx: GatewayContext) -> CallbackResult:
        raise NotImplementedError

    def refund(self, payment: PaymentInfo, amount: int, refund_id: str, ctx: GatewayContext) -> RefundResult:
        raise NotImplementedError

    def cancel(self, payment: PaymentInfo, ctx: GatewayContext) -> CallbackResult:
        """End the open attempt at the gateway (where `can_cancel`); return the gateway's word on it after
        (cancelled or expired, or succeeded if the shopper paid meanwhile). Raises GatewayError."""
        raise NotImplementedError

    def review(self, payment: PaymentInfo, decision: str, ctx: GatewayContext) -> CallbackResult:
        """Approve (`decision` "approve") or deny ("deny") the attempt held for review, where `can_review`;
        return the gateway's answer as a result. Raises GatewayError (refused, or the gateway unreachable)."""
        raise NotImplementedError

    def supports(self, currency):
        return not self.currencies or currency in self.currencies

    # --- helpers for subclasses -------------------------------------------------------------------------

    def http(self, method, url, **kwargs):
        """requests.request with a timeout, turning transport failures into GatewayError (no secrets logged)."""
        kwargs.setdefault("timeout", self.timeout_seconds)
        try:
            response = requests.request(method, url, **kwargs)
        except requests.Timeout as exc:
            raise GatewayError(f"{self.name} did not answer in time", timeout=True) from exc
        except requests.RequestException as exc:
            raise GatewayError(f"{self.name} could not be reached: {type(exc).__name__}") from exc
        log.info("%s %s %s -> %s", self.code, method, url.split("?")[0], response.status_code)
        return response
