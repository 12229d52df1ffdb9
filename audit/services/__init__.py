"""Every write to the result store goes through these functions; views, API endpoints, admin
actions and tasks all call them. One module per concern, re-exported here."""

from .decisions import (
    MAX_DECISION_ITEMS,
    PASS_LABEL,
    Conflict,
    DecisionOutcome,
    decision_record,
)
from .fetching import FetchRetry, result_fetch, results_fetch_stale
from .fingerprinting import fingerprints_ensure, results_fingerprint, results_fingerprint_missing
from .ingest import Ingested, results_ingest, task_id_generate, worst_scene
from .propagation import decision_propagate, decisions_propagate_pending
from .purge import results_purge

__all__ = [
    "MAX_DECISION_ITEMS",
    "PASS_LABEL",
    "Conflict",
    "DecisionOutcome",
    "FetchRetry",
    "Ingested",
    "decision_propagate",
    "decision_record",
    "decisions_propagate_pending",
    "fingerprints_ensure",
    "result_fetch",
    "results_fetch_stale",
    "results_fingerprint",
    "results_fingerprint_missing",
    "results_ingest",
    "results_purge",
    "task_id_generate",
    "worst_scene",
]
