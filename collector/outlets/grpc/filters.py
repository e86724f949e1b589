"""Subscriber filters, compiled once per subscription and run on the server.

A record passes when it matches any allow filter (no allow filter: everything matches) and no
deny filter. Within one filter every field that is set must match: the pod's namespace is one of
`namespaces`, the pod's own labels satisfy `pod_selector`, each of `labels` equals the record's
output label, and the executed file starts with one of `binary_prefixes`. Records of no pod
(standalone mode) never match the three pod fields. Gaps are not filtered: loss is always shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from collector._proto.execlog.v1 import execlog_pb2 as pb
from collector.k8s import Selector, SelectorError, Workload, parse_selector

__all__ = ["FilterError", "FilterSet", "Match", "compile_filters"]


class FilterError(ValueError):
    """A filter cannot be used (a bad label selector); the message names which one."""


@dataclass(frozen=True, slots=True)
class Match:
    """One Filter message, compiled."""

    namespaces: frozenset[str] = frozenset()
    selector: Selector | None = None
    labels: tuple[tuple[str, str], ...] = ()
    prefixes: tuple[str, ...] = ()

    def matches(self, workload: Workload | None, binaries: tuple[str, ...]) -> bool:
        if self.namespaces or self.selector is not None or self.labels:
            if workload is None:
                return False
            if self.namespaces and workload.namespace not in self.namespaces:
                return False
            if self.selector is not None and not self.selector.matches(workload.pod_labels):
                return False
            if self.labels:
                have = workload.labels
                if any(have.get(key) != value for key, value in self.labels):
                    return False
        if self.prefixes:
            prefixes = self.prefixes
            return any(binary.startswith(prefixes) for binary in binaries)
        return True


@dataclass(frozen=True, slots=True)
class FilterSet:
    allow: tuple[Match, ...] = ()
    deny: tuple[Match, ...] = ()

    @property
    def everything(self) -> bool:
        """Passes every record: the publisher can skip testing."""
        return not self.allow and not self.deny

    def passes(self, workload: Workload | None, binaries: tuple[str, ...]) -> bool:
        if self.allow and not any(m.matches(workload, binaries) for m in self.allow):
            return False
        return not any(m.matches(workload, binaries) for m in self.deny)


def _compile(message: pb.Filter, where: str) -> Match:
    selector = None
    if message.pod_selector.strip():
        try:
            selector = parse_selector(message.pod_selector)
        except SelectorError as exc:
            raise FilterError(f"{where}: {exc}") from exc
    return Match(
        namespaces=frozenset(message.namespaces),
        selector=selector,
        labels=tuple(sorted(message.labels.items())),
        prefixes=tuple(message.binary_prefixes),
    )


def compile_filters(allow: Iterable[pb.Filter], deny: Iterable[pb.Filter]) -> FilterSet:
    return FilterSet(
        allow=tuple(_compile(f, f"allow[{i}]") for i, f in enumerate(allow)),
        deny=tuple(_compile(f, f"deny[{i}]") for i, f in enumerate(deny)),
    )
