"""The kubelet client and the pod watcher against the HTTPS kubelet stand-in."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from collector.k8s.kubelet import KubeletClient, KubeletError
from collector.k8s.labels import DEFAULT_LABELS
from collector.k8s.selector import EVERYTHING, parse_selector
from collector.k8s.watcher import MIN_REFRESH_S, PodWatcher
from tests.support.kubelet import (
    CertificateAuthority,
    FakeKubelet,
    container_id,
    forbidden_body,
    make_pod,
    podlist_body,
)

NODE = "node-1"
U1, U2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"


def pod(uid: str, name: str, labels: dict[str, str] | None = None) -> object:
    return make_pod(
        name, "ws", uid, NODE, labels=labels, containers=[("dev", container_id("containerd", name))]
    )


@pytest.fixture
def kubelet() -> Iterator[FakeKubelet]:
    with FakeKubelet(pods=[pod(U1, "alpha")]) as server:  # type: ignore[list-item]
        yield server


def client_for(kubelet: FakeKubelet, **kwargs: object) -> KubeletClient:
    return KubeletClient(kubelet.url, kubelet.token_file, kubelet.ca_file, timeout=2.0, **kwargs)  # type: ignore[arg-type]


def test_lists_the_pods_with_the_token_and_keeps_the_connection(kubelet: FakeKubelet) -> None:
    client = client_for(kubelet)
    for _ in range(3):
        podlist = client.pods()
    assert [p.metadata.uid for p in podlist.items] == [U1]
    status = podlist.items[0].status.container_statuses[0]
    assert status.container_id == container_id("containerd", "alpha")
    records = kubelet.requests()
    assert {r.authorization for r in records} == {f"Bearer {kubelet.token}"}
    assert {r.path for r in records} == {"/pods"}
    assert records[0].user_agent is not None and records[0].user_agent.startswith("execlog/")
    assert kubelet.stats().connections_open == 1  # kept alive, not one connection per poll
    client.close()


def test_a_rotated_token_file_is_read_again(kubelet: FakeKubelet) -> None:
    client = client_for(kubelet)
    client.pods()
    new = kubelet.rotate_token()  # the old token is refused from now on
    client.pods()
    assert kubelet.requests()[-1].authorization == f"Bearer {new}"


@pytest.mark.parametrize(
    ("fail", "kind", "message"),
    [
        (lambda k: k.rotate_token("x" * 20) and k.token_file.write_text("wrong"), "unauthorized", "401"),
        (
            lambda k: k.fail_with(403, forbidden_body("system:serviceaccount:execlog:execlog")),
            "forbidden",
            "403 Forbidden: Forbidden .user=system:serviceaccount:execlog:execlog.*needs get on nodes/pods",
        ),
        (lambda k: k.fail_with(500), "status", "HTTP 500"),
        (lambda k: k.serve_malformed(podlist_body([pod(U1, "alpha")])[:100]), "malformed", "not a PodList"),  # type: ignore[list-item]
        (
            lambda k: k.serve_malformed(b'{"kind":"PodList","items":[{"metadata":{"uid":5}}]}'),
            "malformed",
            "uid",
        ),
        (lambda k: k.serve_malformed(b"[]"), "malformed", "not a PodList"),
        (lambda k: k.go_down(), "unreachable", "Connection refused"),
    ],
)
def test_each_failure_is_a_kubelet_error_of_its_kind(
    kubelet: FakeKubelet, fail: Callable[[FakeKubelet], object], kind: str, message: str
) -> None:
    client = client_for(kubelet)
    client.pods()
    fail(kubelet)
    with pytest.raises(KubeletError, match=message) as info:
        client.pods()
    assert info.value.kind == kind


def test_a_missing_token_file(kubelet: FakeKubelet, tmp_path: Path) -> None:
    client = KubeletClient(kubelet.url, tmp_path / "none", kubelet.ca_file)
    with pytest.raises(KubeletError, match="cannot read token file") as info:
        client.pods()
    assert info.value.kind == "token"


def test_a_kubelet_certificate_from_another_ca_is_refused_unless_verification_is_off(
    kubelet: FakeKubelet, tmp_path: Path
) -> None:
    other = CertificateAuthority.create(tmp_path / "other", "other-ca")
    client = KubeletClient(kubelet.url, kubelet.token_file, other.cert_file)
    with pytest.raises(KubeletError, match="TLS") as info:
        client.pods()
    assert info.value.kind == "tls"
    assert KubeletClient(kubelet.url, kubelet.token_file, None).pods().items


def test_a_bad_ca_file_is_a_setup_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kubelet CA file"):
        KubeletClient("https://127.0.0.1:1", tmp_path / "t", tmp_path / "missing.crt")


def watcher_for(kubelet: FakeKubelet, **kwargs: object) -> PodWatcher:
    options: dict[str, object] = {
        "node": NODE,
        "rules": DEFAULT_LABELS,
        "selector": EVERYTHING,
        "cgroup_mount": Path("/nonexistent"),
        "roots": ("kubepods",),
        "poll_interval": 0.5,
        "grace": 60.0,
    }
    options.update(kwargs)
    return PodWatcher(client_for(kubelet), **options)  # type: ignore[arg-type]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_watcher_polls_and_asks_again_at_once_when_asked(kubelet: FakeKubelet) -> None:
    watcher = watcher_for(kubelet, poll_interval=30.0, selector=parse_selector("tier=web"))
    watcher.start()
    try:
        wait_until(lambda: watcher.snapshot.polled)
        assert not watcher.snapshot.pods[U1].selected
        kubelet.add_pod(pod(U2, "beta", {"tier": "web"}))
        start = time.monotonic()
        watcher.request_pods()
        wait_until(lambda: U2 in watcher.snapshot.pods)
        assert time.monotonic() - start < 2.0  # not the 30 s poll interval
        assert watcher.snapshot.pods[U2].selected
        assert watcher.snapshot.pods_answer >= 1
        # requests are rate limited: a burst of them is a few polls, not one each
        before, began = kubelet.stats().total, time.monotonic()
        for _ in range(50):
            watcher.request_pods()
            time.sleep(0.01)
        time.sleep(0.6)
        elapsed = time.monotonic() - began
        assert kubelet.stats().total - before <= elapsed / MIN_REFRESH_S + 1
    finally:
        watcher.stop()


def test_deleted_pods_resolve_for_the_grace_period_then_go(kubelet: FakeKubelet) -> None:
    watcher = watcher_for(kubelet, grace=1.0, poll_interval=0.5)
    watcher.start()
    try:
        wait_until(lambda: U1 in watcher.snapshot.pods)
        entry = watcher.snapshot.pods[U1]
        kubelet.remove_pod(U1)
        seen = kubelet.stats().total
        kubelet.wait_for_requests(seen + 1)
        time.sleep(0.1)
        assert watcher.snapshot.pods.get(U1) is entry  # deleted, still resolving
        wait_until(lambda: U1 not in watcher.snapshot.pods, timeout=4.0)
    finally:
        watcher.stop()


def test_an_outage_is_one_log_line_with_backoff_and_one_when_it_ends(
    kubelet: FakeKubelet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="execlog.kubelet")
    watcher = watcher_for(kubelet, poll_interval=0.5)
    watcher.start()
    try:
        wait_until(lambda: watcher.snapshot.polled)
        known = watcher.snapshot
        kubelet.fail_with(500)
        seen = kubelet.stats().total
        kubelet.wait_for_requests(seen + 3, timeout=10)
        assert watcher.snapshot.pods == known.pods  # known pods keep resolving
        kubelet.healthy()
        wait_until(lambda: watcher.counters.poll_failures >= 3 and "answers again" in caplog.text)
    finally:
        watcher.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "HTTP 500" in errors[0] and "the 1 pods known so far keep resolving" in errors[0]
    assert watcher.counters.poll_failures >= 3
