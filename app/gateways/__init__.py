"""The gateway registry: every module in this package defines one `Gateway` subclass with a unique `code`.

Modules are discovered, so adding a gateway is adding a file. `REGISTRY` maps code → adapter instance, in
the order shoppers see the methods.
"""

import importlib
import pkgutil

from app.gateways.base import Gateway

ORDER = ["testcard", "vnpay", "midtrans", "khalti", "bkash", "sslcommerz", "rocket", "nagad", "stripe"]


def _discover():
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")
    found = {}

    def walk(cls):
        for sub in cls.__subclasses__():
            if sub.code:
                found[sub.code] = sub()
            walk(sub)

    walk(Gateway)
    return dict(sorted(found.items(), key=lambda kv: (ORDER.index(kv[0]) if kv[0] in ORDER else 99, kv[0])))


REGISTRY = _discover()


def get_gateway(code):
    """The adapter for `code`, or None."""
    return REGISTRY.get(code)


def gateway_display_name(code):
    """What people read for a gateway code: its adapter's `name` (the one display name), else the code."""
    gateway = REGISTRY.get(code) if code else None
    return gateway.name if gateway else (code or "")
