"""Policy's own settings, as the configuration hands them over (frozen, already validated)."""

from __future__ import annotations

from dataclasses import dataclass

from collector.policy.exclude import Exclusion
from collector.policy.spec import RedactionRule

__all__ = ["PolicyConfig"]


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    redact: bool = True
    rate_limit: float = 0.0  # records/s per workload; 0: no limit
    rate_limit_burst: int | None = None  # None: the rate, at least 1
    rate_limit_summary_s: float = 5.0
    redaction_rules: tuple[RedactionRule, ...] = ()  # YAML only
    disabled_redaction_rules: tuple[str, ...] = ()  # YAML only: built-in rule names
    exclusions: tuple[Exclusion, ...] = ()  # YAML only
