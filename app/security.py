"""Secrets: API keys (stored as SHA-256 hashes), encryption at rest (Fernet), HMAC and random ids.

API keys are long random tokens, so a fast hash is enough to store them (no password stretching needed);
merchant passwords use Werkzeug's salted scrypt hashing instead. Gateway credentials and webhook secrets are
encrypted with a Fernet key taken from ENCRYPTION_KEY, or derived from SECRET_KEY when that is unset.
"""

import base64
import functools
import hashlib
import hmac
import json
import secrets

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app

API_KEY_PREFIX = "sk_"


def public_id(prefix, nbytes=12):
    """A random public identifier such as `pay_4f0c…`."""
    return f"{prefix}_{secrets.token_hex(nbytes)}"


def new_api_key():
    """Return (plaintext key, lookup prefix, hash). Only the hash and prefix are stored."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key[:11], hash_api_key(key)


def hash_api_key(key):
    return hashlib.sha256(key.encode()).hexdigest()


def _key():
    raw = current_app.config.get("ENCRYPTION_KEY")
    if raw:
        return raw.encode() if isinstance(raw, str) else raw
    digest = hashlib.sha256(b"paysmith-at-rest:" + current_app.config["SECRET_KEY"].encode()).digest()
    return base64.urlsafe_b64encode(digest)


@functools.lru_cache(maxsize=8)
def _fernet(key):
    return Fernet(key)


@functools.lru_cache(maxsize=4096)
def _decrypt(key, token):
    # Stored secrets are read on every gateway callback: decrypt each ciphertext once per process.
    return _fernet(key).decrypt(token.encode()).decode()


def encrypt(plaintext):
    return _fernet(_key()).encrypt(plaintext.encode()).decode()


def decrypt(token):
    try:
        return _decrypt(_key(), token)
    except InvalidToken as exc:
        raise RuntimeError("cannot decrypt a stored secret: ENCRYPTION_KEY/SECRET_KEY changed?") from exc


def encrypt_json(data):
    return encrypt(json.dumps(data, sort_keys=True))


def decrypt_json(token):
    return json.loads(decrypt(token)) if token else {}


def hmac_sha256_hex(key, message):
    key = key.encode() if isinstance(key, str) else key
    message = message.encode() if isinstance(message, str) else message
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _as_bytes(value):
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    # surrogatepass: a lone surrogate from a JSON string still becomes bytes (that match nothing we make).
    return str(value).encode("utf-8", "surrogatepass")


def constant_time_equals(a, b):
    """Constant-time equality of two signatures (str or bytes), compared as UTF-8 bytes.

    `hmac.compare_digest` on two str raises TypeError when either holds a non-ASCII character, so a forged
    signature like `é` would be a 500 instead of a refusal: every adapter compares through here.
    """
    if a is None or b is None:
        return False
    return hmac.compare_digest(_as_bytes(a), _as_bytes(b))


def mask(value, keep=4):
    """'abcdef123456' → '••••3456' for showing a stored secret without revealing it."""
    if not value:
        return ""
    return "••••" + value[-keep:] if len(value) > keep else "••••"
