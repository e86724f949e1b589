"""The kubelet stand-in itself, driven by a plain urllib client that trusts its CA."""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.support.kubelet import (
    CertificateAuthority,
    FakeKubelet,
    ServerCert,
    container_id,
    forbidden_body,
    make_pod,
    podlist_body,
    self_signed_server_cert,
)

NODE = "node-1"
RFC3339_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    content_type: str | None
    body: bytes


def client_context(ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    # Python 3.13 turns this on by default; the certificates must pass it already.
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def get(
    kubelet: FakeKubelet,
    path: str = "/pods",
    *,
    authorization: str | None = "from token_file",
    ca_file: Path | None = None,
    method: str = "GET",
    timeout: float = 5.0,
) -> Reply:
    """One request the way a service-account client makes it: token read from the file."""
    headers = {"User-Agent": "execlog-test/1"}
    if authorization == "from token_file":
        headers["Authorization"] = f"Bearer {kubelet.token_file.read_text()}"
    elif authorization is not None:
        headers["Authorization"] = authorization
    request = urllib.request.Request(kubelet.url + path, headers=headers, method=method)
    context = client_context(ca_file or kubelet.ca_file)
    try:
        with urllib.request.urlopen(request, context=context, timeout=timeout) as response:
            return Reply(response.status, response.headers.get("Content-Type"), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.headers.get("Content-Type"), error.read())


def as_podlist(body: bytes) -> Any:
    """Parse as the collector would with the kubernetes client.

    Typed Any: the tests reach through fields the models declare Optional, and an assertion that
    trips on a None says more than a chain of narrowing would.
    """
    return k8s.ApiClient().deserialize(body.decode(), "V1PodList", "application/json")


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> ServerCert:
    # One certificate for the module keeps each test to the cost of a listen().
    directory = tmp_path_factory.mktemp("pki")
    return CertificateAuthority.create(directory, "kubelet-ca").issue_server_cert(directory, "kubelet")


@pytest.fixture
def kubelet(serving: ServerCert) -> Iterator[FakeKubelet]:
    with FakeKubelet(tls=serving) as server:
        yield server


def workspace_pod(name: str, runtime: str = "containerd", **kwargs: Any) -> Any:  # Any: see as_podlist
    return make_pod(
        name,
        "workspaces",
        f"uid-{name}",
        NODE,
        labels={"app.kubernetes.io/name": "workspace", "workspace/owner": name},
        annotations={"workspace/image-digest": f"sha256:{name}"},
        containers=[
            ("shell", container_id(runtime, f"{name}/shell")),
            ("sidecar", container_id(runtime, name)),
        ],
        **kwargs,
    )


# -- the PodList -----------------------------------------------------------------------------------


def test_pods_are_served_as_the_kubelet_serves_them(kubelet: FakeKubelet) -> None:
    pods = [
        workspace_pod("alice", "containerd"),
        workspace_pod("bob", "cri-o", qos_class="Guaranteed"),
        workspace_pod("carol", "docker", qos_class="BestEffort"),
    ]
    kubelet.set_pods(pods)

    reply = get(kubelet)

    assert reply.status == 200
    assert reply.content_type == "application/json"
    raw = json.loads(reply.body)
    assert list(raw)[:4] == ["kind", "apiVersion", "metadata", "items"]
    assert (raw["kind"], raw["apiVersion"], raw["metadata"]) == ("PodList", "v1", {})
    first = raw["items"][0]
    # The wire format is the API's camelCase, not the Python client's snake_case.
    assert first["spec"]["nodeName"] == NODE
    assert first["status"]["qosClass"] == "Burstable"
    assert first["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")
    assert RFC3339_SECONDS.match(first["status"]["containerStatuses"][0]["state"]["running"]["startedAt"])
    assert RFC3339_SECONDS.match(first["metadata"]["creationTimestamp"])

    podlist = as_podlist(reply.body)
    assert [p.metadata.name for p in podlist.items] == ["alice", "bob", "carol"]
    for pod, parsed in zip(pods, podlist.items, strict=True):
        assert parsed.metadata.uid == pod.metadata.uid
        assert parsed.metadata.namespace == "workspaces"
        assert parsed.metadata.labels == pod.metadata.labels
        assert parsed.metadata.annotations["workspace/image-digest"] == f"sha256:{pod.metadata.name}"
        assert parsed.metadata.annotations["kubernetes.io/config.source"] == "api"
        assert parsed.spec.node_name == NODE
        assert parsed.status.phase == "Running"
        assert parsed.status.qos_class == pod.status.qos_class
        assert [(c.name, c.container_id, c.ready) for c in parsed.status.container_statuses] == [
            (c.name, c.container_id, True) for c in pod.status.container_statuses
        ]
        assert parsed.status.container_statuses[0].state.running.started_at.tzinfo is not None
    assert {p.status.container_statuses[0].container_id.split("://")[0] for p in podlist.items} == {
        "containerd",
        "cri-o",
        "docker",
    }
    assert podlist.items[1].spec.containers[0].resources.limits == {"cpu": "500m", "memory": "256Mi"}
    assert podlist.items[2].spec.containers[0].resources is None


def test_body_is_exactly_podlist_body(kubelet: FakeKubelet) -> None:
    pods = [workspace_pod("alice")]
    kubelet.set_pods(pods)
    assert get(kubelet).body == podlist_body(pods)


@pytest.mark.parametrize("path", ["/pods/", "/pods?fieldSelector=ignored"])
def test_pods_path_variants(kubelet: FakeKubelet, path: str) -> None:
    kubelet.set_pods([workspace_pod("alice")])
    reply = get(kubelet, path)
    assert reply.status == 200
    assert [p.metadata.name for p in as_podlist(reply.body).items] == ["alice"]


def test_empty_node_serves_empty_items(kubelet: FakeKubelet) -> None:
    reply = get(kubelet)
    assert reply.status == 200
    assert json.loads(reply.body)["items"] == []
    assert as_podlist(reply.body).items == []


def test_pod_changes_show_in_the_next_answer(kubelet: FakeKubelet) -> None:
    kubelet.set_pods([workspace_pod("alice"), workspace_pod("bob")])
    kubelet.add_pod(workspace_pod("carol"))
    restarted = workspace_pod("alice")
    restarted.status.container_statuses[0].container_id = container_id("containerd", "alice/shell#2")
    kubelet.add_pod(restarted)  # same uid: replaced where it stands
    kubelet.remove_pod("uid-bob")
    with pytest.raises(KeyError):
        kubelet.remove_pod("uid-bob")

    items = as_podlist(get(kubelet).body).items

    assert [p.metadata.name for p in items] == ["alice", "carol"]
    assert items[0].status.container_statuses[0].container_id == container_id("containerd", "alice/shell#2")
    assert [p["metadata"]["name"] for p in kubelet.pods()] == ["alice", "carol"]


def test_pod_is_snapshotted_when_added(kubelet: FakeKubelet) -> None:
    pod = workspace_pod("alice")
    kubelet.add_pod(pod)
    pod.metadata.labels["changed"] = "after add"
    assert "changed" not in as_podlist(get(kubelet).body).items[0].metadata.labels


def test_a_pod_given_as_json_is_served_as_is(kubelet: FakeKubelet) -> None:
    odd = {
        "metadata": {"name": "static", "namespace": "kube-system", "uid": "abc"},
        "spec": {"containers": []},
    }
    kubelet.set_pods([odd])
    assert json.loads(get(kubelet).body)["items"] == [odd]
    with pytest.raises(ValueError, match="uid"):
        kubelet.add_pod({"metadata": {"name": "no-uid"}})


def test_starting_init_and_debug_containers(kubelet: FakeKubelet) -> None:
    kubelet.set_pods(
        [
            make_pod("new", "workspaces", "uid-new", NODE, containers=[("shell", None)], phase="Pending"),
            make_pod(
                "debugged",
                "workspaces",
                "uid-debugged",
                NODE,
                containers=[("shell", container_id("cri-o", "d/shell"))],
                init_containers=[("setup", container_id("cri-o", "d/setup"))],
                ephemeral_containers=[("debugger-x7k2", container_id("cri-o", "d/debug"))],
            ),
        ]
    )
    new, debugged = as_podlist(get(kubelet).body).items

    waiting = new.status.container_statuses[0]
    assert waiting.container_id is None
    assert waiting.state.waiting.reason == "ContainerCreating"
    assert not waiting.ready
    assert new.status.pod_ip is None

    init = debugged.status.init_container_statuses[0]
    assert init.container_id == container_id("cri-o", "d/setup")
    assert init.state.terminated.reason == "Completed"
    assert init.state.terminated.finished_at <= debugged.status.container_statuses[0].state.running.started_at
    debug = debugged.status.ephemeral_container_statuses[0]
    assert (debug.name, debug.container_id) == ("debugger-x7k2", container_id("cri-o", "d/debug"))
    assert debugged.spec.ephemeral_containers[0].name == "debugger-x7k2"


def test_make_pod_refuses_what_the_api_would_not_say() -> None:
    with pytest.raises(ValueError, match="qos_class"):
        make_pod("p", "ns", "u", NODE, qos_class="Premium")
    with pytest.raises(ValueError, match="phase"):
        make_pod("p", "ns", "u", NODE, phase="Sleeping")
    with pytest.raises(ValueError, match="runtime"):
        container_id("rkt", "x")


def test_other_paths_and_methods(kubelet: FakeKubelet) -> None:
    assert get(kubelet, "/stats/summary") == Reply(404, "text/plain; charset=utf-8", b"404 page not found\n")
    assert get(kubelet, "/pods", method="POST").status == 405
    # Even a path that does not exist wants a token first.
    assert get(kubelet, "/stats/summary", authorization=None).status == 401


# -- authentication --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", "Bearer ", "Basic dXNlcjpwYXNz", "Token fake"],
    ids=["missing", "wrong", "empty", "basic", "other-scheme"],
)
def test_bad_credentials_get_401(kubelet: FakeKubelet, authorization: str | None) -> None:
    kubelet.set_pods([workspace_pod("alice")])
    reply = get(kubelet, authorization=authorization)
    assert reply == Reply(401, "text/plain; charset=utf-8", b"Unauthorized")
    assert kubelet.stats().by_status == {401: 1}


def test_bearer_scheme_is_case_insensitive(kubelet: FakeKubelet) -> None:
    assert get(kubelet, authorization=f"bearer {kubelet.token}").status == 200


def test_token_rotation(kubelet: FakeKubelet) -> None:
    old = kubelet.token
    new = kubelet.rotate_token(keep_old=True)
    assert kubelet.token_file.read_text() == new == kubelet.token
    assert get(kubelet, authorization=f"Bearer {old}").status == 200
    assert get(kubelet).status == 200

    newer = kubelet.rotate_token("rotated-token")
    assert newer == "rotated-token" == kubelet.token_file.read_text()
    assert get(kubelet, authorization=f"Bearer {old}").status == 401
    assert get(kubelet, authorization=f"Bearer {new}").status == 401
    assert get(kubelet).status == 200


def test_explicit_token_and_service_account_files(serving: ServerCert) -> None:
    with FakeKubelet("my-token", tls=serving, namespace="execlog-system") as kubelet:
        sa = kubelet.serviceaccount_dir
        assert kubelet.token == "my-token" == kubelet.token_file.read_text()
        assert kubelet.token_file == sa / "token"
        assert (sa / "namespace").read_text() == "execlog-system"
        assert (sa / "ca.crt").read_bytes() == kubelet.ca_file.read_bytes()


# -- failure modes ---------------------------------------------------------------------------------


def test_fail_with_until_healthy(kubelet: FakeKubelet) -> None:
    kubelet.set_pods([workspace_pod("alice")])
    kubelet.fail_with(500)
    assert get(kubelet) == Reply(500, "text/plain; charset=utf-8", b"Internal Server Error")
    assert get(kubelet).status == 500
    assert get(kubelet, authorization="Bearer wrong").status == 401  # authn still comes first
    kubelet.healthy()
    assert get(kubelet).status == 200
    assert kubelet.stats().by_status == {500: 2, 401: 1, 200: 1}


def test_fail_with_a_number_of_times(kubelet: FakeKubelet) -> None:
    user = "system:serviceaccount:execlog:execlog"
    kubelet.fail_with(403, forbidden_body(user), times=2)
    reply = get(kubelet)
    assert (reply.status, reply.content_type) == (403, "text/plain; charset=utf-8")
    assert reply.body.decode() == (
        "Forbidden (user=system:serviceaccount:execlog:execlog, verb=get, resource=nodes, subresource=proxy)"
    )
    assert get(kubelet).status == 403
    assert get(kubelet).status == 200


def test_fail_with_refuses_a_success_status(kubelet: FakeKubelet) -> None:
    with pytest.raises(ValueError, match="error status"):
        kubelet.fail_with(200)


def test_truncated_json(kubelet: FakeKubelet) -> None:
    whole = podlist_body([workspace_pod("alice"), workspace_pod("bob")])
    kubelet.serve_malformed(whole[: len(whole) // 2])
    reply = get(kubelet)
    assert (reply.status, reply.content_type) == (200, "application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(reply.body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","code":500}',
        b'{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[1,"pod",null,[]]}',
        b'{"kind":"PodList","apiVersion":"v1","metadata":{},"items":{"uid":"not a list"}}',
        b"[]",
    ],
    ids=["status-object", "items-not-objects", "items-not-a-list", "array"],
)
def test_json_that_is_not_a_podlist(kubelet: FakeKubelet, body: bytes) -> None:
    kubelet.serve_malformed(body)
    reply = get(kubelet)
    assert reply == Reply(200, "application/json", body)
    json.loads(reply.body)  # valid JSON, wrong shape: the kubernetes client will not take it
    with pytest.raises(ValueError, match="validation error"):
        as_podlist(reply.body)


def test_items_that_are_empty_objects(kubelet: FakeKubelet) -> None:
    # Valid to the schema, useless to the collector: it must skip such a pod, not crash on it.
    kubelet.serve_malformed(b'{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[{}]}')
    (pod,) = as_podlist(get(kubelet).body).items
    assert (pod.metadata, pod.status) == (None, None)


def test_malformed_with_another_content_type_once(kubelet: FakeKubelet) -> None:
    kubelet.serve_malformed(b"<html>502 Bad Gateway</html>", status=502, content_type="text/html", times=1)
    assert get(kubelet) == Reply(502, "text/html", b"<html>502 Bad Gateway</html>")
    assert get(kubelet).status == 200


def test_stall_trips_a_client_timeout_until_healthy(kubelet: FakeKubelet) -> None:
    kubelet.stall(30)
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        get(kubelet, timeout=0.2)
    kubelet.healthy()  # also answers the stalled request at once, to a client that has gone
    assert get(kubelet, timeout=2).status == 200


# -- outage ----------------------------------------------------------------------------------------


def test_outage_refuses_connections_then_recovers_on_the_same_url(kubelet: FakeKubelet) -> None:
    kubelet.set_pods([workspace_pod("alice")])
    url, port = kubelet.url, kubelet.port
    assert get(kubelet).status == 200

    kubelet.go_down()
    assert not kubelet.is_up()
    with pytest.raises(urllib.error.URLError) as refused:
        get(kubelet)
    assert isinstance(refused.value.reason, ConnectionRefusedError)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    with pytest.raises(RuntimeError):
        kubelet.go_down()

    kubelet.come_up()
    assert kubelet.is_up()
    assert (kubelet.url, kubelet.port) == (url, port)
    assert [p.metadata.name for p in as_podlist(get(kubelet).body).items] == ["alice"]
    with pytest.raises(RuntimeError):
        kubelet.come_up()


def test_port_in_use_fails_start_cleanly(serving: ServerCert) -> None:
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        port = squatter.getsockname()[1]
        kubelet = FakeKubelet(tls=serving, port=port)
        with pytest.raises(OSError):
            kubelet.start()
        with pytest.raises(RuntimeError):
            kubelet.come_up()


def test_outage_cuts_keep_alive_connections(kubelet: FakeKubelet) -> None:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", kubelet.port, context=client_context(kubelet.ca_file), timeout=5
    )
    headers = {"Authorization": f"Bearer {kubelet.token}"}
    try:
        for _ in range(2):  # the second request reuses the connection
            connection.request("GET", "/pods", headers=headers)
            response = connection.getresponse()
            assert response.status == 200
            response.read()
        kubelet.go_down()
        assert kubelet.stats().connections_dropped == 1
        with pytest.raises((OSError, http.client.HTTPException)):
            connection.request("GET", "/pods", headers=headers)
            connection.getresponse()
    finally:
        connection.close()
    kubelet.come_up()
    assert get(kubelet).status == 200


def test_outage_cuts_a_stalled_request(kubelet: FakeKubelet) -> None:
    kubelet.stall(30)
    failures: list[BaseException] = []

    def poll() -> None:
        try:
            get(kubelet, timeout=10)
        except (OSError, http.client.HTTPException) as error:
            failures.append(error)

    poller = threading.Thread(target=poll)
    poller.start()
    kubelet.wait_for_stats(lambda stats: stats.in_flight == 1, what="the stalled request")
    kubelet.go_down()
    poller.join(timeout=5)
    assert not poller.is_alive()
    assert len(failures) == 1
    stats = kubelet.stats()
    assert (stats.total, stats.in_flight, stats.connections_open, stats.connections_dropped) == (0, 0, 0, 1)


# -- TLS -------------------------------------------------------------------------------------------


def test_default_pki_is_made_and_trusted(tmp_path: Path) -> None:
    with FakeKubelet() as kubelet:
        assert kubelet.url.startswith("https://127.0.0.1:")
        assert get(kubelet).status == 200
        directory = kubelet.ca_file.parent
    assert not directory.exists()  # its temporary directory went with it


def test_client_trusting_another_ca_refuses_the_server(kubelet: FakeKubelet, tmp_path: Path) -> None:
    other = CertificateAuthority.create(tmp_path, "other-ca")
    with pytest.raises(urllib.error.URLError) as refused:
        get(kubelet, ca_file=other.cert_file)
    assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)
    assert "unable to get local issuer certificate" in str(refused.value.reason)
    kubelet.wait_for_stats(lambda stats: stats.tls_handshake_failures == 1, what="the failed handshake")
    assert kubelet.stats().total == 0


def test_server_with_a_cert_from_another_ca(serving: ServerCert, tmp_path: Path) -> None:
    rogue = CertificateAuthority.create(tmp_path, "rogue-ca").issue_server_cert(tmp_path, "kubelet")
    with FakeKubelet(tls=rogue) as kubelet:
        assert kubelet.ca_file == rogue.ca_file
        with pytest.raises(urllib.error.URLError) as refused:
            get(kubelet, ca_file=serving.ca_file)
        assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)


def test_self_signed_kubelet_cert(tmp_path: Path) -> None:
    with FakeKubelet(tls=self_signed_server_cert(tmp_path, NODE)) as kubelet:
        assert get(kubelet).status == 200  # a client handed that very CA trusts it
        with pytest.raises(urllib.error.URLError) as refused:
            urllib.request.urlopen(kubelet.url + "/pods", context=client_context(None), timeout=5)
        assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)


def test_cert_for_another_host_name_is_refused(serving: ServerCert, tmp_path: Path) -> None:
    ca = CertificateAuthority.create(tmp_path, "cluster-ca")
    elsewhere = ca.issue_server_cert(tmp_path, NODE, hosts=("node-1.cluster.local", "10.0.0.7"))
    with FakeKubelet(tls=elsewhere) as kubelet:
        with pytest.raises(urllib.error.URLError) as refused:
            get(kubelet)
        assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)
        assert "match" in str(refused.value.reason)  # the chain is fine; the name is not


def test_localhost_is_in_the_cert(kubelet: FakeKubelet) -> None:
    url = kubelet.url.replace("127.0.0.1", "localhost")
    request = urllib.request.Request(url + "/pods", headers={"Authorization": f"Bearer {kubelet.token}"})
    with urllib.request.urlopen(request, context=client_context(kubelet.ca_file), timeout=5) as response:
        assert response.status == 200


# -- observability ---------------------------------------------------------------------------------


def test_wait_for_a_poll_without_sleeping(kubelet: FakeKubelet) -> None:
    seen = kubelet.stats().total
    poller = threading.Thread(target=lambda: [get(kubelet) for _ in range(3)])
    poller.start()
    stats = kubelet.wait_for_requests(seen + 3, timeout=5)
    poller.join()
    assert stats.total == 3
    assert stats.by_status == {200: 3}


def test_wait_for_next_request_returns_its_record(kubelet: FakeKubelet) -> None:
    # A client polling on its own schedule, as the collector does.
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            get(kubelet, "/pods/")

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        record = kubelet.wait_for_next_request(timeout=5)
    finally:
        stop.set()
        poller.join()
    assert (record.method, record.path, record.status) == ("GET", "/pods/", 200)
    assert record.authorization == f"Bearer {kubelet.token}"
    assert record.user_agent == "execlog-test/1"


def test_waiting_too_long_raises(kubelet: FakeKubelet) -> None:
    with pytest.raises(TimeoutError, match="1 requests answered"):
        kubelet.wait_for_requests(1, timeout=0.05)
    with pytest.raises(TimeoutError):
        kubelet.wait_for_next_request(timeout=0.05)


def test_requests_log(kubelet: FakeKubelet) -> None:
    get(kubelet)
    get(kubelet, authorization=None)
    assert [(r.path, r.status, r.authorization is not None) for r in kubelet.requests()] == [
        ("/pods", 200, True),
        ("/pods", 401, False),
    ]


def test_concurrent_polls_while_pods_change(kubelet: FakeKubelet) -> None:
    names: list[list[str]] = []
    lock = threading.Lock()

    def poll() -> None:
        for _ in range(5):
            items = as_podlist(get(kubelet).body).items
            with lock:
                names.append([p.metadata.name for p in items])

    pollers = [threading.Thread(target=poll) for _ in range(8)]
    for poller in pollers:
        poller.start()
    for i in range(20):
        kubelet.add_pod(workspace_pod(f"ws-{i}"))
    for poller in pollers:
        poller.join()
    assert len(names) == 40
    # Every answer is a prefix of the final list: pods appear whole and in order.
    final = [f"ws-{i}" for i in range(20)]
    assert all(seen == final[: len(seen)] for seen in names)
    assert kubelet.stats().by_status == {200: 40}


def test_close_leaves_no_threads_behind(serving: ServerCert) -> None:
    with FakeKubelet(tls=serving) as kubelet:
        connection = http.client.HTTPSConnection(
            "127.0.0.1", kubelet.port, context=client_context(kubelet.ca_file), timeout=5
        )
        connection.request("GET", "/pods", headers={"Authorization": f"Bearer {kubelet.token}"})
        connection.getresponse().read()  # an idle keep-alive connection stays open
    connection.close()
    leftovers = [
        t.name
        for t in threading.enumerate()
        if "process_request_thread" in t.name or t.name.startswith(f"fake-kubelet:{kubelet.port}")
    ]
    assert leftovers == []
