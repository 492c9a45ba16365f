"""/dashboard/audit: the current merchant's audit log, newest first, filtered by person, action and date, and
its CSV export (the same filters)."""

import csv
import io
from datetime import datetime, timedelta

from flask import Response, render_template, request, url_for
from sqlalchemy import select

from app.dashboard import bp
from app.dashboard.access import current_merchant, requires
from app.extensions import db
from app.models import AuditEvent, Membership, User
from app.services.audit import ACTIONS

PAGE_SIZE = 100


def _date(name):
    try:
        return datetime.strptime(request.args.get(name) or "", "%Y-%m-%d")
    except ValueError:
        return None


def _filtered():
    query = select(AuditEvent).where(AuditEvent.merchant_id == current_merchant.id)
    filters = {}
    person = request.args.get("person") or ""
    if person:
        query = query.where(AuditEvent.actor_user_id == db.session.scalar(
            select(User.id).where(User.public_id == person)))
        filters["person"] = person
    action = request.args.get("action") or ""
    if action in ACTIONS:
        query = query.where(AuditEvent.action == action)
        filters["action"] = action
    since, until = _date("from"), _date("to")
    if since:
        query = query.where(AuditEvent.created_at >= since)
        filters["from"] = since.date().isoformat()
    if until:
        query = query.where(AuditEvent.created_at < until + timedelta(days=1))
        filters["to"] = until.date().isoformat()
    return query.order_by(AuditEvent.id.desc()), filters


@bp.get("/audit")
@requires("audit.read")
def audit():
    query, filters = _filtered()
    before = request.args.get("before", type=int)
    if before:
        query = query.where(AuditEvent.id < before)
    rows = db.session.scalars(query.limit(PAGE_SIZE + 1)).all()
    page = rows[:PAGE_SIZE]
    people = db.session.execute(select(User.public_id, User.display_name, User.email)
                                .join(Membership, Membership.user_id == User.id)
                                .where(Membership.merchant_id == current_merchant.id).order_by(User.display_name)).all()
    return render_template("dashboard/audit/index.html", events=page, actions=ACTIONS, people=people,
                           filters=filters, csv_url=url_for("dashboard.audit_csv", **filters),
                           next_url=url_for("dashboard.audit", before=page[-1].id, **filters)
                           if len(rows) > PAGE_SIZE else None)


@bp.get("/audit.csv")
@requires("audit.read")
def audit_csv():
    query, _ = _filtered()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["time", "who", "action", "target_type", "target_id", "ip", "user_agent", "before", "after"])
    from app.dashboard.payments import _csv_safe

    for e in db.session.scalars(query.limit(100_000)):
        writer.writerow([e.created_at.isoformat(), _csv_safe(e.actor_label), e.action, e.target_type or "",
                         e.target_id or "", e.ip or "", _csv_safe(e.user_agent), _json(e.before), _json(e.after)])
    stamp = datetime.now().strftime("%Y%m%d-%H%M")
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.csv"'})


def _json(value):
    import json

    return json.dumps(value, sort_keys=True, ensure_ascii=False) if value else ""
