"""The logs of a whole test run must hold no secret (issue 11): every log record of the session goes to one
file, in the app's JSON format, and at the end of the session that file is searched for every secret the
run used — the API keys and webhook secrets it generated, the gateway credentials it stored, the test
SECRET_KEY, the passwords, card numbers and one-time code the tests type. Any hit fails the run.

Never vacuous: the check fails if the file is empty or the list of secrets is, and tests/ops/test_logs.py
checks that the scanner finds a secret that is planted in a log line.
"""

import json
import logging
import os
import re
import shutil
import tempfile

from app import security
from app.ops.logs import SECRET_FIELD, json_handler

#: Typed by tests or the demo: card numbers (with and without spaces), the one-time code, passwords.
TYPED = ["4444 4444 4444 4444", "4444444444444444", "4242 4242 4242 4242", "4242424242424242", "123456",
         "correct-horse-battery", "demo-password"]
SECRETS = set(TYPED)
_state = {"folder": None, "handler": None}


def remember(value):
    if isinstance(value, str) and len(value) >= 6:
        SECRETS.add(value)


def _remember_secret_fields(data):
    for key, value in (data or {}).items():
        public = "public" in key or "client" in key  # a public or client key is no secret
        if not public and (SECRET_FIELD.search(key) or "key" in key.lower()):
            remember(value)


def _record_generated_secrets():
    """Wrap the functions that make or store secrets so that every value they see is remembered (they
    still do exactly what they did)."""
    new_api_key, encrypt, encrypt_json = security.new_api_key, security.encrypt, security.encrypt_json

    def recording_new_api_key():
        key = new_api_key()
        remember(key[0])
        return key

    def recording_encrypt(plaintext):
        if not plaintext.startswith("{"):  # JSON: encrypt_json below remembers its values one by one
            remember(plaintext)
        return encrypt(plaintext)

    def recording_encrypt_json(data):
        _remember_secret_fields(data)
        return encrypt_json(data)

    security.new_api_key, security.encrypt, security.encrypt_json = (
        recording_new_api_key, recording_encrypt, recording_encrypt_json)


def _sandbox_credentials():
    from app.sandbox import bkash, khalti, midtrans, nagad, sslcommerz, stripe, testcard, vnpay

    for module in (bkash, khalti, midtrans, nagad, sslcommerz, stripe, testcard, vnpay):
        _remember_secret_fields(getattr(module, "SANDBOX_CREDENTIALS", {}))


def pattern(secret):
    """A secret as found in text: not as part of a longer word or number (a random hex id may hold 123456)."""
    return re.compile(r"(?<![0-9A-Za-z])" + re.escape(secret) + r"(?![0-9A-Za-z])")


def leaks(text, secrets):
    """(secret, the log line) for each secret found in `text`."""
    found = []
    for secret in sorted(secrets):
        match = pattern(secret).search(text)
        if match:
            start, end = text.rfind("\n", 0, match.start()) + 1, text.find("\n", match.end())
            found.append((secret, text[start:end if end >= 0 else None]))
    return found


def _worker(config):
    """The xdist worker's name ("gw0", …), or None for the process that reports (a plain run, or xdist's
    controller, which runs no test itself)."""
    return getattr(config, "workerinput", {}).get("workerid")


def pytest_configure(config):
    # One folder for the run, made by the reporting process before xdist starts its workers (they inherit
    # the environment); each process logs to a file of its own there.
    folder = os.environ.get("PAYSMITH_TEST_LOG_DIR")
    if not folder:
        folder = os.environ["PAYSMITH_TEST_LOG_DIR"] = tempfile.mkdtemp(prefix="paysmith-test-logs-")
    path = os.path.join(folder, f"{_worker(config) or 'main'}.jsonl")
    handler = json_handler(handler=logging.FileHandler(path, encoding="utf-8"))
    handler.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    _state.update(folder=folder, handler=handler)
    _record_generated_secrets()
    _sandbox_credentials()


def pytest_sessionfinish(session, exitstatus):
    folder, handler = _state.get("folder"), _state["handler"]
    if folder is None:
        return
    handler.flush()
    worker = _worker(session.config)
    if worker:  # a worker hands its secrets over; the reporting process checks every file at the end
        with open(os.path.join(folder, f"{worker}.secrets.json"), "w", encoding="utf-8") as f:
            json.dump(sorted(SECRETS), f)
        return
    if session.testscollected == 0:
        return
    secrets, text = set(SECRETS), ""
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            if name.endswith(".secrets.json"):
                secrets.update(json.load(f))
            else:
                text += f.read()
    lines = [line for line in text.splitlines() if line.strip()]
    problems = []
    if not lines:
        problems.append(f"no log line was captured in {folder}: the secrets check would prove nothing")
    elif not all(isinstance(json.loads(line), dict) for line in lines[:50]):
        problems.append("log lines are not JSON objects")
    if not secrets:
        problems.append("no secret was collected: the secrets check would prove nothing")
    for secret, line in leaks(text, secrets):
        problems.append(f"a secret ({secret[:3]}…, {len(secret)} characters) is in a log line: {line[:300]}")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter:
        reporter.ensure_newline()
    if problems:
        for problem in problems:
            (reporter.write_line if reporter else print)(f"LOG SECRETS CHECK FAILED: {problem}")
        session.exitstatus = 1
    else:
        if reporter:
            reporter.write_line(f"log secrets check: {len(lines)} log lines, {len(secrets)} secrets, none found")
        shutil.rmtree(folder, ignore_errors=True)
