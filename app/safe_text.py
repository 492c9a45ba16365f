"""Text from outside that PostgreSQL can store and compare.

PostgreSQL's `text` and `jsonb` cannot hold a NUL character, and no UTF-8 (so no column and no query
parameter) can hold a lone surrogate (`"\\ud800"` in a JSON string is valid JSON, but not valid Unicode).
Either one reaching a query is a `DataError` (or an encoding error in the driver): a 500.

Two uses, one definition of "unstorable":
- `storable(value)` for what we must keep whatever it is (a gateway's raw callback): bytes are decoded as
  UTF-8 with replacement, and each NUL or lone surrogate is written out as its escape (`\\u0000`, `\\ud800`),
  in keys and values at any depth (and JSON's non-standard Infinity/NaN become strings), so the record
  shows what arrived and every comparison sees plain text.
- `unstorable_path(value)` for what we may refuse (the merchant API): where the first such character is
  (`metadata.note`, `items[0].name`), so the answer can name the field; None when everything is storable.
"""

import math
import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _escape(match):
    return f"\\u{ord(match.group()):04x}"


def storable_text(text):
    """One string (or bytes, decoded as UTF-8 with replacement) with NUL and lone surrogates escaped."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", "replace")
    elif not isinstance(text, str):
        text = str(text)
    return _UNSTORABLE.sub(_escape, text) if _UNSTORABLE.search(text) else text


def storable(value):
    """`value` (JSON-like: dicts, lists, strings, bytes, numbers) with every string made storable."""
    if isinstance(value, str | bytes | bytearray):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(k) if isinstance(k, str | bytes) else k: storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON's Infinity/NaN (Python accepts them): JSONB cannot hold them
    return value


def unstorable_path(value, path=""):
    """Where in `value` the first NUL or lone surrogate is (a dotted path, "" for the value itself), or None."""
    if isinstance(value, str):
        return path if _UNSTORABLE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _UNSTORABLE.search(key):
                return storable_text(here)
            found = unstorable_path(item, here)
            if found is not None:
                return storable_text(found)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = unstorable_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None
