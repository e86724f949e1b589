"""The policy room: what of a record may leave the collector, and in which form."""

from collector.policy.counters import PolicyCounters
from collector.policy.policy import PassThrough, Policy
from collector.policy.record import PolicyRecord, SuppressedRecord
from collector.policy.redact import MASK, Redactor
from collector.policy.rules import RulePolicy, build_policy
from collector.policy.settings import PolicyConfig

__all__ = [
    "MASK",
    "PassThrough",
    "Policy",
    "PolicyConfig",
    "PolicyCounters",
    "PolicyRecord",
    "Redactor",
    "RulePolicy",
    "SuppressedRecord",
    "build_policy",
]
