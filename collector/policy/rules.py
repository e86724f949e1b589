"""The configured policy: exclusions, then the rate limit, then redaction, on every record.

The order matters. An excluded record is dropped before it can spend a token. A held-back record
is never shown, so it is never redacted (redaction is the costly step). What is logged is
redacted once, here, before the hub: every outlet, the replay buffer included, only ever sees the
masked argv. The event's argv is replaced by the masked one, so no field of the record holds the
secret any more.

Records of every kind go through it. Exclusions by binary and redaction look at the event's
`filename` and `argv` where its kind has them; a kind without them is judged by its workload.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from collector.k8s import ProcessRecord
from collector.policy.counters import PolicyCounters
from collector.policy.exclude import Exclusions
from collector.policy.patterns import BUILTIN_RULES
from collector.policy.ratelimit import RateLimiter
from collector.policy.record import PolicyRecord
from collector.policy.redact import Redactor
from collector.policy.settings import PolicyConfig

__all__ = ["RulePolicy", "build_policy"]


class RulePolicy:
    """A `Policy` made of the parts that are configured; any of them may be absent."""

    def __init__(
        self,
        redactor: Redactor | None = None,
        limiter: RateLimiter | None = None,
        exclusions: Exclusions | None = None,
    ) -> None:
        self.redactor = redactor
        self.limiter = limiter
        self.exclusions = exclusions
        self.counters = PolicyCounters.for_rules(
            redactor.rule_names if redactor is not None else (),
            exclusions.names if exclusions is not None else (),
        )

    def apply(self, records: Sequence[ProcessRecord]) -> list[PolicyRecord]:
        counters = self.counters
        redactor, limiter, exclusions = self.redactor, self.limiter, self.exclusions
        out: list[PolicyRecord] = []
        for record in records:
            if exclusions is not None:
                rule = exclusions.match(record.event, record.workload)
                if rule is not None:
                    counters.excluded[rule] += 1
                    continue
            if limiter is not None and not limiter.admit(record.event, record.workload):
                counters.suppressed += 1
                continue
            if redactor is not None:
                event = record.event
                argv = getattr(event, "argv", None)
                if argv:
                    masked, fired = redactor.redact(argv)
                    if fired:
                        for name in fired:
                            counters.redacted[name] += 1
                        counters.redacted_execs += 1
                        event.argv = masked  # type: ignore[attr-defined]
                        record.redactions = fired
            out.append(record)
        counters.captured += len(records)
        counters.logged += len(out)
        return out

    def due(self, now_ns: int, final: bool = False) -> list[PolicyRecord]:
        if self.limiter is None:
            return []
        summaries = self.limiter.due(now_ns, final)
        counters = self.counters
        counters.summaries += len(summaries)
        counters.suppressed_reported += sum(s.suppressed for s in summaries)
        counters.workloads = self.limiter.workloads
        return list(summaries)


def build_policy(config: PolicyConfig) -> RulePolicy:
    """The policy that `config` describes (its rules were validated when it was built)."""
    redactor = None
    if config.redact:
        disabled = set(config.disabled_redaction_rules)
        rules = [rule for rule in BUILTIN_RULES if rule.name not in disabled]
        user = [(rule.name, rule.pattern) for rule in config.redaction_rules]
        if rules or user:
            redactor = Redactor(rules, user)
    limiter = None
    if config.rate_limit > 0:
        burst = config.rate_limit_burst or max(1, math.ceil(config.rate_limit))
        limiter = RateLimiter(config.rate_limit, burst, config.rate_limit_summary_s)
    exclusions = Exclusions(config.exclusions) if config.exclusions else None
    return RulePolicy(redactor, limiter, exclusions)
