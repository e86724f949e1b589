"""Exclusions: named rules that drop execs before anything else sees them, each drop counted.

A rule matches an exec when every condition it has holds:

- `binaries`: the exec's filename (the path the kernel was asked to run, e.g. /usr/bin/pg_isready)
  equals one of the patterns or matches it as a glob, where ``*`` and ``?`` match any characters,
  ``/`` included, and ``[...]`` a set: ``/usr/lib/nagios/plugins/*``, ``*/grpc_health_probe``;
- `pod_selector`: the pod's Kubernetes labels match the label selector. An exec outside any pod
  (standalone mode) or of a pod the kubelet has not described yet never matches a selector, so an
  exclusion can never hide what it cannot attribute.

Rules are tried in order; the first that matches gets the count.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass

from collector.event import ProcessEvent
from collector.k8s import Selector, Workload

__all__ = ["Exclusion", "Exclusions", "is_glob"]


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


@dataclass(frozen=True, slots=True)
class Exclusion:
    """One exclusion rule, as configured."""

    name: str
    binaries: tuple[str, ...] = ()  # exact paths or globs; empty: any binary
    pod_selector: Selector | None = None  # None: any pod, or none


@dataclass(frozen=True, slots=True)
class _Compiled:
    name: str
    exact: frozenset[str]
    glob: re.Pattern[str] | None
    selector: Selector | None

    def matches(self, event: ProcessEvent, workload: Workload | None) -> bool:
        if self.exact or self.glob is not None:
            # A kind that names no binary (an exit) is never excluded by one.
            filename: str | None = getattr(event, "filename", None)
            if filename is None:
                return False
            if filename not in self.exact and (self.glob is None or not self.glob.match(filename)):
                return False
        if self.selector is not None:
            if workload is None or not workload.resolved:
                return False
            return self.selector.matches(workload.pod_labels)
        return True


class Exclusions:
    def __init__(self, rules: Sequence[Exclusion]) -> None:
        compiled = []
        for rule in rules:
            globs = [fnmatch.translate(p) for p in rule.binaries if is_glob(p)]
            compiled.append(
                _Compiled(
                    rule.name,
                    frozenset(p for p in rule.binaries if not is_glob(p)),
                    re.compile("|".join(globs)) if globs else None,
                    rule.pod_selector,
                )
            )
        self._rules = tuple(compiled)
        self.names = tuple(rule.name for rule in rules)

    def match(self, event: ProcessEvent, workload: Workload | None) -> str | None:
        """The name of the first rule that drops this record, or None to keep it."""
        for rule in self._rules:
            if rule.matches(event, workload):
                return rule.name
        return None
