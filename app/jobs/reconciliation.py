"""Reconciliation job: ask gateways about payments stuck in processing (periodic)."""

from app.services import reconciliation


def sweep():
    return reconciliation.reconcile_stuck()
