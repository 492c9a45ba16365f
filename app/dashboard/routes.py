"""Sign-in, sign-out and the dashboard's home."""

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import func, select

from app.dashboard import bp
from app.dashboard.forms import LoginForm
from app.extensions import db
from app.models import Merchant, Payment


def _safe_next(target):
    return target if target and target.startswith("/") and not target.startswith("//") else None


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.overview"))
    form = LoginForm()
    if form.validate_on_submit():
        merchant = db.session.scalar(select(Merchant).where(Merchant.email == form.email.data.strip().lower()))
        if merchant is not None and merchant.check_password(form.password.data):
            login_user(merchant)
            flash("Signed in.", "success")
            return redirect(_safe_next(request.args.get("next")) or url_for("dashboard.overview"))
        flash("Wrong email or password.", "error")
    return render_template("dashboard/login.html", form=form), (401 if request.method == "POST" else 200)


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    flash("Signed out.", "success")
    return redirect(url_for("dashboard.login"))


@bp.get("/")
@login_required
def overview():
    counts = dict(
        db.session.execute(
            select(Payment.status, func.count()).where(Payment.merchant_id == current_user.id).group_by(Payment.status)
        ).all()
    )
    return render_template("dashboard/overview.html", counts=counts)
