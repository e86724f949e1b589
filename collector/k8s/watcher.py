"""The background thread that keeps the enricher's view of this node fresh.

It polls the kubelet every `poll_interval` seconds, and sooner when the enricher asks (a pod or
container it does not know yet), at most every `MIN_REFRESH_S`. It scans the kubepods cgroup
subtree when asked (a cgroup nested below a container) and along with each poll, and it watches the
kubepods roots for the kernel's cgroup filter. Each result becomes a new immutable
:class:`Snapshot`, published by one reference assignment: the ring reader never waits for it.

A failing kubelet (down, 401, 403, 500, a malformed body) is one log line per new kind of
failure, retried with exponential backoff, and one line when it answers again. The last good pod
list stays in use meanwhile, so known pods keep resolving. Pods that leave the list are kept for
`grace` seconds, so the last execs of a deleted pod still resolve.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from collector.k8s.kubelet import KubeletClient, KubeletError
from collector.k8s.labels import LabelRule
from collector.k8s.pods import PodEntry, Snapshot, pod_entries
from collector.k8s.scan import root_ids, scan
from collector.k8s.selector import Selector

__all__ = ["MIN_REFRESH_S", "PodWatcher", "WatcherCounters"]

log = logging.getLogger("execlog.kubelet")

MIN_REFRESH_S: Final = 0.5  # the rate limit on polls the enricher asks for
MIN_SCAN_S: Final = 0.1
ROOTS_CHECK_S: Final = 1.0  # how soon a kubepods root made after start is filtered in
BACKOFF_FIRST_S: Final = 1.0
BACKOFF_MAX_S: Final = 30.0


@dataclass(slots=True)
class WatcherCounters:
    polls: int = 0  # answered with a PodList
    poll_failures: int = 0
    scans: int = 0
    pods: int = 0  # on the node at the last good poll
    selected: int = 0  # of those, selected by --pod-selector


class PodWatcher:
    def __init__(
        self,
        client: KubeletClient,
        *,
        node: str,
        rules: tuple[LabelRule, ...],
        selector: Selector,
        cgroup_mount: Path,
        roots: Sequence[str],
        poll_interval: float = 10.0,
        grace: float = 60.0,
        on_roots: Callable[[frozenset[int]], None] | None = None,
    ) -> None:
        self.client = client
        self.counters = WatcherCounters()
        # Read by the ring reader without a lock: replaced whole, never changed in place.
        self.snapshot = Snapshot()
        self._node, self._rules, self._selector = node, rules, selector
        self._mount, self._roots = cgroup_mount, tuple(roots)
        self._poll_interval, self._grace = poll_interval, grace
        self._on_roots = on_roots
        self._root_ids: frozenset[int] | None = None
        # Request counters: only the reader increments them, only this thread reads them, so no
        # request is lost and the reader never takes a lock.
        self._pod_requests = 0
        self._scan_requests = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._gone: dict[str, tuple[float, PodEntry]] = {}
        self._failures = 0
        self._failure_kind: str | None = None
        self._thread = threading.Thread(target=self._run, name="pod-watcher", daemon=True)

    # -- called from the ring reader's thread: no I/O, no waiting ------------------------------

    def request_pods(self) -> None:
        """An event names a pod or container this snapshot lacks: poll again soon."""
        self._pod_requests += 1
        self._wake.set()

    def request_scan(self) -> None:
        """An event's cgroup is not attributable by its names: scan the kubepods subtree soon."""
        self._scan_requests += 1
        self._wake.set()

    @property
    def pod_requests(self) -> int:
        return self._pod_requests

    @property
    def scan_requests(self) -> int:
        return self._scan_requests

    # -- life -----------------------------------------------------------------------------------

    def check_roots(self) -> frozenset[int]:
        """Ids of the kubepods roots now; calls on_roots when they changed. Also used at start."""
        ids = root_ids(self._mount, self._roots)
        if ids != self._root_ids:
            if not ids:
                # Nothing is recorded until one appears: loud, since a wrong --kubepods-roots or
                # --cgroup-root would otherwise look like a quiet node.
                log.warning(
                    "kubepods roots in %s: 0 of %s present; nothing is logged until one appears "
                    "(check --kubepods-roots and --cgroup-root)",
                    self._mount,
                    ",".join(self._roots),
                )
            elif self._root_ids is not None:
                log.info(
                    "kubepods roots in %s: %d of %s present", self._mount, len(ids), ",".join(self._roots)
                )
            self._root_ids = ids
            if self._on_roots is not None:
                try:
                    self._on_roots(ids)
                except Exception:
                    log.exception("cannot update the kernel's cgroup filter")
        return ids

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.client.close()

    def _run(self) -> None:
        now = time.monotonic()
        next_poll = next_scan = next_roots = now
        last_poll = last_scan = -1e9
        pods_served = scans_served = 0
        while not self._stop.is_set():
            self._wake.clear()
            now = time.monotonic()
            pods_wanted, scans_wanted = self._pod_requests, self._scan_requests
            try:
                if now >= next_roots:
                    self.check_roots()
                    next_roots = now + ROOTS_CHECK_S
                if scans_wanted > scans_served:
                    next_scan = min(next_scan, last_scan + MIN_SCAN_S)
                if now >= next_scan:
                    last_scan, scans_served = now, scans_wanted
                    self._scan(scans_wanted)
                    next_scan = now + self._poll_interval
                if pods_wanted > pods_served and self._failures == 0:
                    next_poll = min(next_poll, last_poll + MIN_REFRESH_S)
                if now >= next_poll:
                    last_poll, pods_served = now, pods_wanted
                    next_poll = now + self._poll(pods_wanted)
            except Exception:
                # A bug must not stop attribution for good; the last snapshot stays in use.
                log.exception("the pod watcher failed; retrying")
                next_poll = now + BACKOFF_MAX_S
            wait = min(next_poll, next_scan, next_roots) - time.monotonic()
            if wait > 0:
                self._wake.wait(wait)

    def _scan(self, answers: int) -> None:
        index = scan(self._mount, self._roots, answers)
        self.counters.scans += 1
        old = self.snapshot
        self.snapshot = Snapshot(old.pods, index, old.pods_answer, old.polled)

    def _poll(self, answers: int) -> float:
        """One poll; returns the seconds until the next one."""
        try:
            podlist = self.client.pods()
        except KubeletError as exc:
            return self._failed(exc)
        now = time.monotonic()
        old = self.snapshot
        previous = dict(old.pods)
        entries = pod_entries(podlist.items, self._node, self._rules, self._selector, previous)
        for uid, entry in old.pods.items():
            if uid not in entries:
                self._gone.setdefault(uid, (now, entry))
        for uid in list(self._gone):
            since, entry = self._gone[uid]
            if uid in entries or now - since > self._grace:
                del self._gone[uid]
            else:
                entries.setdefault(uid, entry)
        counters = self.counters
        counters.polls += 1
        counters.pods = len(podlist.items)
        counters.selected = sum(1 for e in entries.values() if e.selected and e.uid not in self._gone)
        if self._failures:
            log.info(
                "kubelet %s answers again after %d failed polls: %d pods on this node",
                self.client.url,
                self._failures,
                counters.pods,
            )
        elif not old.polled:
            log.info(
                "kubelet %s: %d pods on this node, %d selected",
                self.client.url,
                counters.pods,
                counters.selected,
            )
        self._failures, self._failure_kind = 0, None
        self.snapshot = Snapshot(entries, self.snapshot.cgroups, answers, True)
        return self._poll_interval

    def _failed(self, exc: KubeletError) -> float:
        self.counters.poll_failures += 1
        self._failures += 1
        delay = min(BACKOFF_FIRST_S * (1 << min(self._failures - 1, 10)), BACKOFF_MAX_S, self._poll_interval)
        if exc.kind != self._failure_kind:
            known = len(self.snapshot.pods)
            log.error(
                "kubelet %s: %s; %s, retrying with backoff up to %gs",
                self.client.url,
                exc,
                f"the {known} pods known so far keep resolving" if known else "events go out unresolved",
                min(BACKOFF_MAX_S, self._poll_interval),
            )
            self._failure_kind = exc.kind
        else:
            log.debug("kubelet poll failed again (%d in a row): %s", self._failures, exc)
        return delay
