"""The periodic sweeps: what runs, and how often (the config key of its period). The worker's clock
(app.jobs.clock) enqueues one run per period, whatever the number of workers."""

import importlib

#: name → (dotted function, config key holding its period in seconds)
PERIODIC = {
    "webhooks": ("app.jobs.webhooks.sweep", "WEBHOOK_SWEEP_SECONDS"),
    "expiry": ("app.jobs.expiry.sweep", "EXPIRY_SWEEP_SECONDS"),
    "reconciliation": ("app.jobs.reconciliation.sweep", "RECONCILE_SWEEP_SECONDS"),
    "refunds": ("app.jobs.refunds.sweep", "REFUND_SWEEP_SECONDS"),
    "receipts": ("app.jobs.receipts.sweep", "RECEIPT_SWEEP_SECONDS"),
    "totals": ("app.jobs.totals.sweep", "TOTALS_ROLLUP_SECONDS"),
}


def run_periodic(name):
    """RQ job: run one periodic sweep."""
    module, _, func = PERIODIC[name][0].rpartition(".")
    return getattr(importlib.import_module(module), func)()
