"""Stripe Checkout through the official `stripe` SDK (served offline by app/sandbox/stripe.py).

- One `StripeClient` per call, built from the merchant's secret key with `base_addresses={"api": ctx.base_url}`
  (our simulator in sandbox mode): nothing global, so merchants never leak into each other.
- Checkout Session: `mode=payment`, `client_reference_id` = our payment id, `expires_at` matching ours, the
  shopper back at `/callbacks/stripe/return?session_id={CHECKOUT_SESSION_ID}` (never trusted: we retrieve
  the session) or at `/callbacks/stripe/cancel` (we expire the session at Stripe, then it is cancelled).
- Line items can't be negative at Stripe, so a merchant's discount lines become one single-use coupon
  applied with `discounts`, and shipping lines a fixed-amount `shipping_options` rate: the shopper sees the
  goods, the discount and the shipping as Stripe shows them, and `amount_total` is our amount exactly
  (checked after creation). Without items, one line carries the total.
- Stripe accepts `expires_at` only 30 minutes to 24 hours ahead. A shorter payment gets a 30-minute
  session (a late payment after our expiry is still money: the state machine records it as a late success);
  a longer one gets 24 hours, and that session's `checkout.session.expired` leaves our still-open payment
  alone (the shopper can start again from our checkout page).
- Webhooks (`/callbacks/stripe/webhook`) are verified with `stripe.Webhook.construct_event` (Stripe-Signature,
  300 s tolerance, any of several v1 values) and de-duplicated by event id.
- Refunds: `POST /v1/refunds` on the PaymentIntent, with our refund id as the Idempotency-Key. Their
  `charge.refunded` events carry no session: the session sets `payment_intent_data.metadata` (our payment
  id), which Stripe copies onto the Charge once, when it creates it (the session's own `metadata` stays on
  the session). A charge without it is matched by its `payment_intent`, our gateway_transaction_id.
Amounts: Stripe's minor units; VND is zero-decimal at Stripe as with us, IDR is an ordinary two-decimal
currency at Stripe (amount = rupiah × 100; we keep whole rupiah), so the adapter scales IDR by 100 both ways.
"""

import json
import time

import stripe

from app import money
from app.gateways.base import (
    Ack,
    CallbackError,
    CallbackResult,
    Gateway,
    GatewayError,
    Lookup,
    Outcome,
    Redirect,
    RefundResult,
    StartResult,
    unix_seconds,
)
from app.security import constant_time_equals, hmac_sha256_hex

TOLERANCE_SECONDS = 300
MIN_SESSION_SECONDS = 30 * 60
MAX_SESSION_SECONDS = 24 * 3600
#: Margin so Stripe's own clock still finds expires_at inside its window.
CLOCK_MARGIN = 60
#: Our currencies Stripe presents, with Stripe's number of minor-unit digits.
STRIPE_EXPONENTS = {"USD": 2, "EUR": 2, "INR": 2, "SGD": 2, "MYR": 2, "THB": 2, "PHP": 2, "BDT": 2, "NPR": 2,
                    "IDR": 2, "VND": 0}
#: Refund statuses at Stripe → ours.
_REFUNDS = {"succeeded": "succeeded", "pending": "pending", "requires_action": "pending", "failed": "failed",
            "canceled": "failed"}


def to_stripe(amount, currency):
    """Our minor units → Stripe's."""
    return amount * 10 ** (STRIPE_EXPONENTS[currency] - money.exponent(currency))


def from_stripe(amount, currency):
    """Stripe's minor units → ours (None if it does not fit our units exactly)."""
    if isinstance(amount, bool) or not isinstance(amount, int) or currency not in STRIPE_EXPONENTS:
        return None
    scale = 10 ** (STRIPE_EXPONENTS[currency] - money.exponent(currency))
    return amount // scale if amount % scale == 0 else None


def session_expiry(expires_at, now):
    """Stripe's `expires_at` for our expiry (Unix seconds), inside Stripe's 30 min – 24 h window."""
    low, high = now + MIN_SESSION_SECONDS + CLOCK_MARGIN, now + MAX_SESSION_SECONDS - CLOCK_MARGIN
    return int(min(max(expires_at, low), high))


class StripeGateway(Gateway):
    code = "stripe"
    name = "Card (Stripe)"
    currencies = frozenset(STRIPE_EXPONENTS)
    base_urls = {"sandbox": "https://api.stripe.com", "live": "https://api.stripe.com"}
    credential_fields = {"secret_key": "Secret key (sk_…)", "webhook_secret": "Webhook signing secret (whsec_…)"}
    browser_kinds = frozenset({"return", "cancel"})
    local_kinds = frozenset({"webhook"})  # Stripe-Signature only
    #: Refunds are created with our refund id as Idempotency-Key (docs.stripe.com/idempotency: a replay
    #: returns the first answer).
    refund_idempotent = True
    can_cancel = True

    def client(self, ctx):
        """A StripeClient for this merchant only (never the SDK's global api_key/api_base)."""
        return stripe.StripeClient(
            ctx.credentials.get("secret_key") or "missing",
            base_addresses={"api": ctx.base_url},
            max_network_retries=2,  # the SDK reuses the Idempotency-Key on its retries
            http_client=stripe.RequestsClient(timeout=self.timeout_seconds),
        )

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except stripe.APIConnectionError as exc:
            raise GatewayError(f"{self.name} could not be reached", timeout=True) from exc
        except stripe.StripeError as exc:
            raise GatewayError(exc.user_message or str(exc), code=exc.code, raw=exc.json_body) from exc

    # --- start --------------------------------------------------------------------------------------------

    def _cancel_signature(self, ctx, payment_id):
        return hmac_sha256_hex(ctx.credentials.get("webhook_secret") or "", f"cancel:{payment_id}".encode())[:32]

    def session_params(self, payment, ctx, coupon=None):
        currency = payment.currency.lower()

        def price(name, amount, quantity=1):
            return {"price_data": {"currency": currency, "unit_amount": to_stripe(amount, payment.currency),
                                   "product_data": {"name": name[:250]}}, "quantity": quantity}

        items = payment.items
        lines = [price(i["name"], i["unit_amount"], i["quantity"]) for i in items
                 if i.get("type", "item") in ("item", "tax")]
        params = {
            "mode": "payment",
            "line_items": lines or [price(payment.description or payment.reference, payment.amount)],
            "client_reference_id": payment.order_id,
            "metadata": {"payment_id": payment.id, "attempt_id": payment.order_id, "reference": payment.reference},
            "payment_intent_data": {"metadata": {"payment_id": payment.id, "attempt_id": payment.order_id,
                                                 "reference": payment.reference}},
            "success_url": ctx.callback_url("return") + "?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": ctx.callback_url("cancel") +
                          f"?attempt_id={payment.order_id}&sig={self._cancel_signature(ctx, payment.order_id)}",
            "expires_at": session_expiry(unix_seconds(payment.expires_at), time.time()),
            # Checkout's `locale`: Stripe.js "Supported locales" lists vi and id for Checkout, not ne or bn
            # (those read the browser's language: auto).
            "locale": {"en": "en", "vi": "vi", "id": "id"}.get(payment.locale, "auto"),
        }
        shipping = [i for i in items if i.get("type") == "shipping"]
        if shipping:
            params["shipping_options"] = [{"shipping_rate_data": {
                "type": "fixed_amount", "display_name": ", ".join(i["name"] for i in shipping)[:100],
                "fixed_amount": {"currency": currency, "amount": to_stripe(
                    sum(i["unit_amount"] * i["quantity"] for i in shipping), payment.currency)}}}]
        if coupon:
            params["discounts"] = [{"coupon": coupon}]
        if payment.customer.get("email"):
            params["customer_email"] = payment.customer["email"]
        return params

    def start(self, payment, ctx):
        client = self.client(ctx)
        discount = -sum(i["unit_amount"] * i["quantity"] for i in payment.items if i.get("type") == "discount")
        coupon = None
        if discount:
            coupon = self._call(client.v1.coupons.create, params={
                "amount_off": to_stripe(discount, payment.currency), "currency": payment.currency.lower(),
                "duration": "once", "max_redemptions": 1, "name": "Discount"[:40],
                "metadata": {"payment_id": payment.id}}, options={"idempotency_key": f"{payment.order_id}:coupon"}).id
        session = self._call(client.v1.checkout.sessions.create, params=self.session_params(payment, ctx, coupon))
        if session.amount_total != to_stripe(payment.amount, payment.currency):
            self._call(client.v1.checkout.sessions.expire, session.id)
            raise GatewayError(f"Stripe computed {session.amount_total}, not {payment.amount}",
                               raw={"id": session.id, "amount_total": session.amount_total})
        return StartResult(Redirect(session.url), gateway_reference=session.id,
                           gateway_data={"expires_at": session.expires_at},
                           raw={"id": session.id, "amount_total": session.amount_total,
                                "currency": session.currency, "expires_at": session.expires_at})

    # --- callbacks ----------------------------------------------------------------------------------------

    def identify(self, kind, req):
        if kind == "return":
            return Lookup(gateway_reference=req.args.get("session_id"))
        if kind == "cancel":
            return Lookup(order_id=req.args.get("attempt_id") or req.args.get("payment_id"))
        if kind != "webhook":
            raise CallbackError(Ack.NOT_FOUND, f"unknown callback {kind}")
        event = req.json()
        if not event or not isinstance((event.get("data") or {}).get("object"), dict):
            raise CallbackError(Ack.INVALID_REQUEST, "not a Stripe event")
        obj = event["data"]["object"]
        if obj.get("object") == "checkout.session":
            return Lookup(order_id=obj.get("client_reference_id"), gateway_reference=obj.get("id"))
        # A charge carries the PaymentIntent's metadata (see the module docstring), else its PaymentIntent.
        metadata = obj.get("metadata") or {}
        return Lookup(order_id=metadata.get("attempt_id") or metadata.get("payment_id"),
                      gateway_transaction_id=obj.get("payment_intent"))

    def verify_callback(self, kind, req, payment, ctx):
        if kind == "return":
            return self.query(payment, ctx)
        if kind == "cancel":
            return self._cancel(req, payment, ctx)
        header = req.headers.get("Stripe-Signature")
        if header and not header.isascii():
            # The SDK compares signatures as str (TypeError on non-ASCII): a signature we never make.
            raise CallbackError(Ack.INVALID_SIGNATURE, "Stripe-Signature: not a signature of ours")
        try:
            stripe.Webhook.construct_event(req.body, header,
                                           ctx.credentials.get("webhook_secret") or "", tolerance=TOLERANCE_SECONDS)
        except stripe.SignatureVerificationError as exc:
            raise CallbackError(Ack.INVALID_SIGNATURE, f"Stripe-Signature: {exc.user_message or exc}") from exc
        except ValueError as exc:
            raise CallbackError(Ack.INVALID_REQUEST, "the body is not JSON") from exc
        event = json.loads(req.body)
        obj, kind_of = event["data"]["object"], event.get("type", "")
        if obj.get("object") == "checkout.session":
            if obj.get("id") != payment.gateway_reference and obj.get("client_reference_id") != payment.order_id:
                raise CallbackError(Ack.NOT_FOUND, "the event is for another Checkout Session")
            return self._session_result(obj, payment, event=kind_of, event_id=event.get("id"), raw=event)
        if kind_of == "charge.refunded" and obj.get("object") == "charge":
            if payment.gateway_transaction_id and obj.get("payment_intent") != payment.gateway_transaction_id:
                raise CallbackError(Ack.NOT_FOUND, "the charge belongs to another PaymentIntent")
            currency = str(obj.get("currency", "")).upper()
            return CallbackResult(
                Outcome.REFUNDED if obj.get("refunded") else Outcome.PARTIALLY_REFUNDED,
                amount=from_stripe(obj.get("amount"), currency), currency=currency,
                gateway_transaction_id=obj.get("payment_intent"), event_id=event.get("id"), raw=event,
                message=f"Stripe refunded {obj.get('amount_refunded')} of {obj.get('amount')}")
        return CallbackResult(Outcome.NONE, event_id=event.get("id"), message=f"{kind_of} (nothing to apply)",
                              raw=event)

    def _cancel(self, req, payment, ctx):
        """The shopper left Stripe Checkout: end the session at Stripe, then report what Stripe says."""
        if not constant_time_equals(str(req.args.get("sig", "")), self._cancel_signature(ctx, payment.order_id)):
            raise CallbackError(Ack.INVALID_SIGNATURE, "cancel link not made by us")
        client = self.client(ctx)
        try:
            client.v1.checkout.sessions.expire(payment.gateway_reference)
        except stripe.InvalidRequestError:
            pass  # no longer open (paid in another tab, or already expired): the query below says which
        except stripe.StripeError as exc:
            raise GatewayError(str(exc), code=exc.code, raw=exc.json_body) from exc
        result = self.query(payment, ctx)
        if result.outcome == Outcome.EXPIRED:
            return CallbackResult(Outcome.CANCELLED, amount=result.amount, currency=result.currency,
                                  gateway_reference=result.gateway_reference, failure_code="cancelled",
                                  message="The shopper left Stripe Checkout", raw=result.raw)
        return result

    def cancel(self, payment, ctx):
        """Expire the attempt's Checkout Session so it can no longer be paid, then report what Stripe says."""
        if not payment.gateway_reference:
            raise GatewayError("the attempt has no Stripe Checkout Session")
        try:
            self.client(ctx).v1.checkout.sessions.expire(payment.gateway_reference)
        except stripe.InvalidRequestError:
            pass  # no longer open (paid meanwhile, or expired): the query says which
        except stripe.APIConnectionError as exc:
            raise GatewayError(f"{self.name} could not be reached", timeout=True) from exc
        except stripe.StripeError as exc:
            raise GatewayError(str(exc), code=exc.code, raw=exc.json_body) from exc
        return self.query(payment, ctx)

    def acknowledge(self, kind, ack):
        status = {Ack.OK: 200, Ack.DUPLICATE: 200, Ack.NOT_FOUND: 404, Ack.INVALID_SIGNATURE: 400,
                  Ack.INVALID_AMOUNT: 400, Ack.INVALID_REQUEST: 400, Ack.ERROR: 500}[ack]
        return {"received": status == 200, "result": ack.value}, status, {}

    def _session_result(self, session, payment, *, event=None, event_id=None, raw=None):
        currency = str(session.get("currency") or "").upper()
        intent = session.get("payment_intent")
        intent_status = intent.get("status") if isinstance(intent, dict) else None
        intent_id = intent.get("id") if isinstance(intent, dict) else intent
        status, paid = session.get("status"), session.get("payment_status")
        message = None
        if event == "checkout.session.async_payment_failed" or (
                status == "complete" and paid == "unpaid" and intent_status in ("requires_payment_method", "canceled")):
            outcome, message = Outcome.FAILED, "The delayed payment failed"
        elif event == "checkout.session.async_payment_succeeded" or (status == "complete" and paid != "unpaid"):
            outcome = Outcome.SUCCEEDED
        elif status == "complete":
            outcome, message = Outcome.PROCESSING, "Paid with a delayed method; waiting for the bank"
        elif status == "expired":  # this attempt ended; the payment stays open for another until its own expiry
            outcome, message = Outcome.EXPIRED, "The Stripe Checkout Session expired"
        else:
            outcome = Outcome.NONE
        return CallbackResult(
            outcome=outcome,
            amount=from_stripe(session.get("amount_total"), currency),
            currency=currency or None,
            order_id=session.get("client_reference_id"),
            gateway_reference=session.get("id"),
            gateway_transaction_id=intent_id,
            failure_code="async_payment_failed" if outcome == Outcome.FAILED else None,
            message=message,
            event_id=event_id,
            raw=raw,
        )

    # --- query and refunds --------------------------------------------------------------------------------

    def query(self, payment, ctx):
        """The Checkout Session with its PaymentIntent. Without a session id (never stored, e.g. the answer to
        create was lost after Stripe made the session) but with the PaymentIntent, the session is found by
        `checkout.Session.list(payment_intent=…)`, so reconciliation by PaymentIntent still ends right."""
        client = self.client(ctx)
        if payment.gateway_reference:
            session = self._call(client.v1.checkout.sessions.retrieve, payment.gateway_reference,
                                 params={"expand": ["payment_intent"]})
        elif payment.gateway_transaction_id:
            found = self._call(client.v1.checkout.sessions.list, params={
                "payment_intent": payment.gateway_transaction_id, "limit": 1, "expand": ["data.payment_intent"]})
            if not found.data:
                raise GatewayError(f"Stripe has no Checkout Session for {payment.gateway_transaction_id}")
            session = found.data[0]
        else:
            raise GatewayError("the payment has no Stripe Checkout Session")
        data = session.to_dict(for_json=True)
        return self._session_result(data, payment, raw=data)

    def refund(self, payment, amount, refund_id, ctx):
        intent = payment.gateway_transaction_id or self.query(payment, ctx).gateway_transaction_id
        if not intent:
            raise GatewayError("the payment has no Stripe PaymentIntent to refund")
        try:
            refund = self.client(ctx).v1.refunds.create(
                params={"payment_intent": intent, "amount": to_stripe(amount, payment.currency),
                        "metadata": {"payment_id": payment.id, "attempt_id": payment.order_id,
                                     "refund_id": refund_id}},
                options={"idempotency_key": refund_id})
        except stripe.InvalidRequestError as exc:  # Stripe answered with a refusal (amount, state…)
            return RefundResult("failed", message=exc.user_message or str(exc), raw=exc.json_body)
        except stripe.APIConnectionError as exc:
            raise GatewayError(f"{self.name} could not be reached", timeout=True) from exc
        except stripe.StripeError as exc:
            raise GatewayError(exc.user_message or str(exc), code=exc.code, raw=exc.json_body) from exc
        data = refund.to_dict(for_json=True)
        return RefundResult(_REFUNDS.get(data.get("status"), "pending"), gateway_reference=data.get("id"),
                            message=data.get("failure_reason"), raw=data)
