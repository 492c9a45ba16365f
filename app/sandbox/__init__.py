"""Offline simulators of the gateways, mounted under /sandbox/<code>/ only when the SANDBOX switch is on.

Each module mirrors `app/gateways/<code>.py` from the gateway's side: the same paths, field names,
authentication, signatures, status codes and error bodies as the real service, its hosted payment page (a
button named `outcome`), and its server-to-server notifications sent from RQ jobs. A simulator keeps its own
state in Redis (never in our tables) and exposes `bp` and `SANDBOX_CREDENTIALS`.
"""

import importlib
import pkgutil

from app.extensions import csrf


def register_sandbox(app):
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        bp = getattr(module, "bp", None)
        if bp is not None:
            csrf.exempt(bp)  # the simulated gateway's own pages and APIs, not our forms
            app.register_blueprint(bp, url_prefix=f"/sandbox/{module_info.name}")
