"""The policy room: what of an exec may leave the collector, and in which form."""

from collector.policy.counters import PolicyCounters
from collector.policy.engine import RulePolicy, build_policy
from collector.policy.policy import PassThrough, Policy
from collector.policy.record import ExecRecord, PolicyRecord, SuppressedRecord
from collector.policy.redact import MASK, Redactor

__all__ = [
    "MASK",
    "ExecRecord",
    "PassThrough",
    "Policy",
    "PolicyCounters",
    "PolicyRecord",
    "Redactor",
    "RulePolicy",
    "SuppressedRecord",
    "build_policy",
]
