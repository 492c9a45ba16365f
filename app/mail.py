"""Sending one email (standard library only): SMTP, or in development a file or console backend.

`MAIL_BACKEND`: `smtp` (MAIL_SERVER, MAIL_PORT, MAIL_USERNAME, MAIL_PASSWORD, MAIL_USE_TLS; port 465 is TLS
from the start), `file` (writes <instance>/mail/<Message-ID>.eml) or `console` (logs the message). The
password is never logged.
"""

import logging
import os
import re
import smtplib
import ssl

from flask import current_app

log = logging.getLogger(__name__)


class MailError(Exception):
    """The message could not be handed over (it may be tried again)."""


def send(message, config=None):
    """Hand an email.message.EmailMessage to the configured backend; raises MailError on failure."""
    config = config or current_app.config
    backend = config.get("MAIL_BACKEND") or "file"
    try:
        if backend == "smtp":
            _send_smtp(message, config)
        elif backend == "console":
            log.info("email (console backend):\n%s", message.as_string())
        else:
            _send_file(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"{type(exc).__name__}: {exc}") from exc


def _send_smtp(message, config):
    host, port = config.get("MAIL_SERVER") or "127.0.0.1", int(config.get("MAIL_PORT") or 25)
    timeout = config.get("MAIL_TIMEOUT_SECONDS", 30)
    context = ssl.create_default_context()
    if port == 465:
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    with smtp:
        if port != 465 and config.get("MAIL_USE_TLS"):
            smtp.starttls(context=context)
        if config.get("MAIL_USERNAME"):
            smtp.login(config["MAIL_USERNAME"], config.get("MAIL_PASSWORD") or "")
        smtp.send_message(message)


def _send_file(message):
    folder = os.path.join(current_app.instance_path, "mail")
    os.makedirs(folder, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", (message["Message-ID"] or "message").strip("<>"))
    path = os.path.join(folder, f"{name}.eml")
    with open(path, "wb") as fh:
        fh.write(message.as_bytes())
    log.info("email written to %s", path)
