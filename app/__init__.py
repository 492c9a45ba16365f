"""The app factory: a list of register_* calls and nothing else."""

import os

from flask import Flask

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def create_app(overrides=None, instance_path=None):
    app = Flask(
        __name__,
        template_folder=os.path.join(ROOT, "templates"),
        static_folder="static",
        instance_path=instance_path or os.environ.get("PAYSMITH_INSTANCE_PATH") or os.path.join(ROOT, "instance"),
        instance_relative_config=True,
    )
    from app.config import load_config

    load_config(app, overrides)
    configure_logging(app)
    register_ops(app)  # first: its request id and timing wrap every other hook
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_template_helpers(app)
    register_i18n(app)
    register_security_headers(app)
    register_commands(app)
    return app


def configure_logging(app):
    from app.ops.logs import configure_logging as configure

    configure(app)


def register_ops(app):
    from app.ops import register_ops as register

    register(app)


def register_extensions(app):
    from app import models  # noqa: F401  (tables known to Alembic)
    from app.extensions import csrf, db, init_redis, limiter, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(ROOT, "migrations"), render_as_batch=True)
    csrf.init_app(app)
    init_redis(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "dashboard.login"
    login_manager.login_message_category = "info"

    @app.before_request
    def _forget_the_previous_user():
        # `g` belongs to the app context, which a request re-uses when one is already pushed (the tests, the
        # CLI): the signed-in user, membership and CSRF token must be looked up again for every request.
        from flask import g

        for name in ("_login_user", "membership", app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")):
            g.pop(name, None)

    @login_manager.user_loader
    def load_user(public_id):
        """The signed-in user, if the session cookie's session is still open (app.services.accounts)."""
        from flask import session
        from sqlalchemy import select

        from app.models import User
        from app.services.accounts import live_session

        user = db.session.scalar(select(User).where(User.public_id == public_id))
        return user if user is not None and live_session(user, session.get("sid")) else None

    from app.services.webhooks import register_outbox_relay

    register_outbox_relay(app)

    from app.services.receipts import register_receipt_relay

    register_receipt_relay(app)


def register_blueprints(app):
    from app.api import bp as api_bp
    from app.callbacks import bp as callbacks_bp
    from app.checkout import bp as checkout_bp
    from app.dashboard import bp as dashboard_bp
    from app.docs import bp as docs_bp
    from app.extensions import csrf, limiter

    csrf.exempt(api_bp)
    csrf.exempt(callbacks_bp)
    # Only the dashboard's sign-in has rate limits: elsewhere Flask-Limiter's check of every request is pure
    # cost (a third of a millisecond per gateway callback).
    for bp in (api_bp, callbacks_bp, checkout_bp, docs_bp):
        limiter.exempt(bp)
    for bp in (checkout_bp, dashboard_bp, callbacks_bp, api_bp, docs_bp):
        app.register_blueprint(bp)
    if app.config["SANDBOX"]:
        from app.sandbox import register_sandbox

        register_sandbox(app)

    @app.get("/")
    def index():
        from flask import redirect, url_for

        return redirect(url_for("dashboard.overview"))


def register_error_handlers(app):
    from app.errors import register_error_handlers as register

    register(app)


def register_template_helpers(app):
    from app import money
    from app.gateways import gateway_display_name
    from app.state_machine import Status

    app.jinja_env.filters["money"] = lambda amount, currency: money.format_money(amount, currency)
    app.jinja_env.filters["gateway_name"] = gateway_display_name
    app.jinja_env.globals["Status"] = Status
    app.jinja_env.globals["sandbox_on"] = app.config["SANDBOX"]
    from app.dashboard.access import current_can, current_membership

    app.jinja_env.globals["can"] = current_can  # the dashboard hides what the role may not do
    app.jinja_env.globals["current_membership"] = current_membership


def register_i18n(app):
    from app.i18n import register_i18n as register

    register(app)


#: Where a response carries a shopper's or a merchant's payment data (errors included): never cached, by the
#: browser's back/forward cache or anything in between (the dashboard sets the same on its blueprint).
NO_STORE_PREFIXES = ("/pay/", "/api/")
#: The one API answer that is the same for everyone and may be cached: the OpenAPI document.
CACHEABLE_ENDPOINTS = {"api.openapi_json"}


def register_security_headers(app):
    from flask import request

    @app.after_request
    def headers(response):
        if (request.path.startswith(NO_STORE_PREFIXES) or request.blueprint in ("checkout", "api")) \
                and request.endpoint not in CACHEABLE_ENDPOINTS:
            response.headers["Cache-Control"] = "no-store"
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if response.mimetype == "text/html":
            response.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                "form-action 'self' http: https:; frame-ancestors 'none'",
            )
        return response


def register_commands(app):
    from app.cli import register

    register(app)
