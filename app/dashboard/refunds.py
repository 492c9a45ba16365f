"""The refunds list (newest first, with status and the gateway's refund reference, filterable to the refunds
that need attention) and the actions on a refund that waits for a person: retry now, mark as failed, mark as refunded."""

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from app import money
from app.dashboard import bp, owned_or_404
from app.dashboard.access import current_merchant, dashboard_actor, requires
from app.dashboard.forms import ActionForm
from app.extensions import db
from app.gateways import get_gateway
from app.models import Payment, Refund

PAGE_SIZE = 50
#: Pending, with no gateway call planned: a person decides (see Refund.needs_attention).
WAITING = (Refund.status == "pending", Refund.next_attempt_at.is_(None))


@bp.get("/refunds")
@requires("payments.read")
def refunds():
    attention = request.args.get("attention") == "1"
    query = (select(Refund, Payment.public_id, Payment.reference)
             .join(Payment, Refund.payment_id == Payment.id)
             .where(Refund.merchant_id == current_merchant.id))
    if attention:
        query = query.where(*WAITING)
    after = request.args.get("after", type=int)
    if after:
        query = query.where(Refund.id < after)
    rows = db.session.execute(query.order_by(Refund.id.desc()).limit(PAGE_SIZE + 1)).all()
    page = rows[:PAGE_SIZE]
    filters = {"attention": "1"} if attention else {}
    next_url = url_for("dashboard.refunds", after=page[-1][0].id, **filters) if len(rows) > PAGE_SIZE else None
    waiting = db.session.scalar(select(func.count()).select_from(Refund)
                                .where(Refund.merchant_id == current_merchant.id, *WAITING))
    return render_template("dashboard/refunds/list.html", rows=page, next_url=next_url, paged=bool(after),
                           attention=attention, waiting=waiting, first_url=url_for("dashboard.refunds", **filters),
                           action_form=ActionForm())


def _back(refund):
    return redirect(url_for("dashboard.payment_detail", public_id=refund.payment.public_id), 303)


@bp.post("/refunds/<public_id>/retry")
@requires("refunds.settle")
def retry_refund(public_id):
    from app.services.refunds import retry_now

    refund = owned_or_404(Refund, public_id)
    ActionForm().validate_on_submit()  # the CSRF token was checked before the view (CSRFProtect)
    if retry_now(refund, source=f"dashboard, {current_user.email}", actor=dashboard_actor()):
        flash(f"Refund {refund.public_id}: the gateway is asked again now.", "success")
    else:
        _not_waiting(refund)
    return _back(refund)


@bp.post("/refunds/<public_id>/fail")
@requires("refunds.settle")
def fail_refund(public_id):
    return _settle_by_person(public_id, "failed")


@bp.post("/refunds/<public_id>/succeed")
@requires("refunds.settle")
def succeed_refund(public_id):
    return _settle_by_person(public_id, "succeeded")


def _settle_by_person(public_id, status):
    """Two steps: the button shows a confirmation page; its button settles the refund as `status`."""
    from app.services.refunds import mark_failed, mark_succeeded

    refund = owned_or_404(Refund, public_id)
    ActionForm().validate_on_submit()
    if not refund.needs_attention:
        _not_waiting(refund)
        return _back(refund)
    if request.form.get("confirmed") != "yes":
        gateway = get_gateway(refund.gateway) if refund.gateway else None
        return render_template("dashboard/refunds/settle_confirm.html", refund=refund, form=ActionForm(),
                               status=status, gateway_name=gateway.name if gateway else "the gateway")
    mark = mark_failed if status == "failed" else mark_succeeded
    if not mark(refund, source=f"dashboard, {current_user.email}", actor=dashboard_actor()):
        _not_waiting(refund)
    elif status == "failed":
        flash(f"Refund {refund.public_id} marked as failed: "
              f"{money.format_money(refund.amount, refund.currency)} is refundable again.", "success")
    else:
        flash(f"Refund {refund.public_id} marked as made by the gateway.", "success")
    return _back(refund)


def _not_waiting(refund):
    flash(f"Refund {refund.public_id} is not waiting for a person (it is {_state(refund)}).", "error")


def _state(refund):
    db.session.refresh(refund)
    return refund.status if refund.status != "pending" else "pending, with a gateway call planned"
