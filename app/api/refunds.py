"""Refunds in the JSON API: create (idempotent), retrieve one, list a payment's refunds."""

from flask import g, jsonify

from app.api import bp
from app.api.auth import api_actor, require_api_key
from app.api.errors import api_error, from_service_error
from app.api.payments import idempotent_response, json_body
from app.serializers import refund_dict
from app.services import payments, refunds
from app.services.errors import ServiceError


def _own(lookup, public_id):
    """(object, None) for the merchant's own payment/refund, or (None, the 404 answer)."""
    try:
        return lookup(g.merchant, public_id), None
    except ServiceError as exc:
        return None, from_service_error(exc)


@bp.post("/payments/<public_id>/refunds")
@require_api_key
def create_refund(public_id):
    body = json_body()
    if body is None:
        return api_error(400, "invalid_json", "the request body must be a JSON object")
    unknown = set(body) - {"amount", "reason"}
    if unknown:
        return api_error(400, "invalid_request", f"unknown field {sorted(unknown)[0]!r}", sorted(unknown)[0])
    payment, error = _own(payments.get_for_merchant, public_id)
    if error:
        return error

    def handler():
        refund = refunds.build_refund(payment, body.get("amount"), body.get("reason"), source="api",
                                      actor=api_actor())
        return 201, refund_dict(refund)

    return idempotent_response(f"POST /api/v1/payments/{public_id}/refunds", body, handler)


@bp.get("/payments/<public_id>/refunds")
@require_api_key
def list_refunds(public_id):
    payment, error = _own(payments.get_for_merchant, public_id)
    return error or jsonify({"object": "list", "data": [refund_dict(r) for r in payment.refunds], "has_more": False})


@bp.get("/refunds/<public_id>")
@require_api_key
def get_refund(public_id):
    refund, error = _own(refunds.get_for_merchant, public_id)
    return error or jsonify(refund_dict(refund))
