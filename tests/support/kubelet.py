"""A kubelet API for tests: `GET /pods` over HTTPS with bearer-token auth, and ways to make it fail.

No kubelet can run on the test machines, so this is the one stand-in the project allows
(ARCHITECTURE.md, "Tests that are real"). It answers as the kubelet's port 10250 does: a PodList
whose pods are `kubernetes.client` models serialised by the client's own `ApiClient`, so keys are
camelCase and timestamps RFC 3339 in UTC ("2026-01-02T03:04:05Z"), exactly what the collector
will parse in production.

How a client uses it
--------------------
::

    pod = make_pod("ws-alice", "workspaces", "7d5e...", "node-1", labels={"app": "ws"},
                   containers=[("shell", container_id("containerd", "ws-alice/shell"))])
    with FakeKubelet(pods=[pod]) as kubelet:
        # The collector's kubelet client, whatever its name and shape, is given these three:
        client = Poller(url=kubelet.url,                # https://127.0.0.1:<port>
                        ca_file=kubelet.ca_file,        # the CA that signed the serving cert
                        token_file=kubelet.token_file)  # read it as a service account would
        ...
        seen = kubelet.stats().total
        kubelet.add_pod(make_pod(...))                         # a pod appears on the node
        kubelet.wait_for_requests(seen + 1)                    # the client has polled since

The client must send `Authorization: Bearer <contents of token_file>` and verify the server
against `ca_file` (host name 127.0.0.1 or localhost). `serviceaccount_dir` holds `token`,
`ca.crt` and `namespace` laid out like /var/run/secrets/kubernetes.io/serviceaccount, for code
that takes that directory. `rotate_token()` replaces the file's contents the way the kubelet
refreshes a projected token, so a client that caches the token can be caught.

What it answers
---------------
- `GET /pods`, `GET /pods/` (query ignored): 200 `{"kind":"PodList","apiVersion":"v1",
  "metadata":{},"items":[...]}` with `Content-Type: application/json`, pods in the order they
  were added. Pods are snapshotted when given: change one by passing it again (same uid).
- No or wrong bearer token: 401, body `Unauthorized` (text/plain), as the kubelet's authn filter
  answers. The token check runs first, before any failure mode, as it does in the kubelet.
- Another path: 404 `404 page not found`; another method: 405. HTTP/1.1 with keep-alive.

Failure modes (each until `healthy()`, or for the next `times` authenticated requests)
-------------------------------------------------------------------------------------
- `fail_with(500)`: an error status with a body, e.g. 403 with `forbidden_body(user)` for a
  service account that lacks `nodes/proxy`.
- `serve_malformed(body)`: 200 with a body that is not a valid PodList; `podlist_body()` gives the
  real body to cut short.
- `stall(seconds)`: requests are held that long before being answered, for client timeouts.
- `go_down()` / `come_up()`: an outage, as when the kubelet restarts. The listening socket is
  closed, so new connections are refused (ECONNREFUSED), and every open connection, including idle
  keep-alive ones and requests in flight, is cut. `come_up()` listens again on the same port, so
  `url` does not change (it raises OSError in the unlikely case that another process took the
  port meanwhile). A node that vanished from the network, where connects time out instead of
  being refused, is not simulated; `stall()` covers a kubelet that accepts and never answers.

TLS
---
By default a fresh CA and a serving certificate for 127.0.0.1 and localhost are made with the
`openssl` CLI in a temporary directory (see `tests.support.tls`). Pass `tls=` to serve another
certificate: one from a different `CertificateAuthority`, or `self_signed_server_cert()`, or one
for a host name the client does not dial, to test that the client refuses it.

Observability
-------------
`stats()` counts answered requests (total and per status), requests in flight (a stalled one
is), open connections, TLS handshakes that failed, and connections cut by an outage.
`wait_for_requests(n)` blocks until `n` requests have been answered since start;
`wait_for_next_request()` until one more has; `wait_for_stats(predicate)` until the counters
satisfy a test's own condition. `requests()` is the log of what came in (method, path, status,
the Authorization header, User-Agent). A handler that crashed with anything but a connection
error makes leaving the `with` block raise.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import shutil
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Self

from kubernetes import client as k8s

from tests.support.tls import CertificateAuthority, ServerCert, self_signed_server_cert

__all__ = [
    "CODER_ANNOTATIONS",
    "CODER_LABELS",
    "QOS_CLASSES",
    "RUNTIMES",
    "CertificateAuthority",
    "ContainerSpec",
    "FakeKubelet",
    "RequestRecord",
    "RequestStats",
    "ServerCert",
    "container_id",
    "forbidden_body",
    "make_pod",
    "pod_to_dict",
    "podlist_body",
    "self_signed_server_cert",
]

# The metadata Coder puts on a workspace pod, with the values of the reference document's record.
CODER_LABELS = {
    "com.coder.username": "jessie",
    "com.coder.workspace.name": "main",
    "com.coder.workspace.id": "621d2e52-a6987ef6c56210058ee2593c",
    "com.coder.user.id": "5e876e9a-121663f01ebd1522060d5270",
    "com.coder.organization.id": "default",
}
CODER_ANNOTATIONS = {"com.coder.user.email": "jessie@coder.com"}

RUNTIMES = ("containerd", "cri-o", "docker")
QOS_CLASSES = ("Guaranteed", "Burstable", "BestEffort")
_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")

# (container name, container ID as the kubelet reports it: "<runtime>://<64 hex>"); None for a
# container whose sandbox or image is not ready yet, which the kubelet reports without an ID.
ContainerSpec = tuple[str, str | None]

_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"
_UNAUTHORIZED = b"Unauthorized"
_NOT_FOUND = b"404 page not found\n"
_NOT_ALLOWED = b"405: Method Not Allowed"
_PODS_PATHS = ("/pods", "/pods/")
_HOST = "127.0.0.1"  # loopback only: the test machines have no other network to offer
_HANDSHAKE_TIMEOUT = 5.0
# serve_forever's poll interval bounds how long go_down() waits for the accept loop to notice.
_POLL_INTERVAL = 0.02
_LOG_LENGTH = 1000


def container_id(runtime: str, seed: str) -> str:
    """`<runtime>://<64 hex>`, the form of `status.containerStatuses[].containerID`.

    The hex is derived from `seed`, so a test can compute the ID a container will have (and the
    cgroup name that embeds it) without keeping it around.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
    return f"{runtime}://{hashlib.sha256(seed.encode()).hexdigest()}"


def forbidden_body(user: str) -> bytes:
    """What the kubelet answers (with 403) when the caller may not get nodes/proxy."""
    return f"Forbidden (user={user}, verb=get, resource=nodes, subresource=proxy)".encode()


def make_pod(
    name: str,
    namespace: str,
    uid: str,
    node_name: str,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    containers: Sequence[ContainerSpec] = (),
    qos_class: str = "Burstable",
    phase: str = "Running",
    init_containers: Sequence[ContainerSpec] = (),
    ephemeral_containers: Sequence[ContainerSpec] = (),
    image: str = "docker.io/library/busybox:1.36",
    started_at: dt.datetime | None = None,
    config_source: str = "api",
    pod_ip: str = "10.244.1.23",
    host_ip: str = "192.168.0.11",
) -> k8s.V1Pod:
    """A pod as the kubelet lists it: spec, status and the annotations the kubelet itself adds.

    Container state follows the ID and the phase: no ID is `waiting: ContainerCreating`; an ID in
    a Running or Pending pod is `running`; in a Succeeded or Failed pod, `terminated`. Init
    containers with an ID have completed. Requests and limits match `qos_class`, so the spec and
    `status.qosClass` agree (the QoS class also names the pod's cgroup parent).
    """
    if qos_class not in QOS_CLASSES:
        raise ValueError(f"qos_class must be one of {QOS_CLASSES}, not {qos_class!r}")
    if phase not in _PHASES:
        raise ValueError(f"phase must be one of {_PHASES}, not {phase!r}")
    started = _utc(started_at or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    created = started - dt.timedelta(seconds=3)
    # config.seen has nanoseconds (RFC 3339 nano), unlike every metav1.Time field.
    seen_nanos = int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16) % 1_000_000_000
    image_id = f"{image.rsplit(':', 1)[0]}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"

    def status(spec: ContainerSpec, kind: str) -> k8s.V1ContainerStatus:
        cname, cid = spec
        if cid is None:
            state = k8s.V1ContainerState(waiting=k8s.V1ContainerStateWaiting(reason="ContainerCreating"))
            ready = running = False
        elif kind == "init" or phase in ("Succeeded", "Failed"):
            failed = kind != "init" and phase == "Failed"
            # Init containers ran, one after another, before the app containers started.
            begin = created + dt.timedelta(seconds=1) if kind == "init" else started
            state = k8s.V1ContainerState(
                terminated=k8s.V1ContainerStateTerminated(
                    container_id=cid,
                    exit_code=1 if failed else 0,
                    reason="Error" if failed else "Completed",
                    started_at=begin,
                    finished_at=begin + dt.timedelta(seconds=1),
                )
            )
            # A completed init container is reported ready; a finished app container is not.
            ready, running = kind == "init", False
        else:
            state = k8s.V1ContainerState(running=k8s.V1ContainerStateRunning(started_at=started))
            ready, running = kind == "app", True
        return k8s.V1ContainerStatus(
            name=cname,
            container_id=cid,
            image=image,
            image_id=image_id if cid is not None else "",
            ready=ready,
            started=running,
            restart_count=0,
            state=state,
            last_state=k8s.V1ContainerState(),
        )

    resources = _resources(qos_class)
    app_statuses = [status(c, "app") for c in containers]
    init_statuses = [status(c, "init") for c in init_containers]
    initialized = all(c[1] is not None for c in init_containers)
    all_ready = phase == "Running" and all(s.ready for s in app_statuses)
    sandbox = phase != "Pending" or any(c[1] is not None for c in (*containers, *init_containers))

    def condition(kind: str, value: bool) -> k8s.V1PodCondition:
        return k8s.V1PodCondition(type=kind, status=str(value), last_transition_time=started)

    pod_annotations = {
        # The kubelet stamps every pod it admits with these two; a client must not mistake them
        # for the workload's own annotations, nor rely on their absence.
        "kubernetes.io/config.seen": f"{created:%Y-%m-%dT%H:%M:%S}.{seen_nanos:09d}Z",
        "kubernetes.io/config.source": config_source,
        **(annotations or {}),
    }
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(
            name=name,
            namespace=namespace,
            uid=uid,
            labels=dict(labels) if labels else None,
            annotations=pod_annotations,
            creation_timestamp=created,
            resource_version=str(int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16)),
        ),
        spec=k8s.V1PodSpec(
            node_name=node_name,
            containers=[k8s.V1Container(name=c[0], image=image, resources=resources) for c in containers],
            init_containers=[
                k8s.V1Container(name=c[0], image=image, resources=resources) for c in init_containers
            ]
            or None,
            ephemeral_containers=[
                k8s.V1EphemeralContainer(name=c[0], image=image) for c in ephemeral_containers
            ]
            or None,
            restart_policy="Always",
            dns_policy="ClusterFirst",
            scheduler_name="default-scheduler",
            service_account_name="default",
            service_account="default",
            termination_grace_period_seconds=30,
            enable_service_links=True,
            priority=0,
        ),
        status=k8s.V1PodStatus(
            phase=phase,
            qos_class=qos_class,
            host_ip=host_ip,
            host_ips=[k8s.V1HostIP(ip=host_ip)],
            pod_ip=pod_ip if sandbox else None,
            pod_ips=[k8s.V1PodIP(ip=pod_ip)] if sandbox else None,
            start_time=started,
            conditions=[
                condition("PodReadyToStartContainers", sandbox),
                condition("Initialized", initialized),
                condition("Ready", all_ready),
                condition("ContainersReady", all_ready),
                condition("PodScheduled", True),
            ],
            container_statuses=app_statuses or None,
            init_container_statuses=init_statuses or None,
            ephemeral_container_statuses=[status(c, "ephemeral") for c in ephemeral_containers] or None,
        ),
    )


def pod_to_dict(pod: k8s.V1Pod | Mapping[str, Any]) -> dict[str, Any]:
    """The pod as it appears in the kubelet's JSON. A mapping is taken as already that JSON."""
    if isinstance(pod, k8s.V1Pod):
        with _KubeJSON() as api:
            data = api.sanitize_for_serialization(pod)
    else:
        data = pod
    # A round trip through JSON both deep-copies and proves the pod can be served.
    result: dict[str, Any] = json.loads(json.dumps(data))
    return result


def podlist_body(pods: Iterable[k8s.V1Pod | Mapping[str, Any]]) -> bytes:
    """The exact bytes `GET /pods` answers for these pods; cut it short for a malformed body."""
    return _encode_podlist([pod_to_dict(p) for p in pods])


@dataclass(frozen=True, slots=True)
class RequestRecord:
    method: str
    path: str
    status: int
    authorization: str | None
    user_agent: str | None


@dataclass(frozen=True, slots=True)
class RequestStats:
    total: int  # answered requests, whatever the status
    by_status: Mapping[int, int]
    in_flight: int  # read but not answered yet: stalled, or being answered
    connections_open: int
    tls_handshake_failures: int
    connections_dropped: int  # cut by go_down() or close()


class FakeKubelet:
    """The kubelet's /pods endpoint on 127.0.0.1. Thread-safe; see the module docstring."""

    def __init__(
        self,
        token: str | None = None,
        *,
        pods: Iterable[k8s.V1Pod | Mapping[str, Any]] = (),
        tls: ServerCert | None = None,
        port: int = 0,
        namespace: str = "execlog",
        idle_timeout: float = 90.0,
        directory: Path | None = None,
    ) -> None:
        self._token = token or f"fake-sa-token-{secrets.token_hex(16)}"
        self._accepted = {self._token}
        self._tls = tls
        self._port = port
        self._namespace = namespace
        self._idle_timeout = idle_timeout
        self._directory = directory
        self._own_directory = directory is None

        # One lock for everything a handler reads or writes; the condition wakes both stalled
        # handlers and tests waiting for requests.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pods: dict[str, dict[str, Any]] = {}
        self._canned: _Canned | None = None
        self._stall_seconds = 0.0
        self._stall_generation = 0
        self._by_status: Counter[int] = Counter()
        self._total = 0
        self._in_flight = 0
        self._connections_open = 0
        self._tls_failures = 0
        self._dropped = 0
        self._log: deque[RequestRecord] = deque(maxlen=_LOG_LENGTH)
        self._errors: list[str] = []

        # Serialises start, outages and close; never taken by a handler, so go_down() can wait
        # for handlers without deadlock.
        self._lifecycle = threading.Lock()
        self._started = self._closed = False
        self._context: ssl.SSLContext | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._serving: ServerCert | None = None
        self.set_pods(pods)

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        if exc_type is None and self._errors:
            raise RuntimeError("FakeKubelet handler crashed:\n" + "\n".join(self._errors))

    def start(self) -> Self:
        with self._lifecycle:
            if self._started:
                raise RuntimeError("FakeKubelet already started")
            self._started = True
            directory = self._directory or Path(tempfile.mkdtemp(prefix="fake-kubelet-"))
            self._directory = directory
            try:
                self._prepare(directory)
                self._listen(self._port)
            except BaseException:
                # __exit__ will not run for a failed __enter__: leave nothing behind.
                self._closed = True
                if self._own_directory:
                    shutil.rmtree(directory, ignore_errors=True)
                raise
            return self

    def close(self) -> None:
        with self._lifecycle:
            if self._closed:
                return
            self._closed = True
            if self._server is not None:
                self._stop()
            if self._own_directory and self._directory is not None:
                shutil.rmtree(self._directory, ignore_errors=True)

    def go_down(self) -> None:
        """Stop listening and cut every open connection; the port refuses until come_up()."""
        with self._lifecycle:
            if self._server is None:
                raise RuntimeError("FakeKubelet is not up")
            self._stop()

    def come_up(self) -> None:
        """Listen again on the same port, with the same certificate, token and pods."""
        with self._lifecycle:
            if self._closed or not self._started:
                raise RuntimeError("FakeKubelet is not started or already closed")
            if self._server is not None:
                raise RuntimeError("FakeKubelet is already up")
            self._listen(self._port)

    def is_up(self) -> bool:
        # A method, not a property: a checker would narrow a property across go_down()/come_up().
        return self._server is not None

    # -- what a client needs ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        self._require_started()
        return f"https://{_HOST}:{self._port}"

    @property
    def port(self) -> int:
        self._require_started()
        return self._port

    @property
    def token(self) -> str:
        with self._lock:
            return self._token

    @property
    def token_file(self) -> Path:
        return self.serviceaccount_dir / "token"

    @property
    def serviceaccount_dir(self) -> Path:
        self._require_started()
        assert self._directory is not None
        return self._directory / "serviceaccount"

    @property
    def ca_file(self) -> Path:
        self._require_started()
        assert self._serving is not None
        return self._serving.ca_file

    def collector_flags(self, kubepods_roots: str, node: str, token_file: Path | None = None) -> list[str]:
        """`execlog run`'s flags for Kubernetes mode against this kubelet."""
        return [
            *("--kubelet-url", self.url),
            *("--kubelet-token-file", str(token_file or self.token_file)),
            *("--kubelet-ca-file", str(self.ca_file)),
            *("--kubepods-roots", kubepods_roots),
            *("--node-name", node),
        ]

    def rotate_token(self, new_token: str | None = None, *, keep_old: bool = False) -> str:
        """Replace the token, in `token_file` too; the old one is refused unless `keep_old`.

        A projected service-account token is rewritten in place before it expires, and the old
        one stays valid until its expiry: `keep_old=True` is that overlap, the default is after it.
        """
        token = new_token or f"fake-sa-token-{secrets.token_hex(16)}"
        with self._lock:
            self._accepted = {token, *self._accepted} if keep_old else {token}
            self._token = token
        if self._started:
            _replace_file(self.token_file, token)
        return token

    # -- pods ------------------------------------------------------------------------------------

    def set_pods(self, pods: Iterable[k8s.V1Pod | Mapping[str, Any]]) -> None:
        converted = [pod_to_dict(p) for p in pods]
        with self._lock:
            self._pods = {_uid(p): p for p in converted}

    def add_pod(self, pod: k8s.V1Pod | Mapping[str, Any]) -> None:
        """Add a pod, or replace the one with the same uid where it stands in the list."""
        converted = pod_to_dict(pod)
        with self._lock:
            self._pods[_uid(converted)] = converted

    def remove_pod(self, uid: str) -> None:
        with self._lock:
            if self._pods.pop(uid, None) is None:
                raise KeyError(f"no pod with uid {uid!r}")

    def pods(self) -> list[dict[str, Any]]:
        with self._lock:
            return json.loads(json.dumps(list(self._pods.values())))  # type: ignore[no-any-return]

    # -- failure modes ---------------------------------------------------------------------------

    def fail_with(
        self, status: int, body: bytes = b"", *, content_type: str = _TEXT, times: int | None = None
    ) -> None:
        """Answer authenticated requests with `status` and `body` (default: the status's phrase)."""
        if not 400 <= status <= 599:
            raise ValueError(f"fail_with wants an error status, not {status}")
        self._set_canned(status, body or HTTPStatus(status).phrase.encode(), content_type, times)

    def serve_malformed(
        self, body: bytes, *, status: int = 200, content_type: str = _JSON, times: int | None = None
    ) -> None:
        """Answer authenticated requests with `body` as if it were the PodList."""
        self._set_canned(status, body, content_type, times)

    def stall(self, seconds: float) -> None:
        """Hold each authenticated request `seconds` before answering (healthy() releases them)."""
        with self._changed:
            self._stall_seconds = seconds
            self._stall_generation += 1
            self._changed.notify_all()

    def healthy(self) -> None:
        """Clear fail_with, serve_malformed and stall; stalled requests are answered at once."""
        with self._changed:
            self._canned = None
            self._stall_seconds = 0.0
            self._stall_generation += 1
            self._changed.notify_all()

    # -- observability ---------------------------------------------------------------------------

    def stats(self) -> RequestStats:
        with self._lock:
            return self._stats()

    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> RequestStats:
        """Block until `n` requests in all have been answered since start.

        Counting from start, not from the call, leaves no race: read `stats().total`, act, then
        wait for that total plus what the action should cause.
        """
        return self.wait_for_stats(lambda stats: stats.total >= n, timeout, f"{n} requests answered")

    def wait_for_stats(
        self, predicate: Callable[[RequestStats], bool], timeout: float = 5.0, what: str = "the condition"
    ) -> RequestStats:
        """Block until `predicate(stats())` holds, e.g. a TLS handshake failure has been counted."""
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self._stats()), timeout):
                raise TimeoutError(f"waited {timeout}s for {what}; now {self._stats()}")
            return self._stats()

    def wait_for_next_request(self, timeout: float = 5.0) -> RequestRecord:
        """Block until one more request is answered than when called; return its record."""
        with self._changed:
            target = self._total + 1
            if not self._changed.wait_for(lambda: self._total >= target, timeout):
                raise TimeoutError(f"no request answered within {timeout}s")
            return self._log[-1 - (self._total - target)]

    # -- internals -------------------------------------------------------------------------------

    def _prepare(self, directory: Path) -> None:
        serving = self._tls or CertificateAuthority.create(
            directory / "pki", "fake-kubelet-ca"
        ).issue_server_cert(directory / "pki", "kubelet")
        self._serving = serving
        sa = directory / "serviceaccount"
        sa.mkdir(parents=True, exist_ok=True)
        # With serverTLSBootstrap the kubelet's serving cert is signed by the cluster CA, which is
        # what a service account's ca.crt holds.
        shutil.copyfile(serving.ca_file, sa / "ca.crt")
        (sa / "namespace").write_text(self._namespace)
        _replace_file(sa / "token", self._token)

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # the kubelet's default floor
        context.load_cert_chain(serving.cert_file, serving.key_file)
        # http.server speaks only HTTP/1.1; a client offering h2 must fall back, not guess.
        context.set_alpn_protocols(["http/1.1"])
        self._context = context

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("FakeKubelet is not started: use it as a context manager or call start()")

    def _listen(self, port: int) -> None:
        assert self._context is not None
        server = _Server((_HOST, port), self, self._context, self._idle_timeout)
        self._port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"fake-kubelet:{self._port}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()

    def _stop(self) -> None:
        server, thread = self._server, self._thread
        assert server is not None and thread is not None
        self._server = self._thread = None
        server.shutdown()
        with self._changed:
            server.closing = True
            self._changed.notify_all()  # stalled handlers give up
        dropped = server.drop_connections()
        server.server_close()  # closes the listener, then joins the handler threads
        thread.join()
        with self._changed:
            self._dropped += dropped
            self._changed.notify_all()

    def _set_canned(self, status: int, body: bytes, content_type: str, times: int | None) -> None:
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._canned = _Canned(status, bytes(body), content_type, times)

    def _stats(self) -> RequestStats:
        return RequestStats(
            total=self._total,
            by_status=MappingProxyType(dict(self._by_status)),
            in_flight=self._in_flight,
            connections_open=self._connections_open,
            tls_handshake_failures=self._tls_failures,
            connections_dropped=self._dropped,
        )

    def _authorized(self, authorization: str | None) -> bool:
        # The kubelet's bearer authenticator: scheme case-insensitive, the token is the second
        # space-separated field, anything after it ignored.
        parts = (authorization or "").split(" ", 2)
        if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
            return False
        presented = parts[1].encode()
        with self._lock:
            accepted = list(self._accepted)
        return any(hmac.compare_digest(presented, t.encode()) for t in accepted)

    def _respond(
        self, method: str, path: str, authorization: str | None, server: _Server
    ) -> _Response | None:
        """The answer to one request, or None when the server went down while it waited."""
        if not self._authorized(authorization):
            return _Response(401, _UNAUTHORIZED, _TEXT)
        with self._changed:
            if self._stall_seconds > 0:
                generation = self._stall_generation
                self._changed.wait_for(
                    lambda: server.closing or self._stall_generation != generation, self._stall_seconds
                )
            if server.closing:
                return None
            canned = self._canned
            if canned is not None:
                if canned.remaining is not None:
                    canned.remaining -= 1
                    if canned.remaining == 0:
                        self._canned = None
                return _Response(canned.status, canned.body, canned.content_type)
            if method != "GET":
                return _Response(405, _NOT_ALLOWED, _TEXT)
            if path.split("?", 1)[0] not in _PODS_PATHS:
                return _Response(404, _NOT_FOUND, _TEXT)
            items = list(self._pods.values())
        # Encoded outside the lock: a stored pod is only ever replaced, never changed in place.
        return _Response(200, _encode_podlist(items), _JSON)

    def _count(self, *, in_flight: int = 0, connections: int = 0) -> None:
        with self._changed:
            self._in_flight += in_flight
            self._connections_open += connections
            self._changed.notify_all()

    def _record(self, record: RequestRecord | None) -> None:
        """A request has left the handler: answered (with its record) or abandoned (None)."""
        with self._changed:
            self._in_flight -= 1
            if record is not None:
                self._total += 1
                self._by_status[record.status] += 1
                self._log.append(record)
            self._changed.notify_all()

    def _note_handshake_failure(self) -> None:
        with self._changed:
            self._tls_failures += 1
            self._changed.notify_all()

    def _note_error(self, text: str) -> None:
        with self._lock:
            self._errors.append(text)


@dataclass(slots=True)
class _Canned:
    status: int
    body: bytes
    content_type: str
    remaining: int | None


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    body: bytes
    content_type: str


class _Server(ThreadingHTTPServer):
    # Handler threads are joined in server_close(); drop_connections() runs first so that an idle
    # keep-alive client cannot hold that join up.
    daemon_threads = False
    block_on_close = True

    def __init__(
        self, address: tuple[str, int], owner: FakeKubelet, context: ssl.SSLContext, idle_timeout: float
    ) -> None:
        self.owner = owner
        self.context = context
        self.idle_timeout = idle_timeout
        self.closing = False
        self._open: dict[int, socket.socket] = {}
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the host's FQDN, a DNS lookup a test need not pay for.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self._host_port()

    def _host_port(self) -> tuple[str, int]:
        host, port = self.server_address[:2]
        return str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Keep a duplicate descriptor of every connection: shutdown() on it cuts the connection
        # whatever the handler thread is doing, even after the TLS wrapper took over the original.
        with self._open_lock:
            self._open[id(request)] = request.dup()
        self.owner._count(connections=1)
        super().process_request(request, client_address)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The handshake runs here, on the connection's own thread: done in accept() it would let
        # one slow or hostile client stall every other.
        request.settimeout(_HANDSHAKE_TIMEOUT)
        try:
            connection = self.context.wrap_socket(request, server_side=True)
        except ssl.SSLError:
            self.owner._note_handshake_failure()
            return
        except OSError:
            return  # the client left before the handshake; nothing to count
        try:
            connection.settimeout(self.idle_timeout)
            # typeshed types this argument as Self, which mypy cannot match from inside a subclass.
            self.RequestHandlerClass(connection, client_address, self)  # type: ignore[arg-type]
        finally:
            connection.close()

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            duplicate = self._open.pop(id(request), None)
        if duplicate is not None:  # else drop_connections() has closed and counted it
            duplicate.close()
            self.owner._count(connections=-1)
        super().shutdown_request(request)

    def drop_connections(self) -> int:
        with self._open_lock:
            duplicates = list(self._open.values())
            self._open.clear()
        for duplicate in duplicates:
            with contextlib.suppress(OSError):  # already closed by the peer
                duplicate.shutdown(socket.SHUT_RDWR)
            duplicate.close()
        self.owner._count(connections=-len(duplicates))
        return len(duplicates)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            return  # a client that hung up, or a connection go_down() cut: both are expected
        self.owner._note_error(traceback.format_exc())
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        owner = self.server.owner
        owner._count(in_flight=1)
        record = None
        try:
            response = owner._respond(self.command, self.path, self.headers.get("Authorization"), self.server)
            if response is None:
                self.close_connection = True
                return
            record = RequestRecord(
                method=self.command,
                path=self.path,
                status=response.status,
                authorization=self.headers.get("Authorization"),
                user_agent=self.headers.get("User-Agent"),
            )
            if self.command != "GET":
                # A request body we did not read would be parsed as the next request.
                self.close_connection = True
            self._write(response)
        finally:
            owner._record(record)

    def _write(self, response: _Response) -> None:
        try:
            # Not send_response(): the kubelet sends no Server header.
            self.send_response_only(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Date", self.date_time_string())
            self.send_header("Content-Length", str(len(response.body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(response.body)
        except OSError:
            self.close_connection = True  # the client gave up (a timeout) or go_down() cut us off

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read requests() and stats(); a line per request on stderr is noise


class _KubeJSON(k8s.ApiClient):
    """The client's serialiser, with timestamps as the API server writes them (metav1.Time)."""

    def sanitize_for_serialization(self, obj: Any) -> Any:
        if isinstance(obj, dt.datetime):
            return _utc(obj).strftime("%Y-%m-%dT%H:%M:%SZ")
        return super().sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]


def _encode_podlist(items: list[dict[str, Any]]) -> bytes:
    podlist = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}
    # Compact, with the trailing newline of Go's json.Encoder, as the kubelet writes it.
    return json.dumps(podlist, separators=(",", ":")).encode() + b"\n"


def _resources(qos_class: str) -> k8s.V1ResourceRequirements | None:
    if qos_class == "Guaranteed":
        amounts = {"cpu": "500m", "memory": "256Mi"}
        return k8s.V1ResourceRequirements(requests=amounts, limits=dict(amounts))
    if qos_class == "Burstable":
        return k8s.V1ResourceRequirements(requests={"cpu": "100m", "memory": "128Mi"})
    return None


def _uid(pod: Mapping[str, Any]) -> str:
    uid = (pod.get("metadata") or {}).get("uid")
    if not isinstance(uid, str) or not uid:
        raise ValueError("a served pod needs metadata.uid: the collector keys pods by it")
    return uid


def _utc(moment: dt.datetime) -> dt.datetime:
    # A naive datetime in a test means UTC; the API never carries local time.
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _replace_file(path: Path, text: str) -> None:
    # Write then rename, so a client reading the token never sees it half written.
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
