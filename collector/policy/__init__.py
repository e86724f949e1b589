"""The policy room: what of an exec may leave the collector, and in which form."""

from collector.policy.policy import PassThrough, Policy
from collector.policy.record import ExecRecord, PolicyRecord, SuppressedRecord

__all__ = ["ExecRecord", "PassThrough", "Policy", "PolicyRecord", "SuppressedRecord"]
