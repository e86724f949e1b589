"""The policy room: what of an exec may leave the collector, and in which form."""

from collector.policy.record import ExecRecord

__all__ = ["ExecRecord"]
