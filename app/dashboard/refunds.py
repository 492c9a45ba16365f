"""The refunds list: newest first, with status and the gateway's refund reference."""

from flask import render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from app.dashboard import bp
from app.extensions import db
from app.models import Payment, Refund

PAGE_SIZE = 50


@bp.get("/refunds")
@login_required
def refunds():
    query = (select(Refund, Payment.public_id, Payment.reference)
             .join(Payment, Refund.payment_id == Payment.id)
             .where(Refund.merchant_id == current_user.id))
    after = request.args.get("after", type=int)
    if after:
        query = query.where(Refund.id < after)
    rows = db.session.execute(query.order_by(Refund.id.desc()).limit(PAGE_SIZE + 1)).all()
    page = rows[:PAGE_SIZE]
    next_url = url_for("dashboard.refunds", after=page[-1][0].id) if len(rows) > PAGE_SIZE else None
    return render_template("dashboard/refunds/list.html", rows=page, next_url=next_url, paged=bool(after))
