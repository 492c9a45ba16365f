"""Verifying Paysmith webhooks on the merchant's side: pure standard library, no Flask, no app context.

This module has no imports from the rest of Paysmith, so a merchant may copy `app/webhooks/__init__.py`
into their own code as it is. Every delivery carries

    Paysmith-Event-Id: evt_…
    Paysmith-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>[,v1=…]

    webhook-id: evt_…
    webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA256(base64-decoded secret, "<id>.<timestamp>.<raw body>")>[ v1,…]

The last three are the Standard Webhooks headers (https://www.standardwebhooks.com/): any of its libraries
verifies them, e.g. `standardwebhooks.Webhook(secret).verify(body, headers)` in Python. Several signatures
appear in both headers for a while after the merchant rotates the secret (one per secret still valid), so
both the old and the new secret verify during the grace period.
"""

import base64
import binascii
import hashlib
import hmac
import json
import time

SIGNATURE_HEADER = "Paysmith-Signature"
EVENT_ID_HEADER = "Paysmith-Event-Id"
STANDARD_ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 300


class SignatureVerificationError(ValueError):
    """The signature is missing, malformed, wrong or too old."""


def sign(secret, timestamp, body):
    """Hex HMAC-SHA256 of "<timestamp>.<body>" with `secret` (body: the raw bytes sent)."""
    if isinstance(body, str):
        body = body.encode()
    return hmac.new(secret.encode(), f"{int(timestamp)}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secrets, timestamp, body):
    """The Paysmith-Signature value: one v1 per secret (the current one first)."""
    return ",".join([f"t={int(timestamp)}"] + [f"v1={sign(s, timestamp, body)}" for s in secrets])


def parse_header(header):
    """`t=…,v1=…,v1=…` → (timestamp or None, [v1 values])."""
    timestamp, candidates = None, []
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    return timestamp, candidates


def verify(body, header, secret, *, tolerance=TOLERANCE_SECONDS, now=None):
    """True if one of the header's v1 values signs `body` with `secret` and t is within `tolerance` seconds.

    Compares in constant time. `body` must be the raw request body, not re-serialised JSON.
    """
    if not secret or not header:
        return False
    if isinstance(body, str):
        body = body.encode()
    timestamp, candidates = parse_header(header)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    # No early exit: every candidate is compared, as bytes (compare_digest refuses non-ASCII str).
    expected = expected.encode()
    return sum(hmac.compare_digest(expected, c.encode("utf-8", "surrogatepass")) for c in candidates) > 0


def construct_event(body, header, secret, *, tolerance=TOLERANCE_SECONDS):
    """Verify and parse a delivery; return the event dict or raise SignatureVerificationError."""
    if not verify(body, header, secret, tolerance=tolerance):
        raise SignatureVerificationError("invalid or expired Paysmith-Signature")
    return json.loads(body)


# --- Standard Webhooks ---------------------------------------------------------------------------------------


def standard_key(secret):
    """The HMAC key of a `whsec_<base64>` secret, decoded as the Standard Webhooks libraries decode it."""
    raw = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    try:
        return base64.b64decode(raw + "==") or raw.encode()
    except (binascii.Error, ValueError):  # not base64 (a secret made before base64 secrets): its text
        return raw.encode()


def standard_sign(secret, msg_id, timestamp, body):
    """`v1,<base64 HMAC-SHA256 of "<msg_id>.<timestamp>.<body>">` with the decoded secret."""
    if isinstance(body, str):
        body = body.encode()
    digest = hmac.new(standard_key(secret), f"{msg_id}.{int(timestamp)}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def standard_signature_header(secrets, msg_id, timestamp, body):
    """The webhook-signature value: one `v1,…` per secret, space-separated (the current one first)."""
    return " ".join(standard_sign(s, msg_id, timestamp, body) for s in secrets)
