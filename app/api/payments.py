"""Payments in the JSON API: create (idempotent), retrieve, list with keyset pagination."""

from flask import g, jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.api import bp
from app.api.auth import api_actor, require_api_key
from app.api.errors import api_error, from_service_error
from app.api.pagination import page, page_limit
from app.extensions import db
from app.models import Payment
from app.serializers import attempt_dict, payment_dict
from app.services import idempotency, payments
from app.services.errors import ServiceError
from app.state_machine import Status


def json_body():
    """The request's JSON object, or None when the body is not a JSON object."""
    data = request.get_json(silent=True, force=True)
    return data if isinstance(data, dict) else None


def idempotent_response(endpoint, body, handler):
    try:
        result = idempotency.run(g.merchant.id, request.headers.get("Idempotency-Key"), endpoint, body, handler)
    except ServiceError as exc:
        return from_service_error(exc)
    response = jsonify(result.body)
    response.status_code = result.status
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.post("/payments")
@require_api_key
def create_payment():
    body = json_body()
    if body is None:
        return api_error(400, "invalid_json", "the request body must be a JSON object")

    def handler():
        payment = payments.build_payment(g.merchant, body, actor=api_actor())
        return 201, payment_dict(payment)

    return idempotent_response("POST /api/v1/payments", body, handler)


@bp.get("/payments/<public_id>")
@require_api_key
def get_payment(public_id):
    try:
        payment = payments.get_for_merchant(g.merchant, public_id)
    except ServiceError as exc:
        return from_service_error(exc)
    return jsonify(payment_dict(payment))


@bp.get("/payments/<public_id>/attempts")
@require_api_key
def list_attempts(public_id):
    """Every time the shopper was handed to a gateway for this payment, oldest first."""
    try:
        payment = payments.get_for_merchant(g.merchant, public_id)
    except ServiceError as exc:
        return from_service_error(exc)
    return jsonify({"object": "list", "data": [attempt_dict(a) for a in payment.attempts], "has_more": False})


@bp.get("/payments")
@require_api_key
def list_payments():
    args = request.args
    limit, error = page_limit()
    if error:
        return error
    query = select(Payment).where(Payment.merchant_id == g.merchant.id)
    if args.get("reference"):
        query = query.where(Payment.reference == args["reference"])
    if args.get("status"):
        if args["status"] not in {s.value for s in Status}:
            return api_error(400, "invalid_request", f"unknown status {args['status']!r}", "status")
        query = query.where(Payment.status == args["status"])
    if args.get("starting_after"):
        cursor = db.session.scalar(
            select(Payment).where(Payment.public_id == args["starting_after"], Payment.merchant_id == g.merchant.id)
        )
        if cursor is None:
            return api_error(400, "invalid_request", "starting_after is not one of your payments", "starting_after")
        # Newest first; (created_at, id) is the total order the index serves.
        query = query.where(
            (Payment.created_at < cursor.created_at)
            | ((Payment.created_at == cursor.created_at) & (Payment.id < cursor.id))
        )
    rows = db.session.scalars(query.order_by(Payment.created_at.desc(), Payment.id.desc()).limit(limit + 1)
                              .options(selectinload(Payment.attempts))).all()
    return jsonify(page(rows, limit, payment_dict))
