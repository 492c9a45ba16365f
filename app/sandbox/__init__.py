"""Offline simulators of the gateways, mounted under /sandbox/<code>/ only when the SANDBOX switch is on.

Each module mirrors `app/gateways/<code>.py` from the gateway's side: the same paths, field names,
authentication, signatures, status codes and error bodies as the real service, its hosted payment page (a
button named `outcome`), and its server-to-server notifications sent from RQ jobs. A simulator keeps its own
state in Redis (never in our tables) and exposes `bp`, `SANDBOX_CREDENTIALS` and `error_envelope` (its
gateway's answer to unknown paths, wrong methods and errors; see _common.py).
"""

import importlib
import pkgutil

from app.extensions import csrf
from app.sandbox._common import install_error_envelope, unrouted_errors


def register_sandbox(app):
    envelopes = {}
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        bp = getattr(module, "bp", None)
        if bp is not None:
            csrf.exempt(bp)  # the simulated gateway's own pages and APIs, not our forms
            envelope = getattr(module, "error_envelope", None)
            if envelope is not None:
                envelopes[module_info.name] = envelope
                if not getattr(bp, "_paysmith_envelope", False):  # one blueprint object per process
                    install_error_envelope(bp, envelope)
                    bp._paysmith_envelope = True
            app.register_blueprint(bp, url_prefix=f"/sandbox/{module_info.name}")
    app.before_request(unrouted_errors(envelopes))
