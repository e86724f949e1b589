"""`execlog run --kubelet-url …` end to end: real runc "pods", the HTTPS test kubelet, real stdout.

Each test runs the collector as a subprocess against containers at kubelet-style cgroup paths
below a private top (`execlog-test-<hex>/kubepods[.slice]`, given as `--kubepods-roots`), and reads
its JSON lines and its stop line (`execlog stopped: kernel_seen=… records=… resolved=…`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.collector import EXECLOG, RunningCollector, start
from tests.support.containers import (
    RuncContainer,
    cgroupfs_path,
    new_container_id,
    new_pod_uid,
    remove_cgroup_tree,
    systemd_path,
    unique_top,
)
from tests.support.kubelet import CODER_LABELS, FakeKubelet, make_pod
from tests.support.require import REPO, require_bpf, require_runc
from tests.support.tls import CertificateAuthority

NODE = "test-node"
REFERENCE_LABELS = {
    "username": "jessie",
    "workspace_name": "main",
    "workspace_id": "621d2e52-a6987ef6c56210058ee2593c",
    "user_id": "5e876e9a-121663f01ebd1522060d5270",
    "organization_id": "default",
    "user_email": "jessie@coder.com",
}
STATUS_SCHEME = {"cri-containerd": "containerd", "crio": "cri-o", "docker": "docker"}


@dataclass
class Pod:
    name: str
    uid: str
    container_id: str
    cgroups_path: str
    labels: dict[str, str]
    runtime: str
    container: RuncContainer | None = None

    def model(self) -> Any:
        return make_pod(
            self.name,
            "coder",
            self.uid,
            NODE,
            labels=self.labels,
            annotations={"com.coder.user.email": f"{self.labels.get('com.coder.username', 'x')}@coder.com"},
            containers=[("dev", f"{STATUS_SCHEME[self.runtime]}://{self.container_id}")],
        )

    def exec(self, *args: str) -> None:
        assert self.container is not None
        self.container.exec(list(args))


@dataclass
class Cluster:
    """One node's pods: a private cgroup top, runc containers in it, and the test kubelet."""

    driver: str
    top: str
    workdir: Path
    kubelet: FakeKubelet
    stack: contextlib.ExitStack
    pods: list[Pod] = field(default_factory=list)

    def pod(
        self,
        name: str,
        qos: str = "burstable",
        runtime: str = "cri-containerd",
        labels: dict[str, str] | None = None,
        listed: bool = True,
    ) -> Pod:
        uid, cid = new_pod_uid(), new_container_id()
        if self.driver == "systemd":
            path = systemd_path(uid, cid, qos, runtime, top=self.top)  # type: ignore[arg-type]
        else:
            # Under cgroupfs containerd and docker name the leaf by the bare id, CRI-O as crio-<id>.
            leaf = f"crio-{cid}" if runtime == "crio" else cid
            path = cgroupfs_path(uid, leaf, qos, top=self.top)  # type: ignore[arg-type]
        pod = Pod(name, uid, cid, path, dict(CODER_LABELS if labels is None else labels), runtime)
        if listed:
            self.kubelet.add_pod(pod.model())
        pod.container = self.stack.enter_context(RuncContainer(path, self.workdir, container_id=cid))
        self.pods.append(pod)
        return pod

    def run(self, tmp_path: Path, collector: list[RunningCollector], *flags: str, name: str = "run") -> Any:
        out = tmp_path / name
        out.mkdir()
        return start(collector, out, *self.kubelet.collector_flags(self.top, NODE), *flags)


def make_cluster(request: pytest.FixtureRequest, tmp_path: Path, driver: str) -> Iterator[Cluster]:
    require_bpf()
    require_runc()
    top = unique_top(driver)  # type: ignore[arg-type]
    with contextlib.ExitStack() as stack:
        kubelet = stack.enter_context(FakeKubelet())
        stack.callback(remove_cgroup_tree, "/" + top.partition("/")[0])
        yield Cluster(driver, top, tmp_path / "runc", kubelet, stack)


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    driver = getattr(request, "param", "cgroupfs")
    yield from make_cluster(request, tmp_path, driver)


def stop_summary(c: RunningCollector) -> dict[str, int]:
    assert c.stop() == 0
    m = re.search(r"execlog stopped: (.*)", c.err_path.read_text())
    assert m, c.err_path.read_text()
    return {k: int(v) for k, v in (pair.split("=") for pair in m.group(1).split())}


def execs(c: RunningCollector) -> list[dict[str, Any]]:
    return [d for d in c.lines() if d["msg"] == "exec"]


def wait_for_stderr(c: RunningCollector, text: str, timeout: float = 10.0, count: int = 1) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        err = c.err_path.read_text()
        if err.count(text) >= count:
            return err
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in stderr:\n{c.err_path.read_text()}")


def error_lines(c: RunningCollector) -> list[str]:
    return [line for line in c.err_path.read_text().splitlines() if " ERROR " in line]


@pytest.mark.parametrize(
    ("cluster", "hierarchy"), [("cgroupfs", "v1:memory"), ("systemd", "v2")], indirect=["cluster"]
)
def test_every_exec_in_a_pod_carries_its_pod_container_and_workspace_labels(
    cluster: Cluster, hierarchy: str, collector: list[RunningCollector], tmp_path: Path
) -> None:
    ws = cluster.pod("ws-jessie", "burstable", "cri-containerd")
    db = cluster.pod("ws-zac", "guaranteed", "crio", labels={**CODER_LABELS, "com.coder.username": "zac"})
    old = cluster.pod("ws-ann", "besteffort", "docker", labels={**CODER_LABELS, "com.coder.username": "ann"})
    infra = cluster.pod("infra", labels={"app": "ingress"})  # no com.coder.workspace.id
    c = cluster.run(
        tmp_path,
        collector,
        "--cgroup-hierarchy",
        hierarchy,
        "--pod-selector",
        "com.coder.workspace.id",
        "--pending-timeout-ms",
        "10000",
    )
    ws.exec("echo", "-n", "ws-tag")
    db.exec("echo", "db-tag")
    old.exec("echo", "old-tag")
    infra.exec("echo", "infra-tag")
    subprocess.run(["/bin/echo", "host-tag"], check=True, capture_output=True)
    nested = ws.container.nested() if ws.container else None
    assert nested is not None
    nested.exec(["echo", "nested-tag"])
    # A workspace whose pod reaches the kubelet only after its first exec: the exec waits.
    late = cluster.pod("ws-late", labels={**CODER_LABELS, "com.coder.username": "late"}, listed=False)
    late.exec("echo", "late-tag")
    time.sleep(0.5)
    cluster.kubelet.add_pod(late.model())

    doc = c.wait_for("ws-tag")
    fields = doc["fields"]
    assert fields["labels"] == REFERENCE_LABELS
    assert fields["cmdline"] == "echo -n ws-tag"
    assert fields["kubernetes"] == {
        "node": NODE,
        "namespace": "coder",
        "pod": "ws-jessie",
        "pod_uid": ws.uid,
        "container": "dev",
        "container_id": ws.container_id,
    }
    # The reference document's CloudWatch query reads these paths (log_processed is the record).
    log_processed = doc
    assert log_processed["fields"]["labels"]["username"] == "jessie"
    assert log_processed["fields"]["labels"]["workspace_name"] == "main"
    assert log_processed["fields"]["cmdline"] == "echo -n ws-tag"

    for pod, tag in ((db, "db-tag"), (old, "old-tag")):
        k8s = c.wait_for(tag)["fields"]["kubernetes"]
        assert (k8s["pod"], k8s["pod_uid"], k8s["container_id"]) == (pod.name, pod.uid, pod.container_id)
    assert c.wait_for("db-tag")["fields"]["labels"]["username"] == "zac"

    inner = c.wait_for("nested-tag")["fields"]
    assert inner["kubernetes"]["pod"] == "ws-jessie"
    assert inner["kubernetes"]["container_id"] == ws.container_id
    assert inner["kubernetes"]["nested_container_id"] == nested.container_id
    assert inner["labels"] == REFERENCE_LABELS

    late_doc = c.wait_for("late-tag")["fields"]
    assert late_doc["kubernetes"]["pod"] == "ws-late"
    assert "resolved" not in late_doc["kubernetes"]
    assert late_doc["labels"]["username"] == "late"

    summary = stop_summary(c)
    logged = execs(c)
    tags = [arg for d in logged for arg in d["fields"]["event"]["argv"]]
    assert "infra-tag" not in tags  # outside the selector
    assert "host-tag" not in tags  # outside pods
    for d in logged:
        assert d["fields"]["kubernetes"]["pod"] and "resolved" not in d["fields"]["kubernetes"], d
    assert summary["not_selected"] >= 1
    assert summary["held"] >= 1 and summary["unresolved"] == 0
    # Everything the kernel recorded reached user space, and every record is a pod's exec:
    # the host's execs, ours included, never passed the kernel's filter.
    assert summary["kernel_lost"] == 0
    assert summary["kernel_seen"] == summary["records"]
    assert summary["records"] == len(logged) + summary["not_selected"] + summary["outside_pods"]


def test_kubelet_failures_are_one_line_each_and_known_pods_keep_resolving(
    cluster: Cluster, collector: list[RunningCollector], tmp_path: Path
) -> None:
    ws = cluster.pod("ws-jessie")
    c = cluster.run(tmp_path, collector, "--kubelet-poll-interval-s", "0.5", "--pending-timeout-ms", "1000")
    wait_for_stderr(c, "1 pods on this node")
    ws.exec("echo", "before")
    assert c.wait_for("before")["fields"]["labels"] == REFERENCE_LABELS
    kubelet = cluster.kubelet

    kubelet.serve_malformed(b'{"kind":"PodList","items":[{"metadata":')
    kubelet.wait_for_requests(kubelet.stats().total + 3, timeout=15)
    ws.exec("echo", "during-malformed")
    assert c.wait_for("during-malformed")["fields"]["kubernetes"]["pod"] == "ws-jessie"
    kubelet.healthy()
    wait_for_stderr(c, "answers again")

    kubelet.go_down()
    wait_for_stderr(c, "cannot reach the kubelet")
    time.sleep(1.5)  # more failed polls, and no more lines about them
    ws.exec("echo", "during-outage")
    assert c.wait_for("during-outage")["fields"]["kubernetes"]["pod"] == "ws-jessie"
    # listed while the kubelet is down: the collector cannot know it yet
    newcomer = cluster.pod("ws-new", labels={**CODER_LABELS, "com.coder.username": "new"})
    newcomer.exec("echo", "unknown-during-outage")
    unknown = c.wait_for("unknown-during-outage", timeout=15)["fields"]
    assert unknown["kubernetes"]["resolved"] is False
    assert unknown["kubernetes"]["pod_uid"] == newcomer.uid  # from the cgroup name
    assert unknown["kubernetes"]["container_id"] == newcomer.container_id
    assert unknown["labels"] == {}

    kubelet.come_up()
    wait_for_stderr(c, "answers again after", timeout=40, count=2)
    newcomer.exec("echo", "after-recovery")
    recovered = c.wait_for("after-recovery")["fields"]
    assert recovered["labels"]["username"] == "new"
    assert "resolved" not in recovered["kubernetes"]

    assert c.proc.poll() is None
    errors = error_lines(c)
    assert len(errors) == 2, errors
    assert "not a PodList" in errors[0]
    assert "cannot reach the kubelet" in errors[1]
    assert "Traceback" not in c.err_path.read_text()
    summary = stop_summary(c)
    unresolved = [d for d in execs(c) if d["fields"]["kubernetes"].get("resolved") is False]
    # the newcomer's container init (sleep) and our exec, both while the kubelet was down
    assert [d["fields"]["event"]["argv"] for d in unresolved] == [
        ["sleep", "3600"],
        ["echo", "unknown-during-outage"],
    ]
    assert summary["unresolved"] == 2
    assert summary["kubelet_poll_failures"] >= 5


def test_a_wrong_token_is_one_clear_line_and_the_fixed_token_file_is_read_again(
    cluster: Cluster, collector: list[RunningCollector], tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("not-the-token")
    kubelet = cluster.kubelet
    out = tmp_path / "run"
    out.mkdir()
    # Started before any pod exists: the kubepods root appears later, and is filtered in then.
    c = start(
        collector,
        out,
        *kubelet.collector_flags(cluster.top, NODE, token_file=token),
        "--kubelet-poll-interval-s",
        "0.5",
        "--pending-timeout-ms",
        "500",
    )
    kubelet.wait_for_stats(lambda s: s.by_status.get(401, 0) >= 3, timeout=15)
    ws = cluster.pod("ws-jessie")
    wait_for_stderr(c, f"1 of {cluster.top} present")
    ws.exec("echo", "refused")
    assert c.wait_for("refused")["fields"]["kubernetes"]["resolved"] is False
    [line] = error_lines(c)
    assert "401 Unauthorized" in line and str(token) in line

    token.write_text(kubelet.token + "\n")
    wait_for_stderr(c, "answers again")
    ws.exec("echo", "accepted")
    assert c.wait_for("accepted")["fields"]["labels"] == REFERENCE_LABELS
    assert len(error_lines(c)) == 1
    assert c.proc.poll() is None
    stop_summary(c)


def daemonset_container() -> dict[str, Any]:
    [doc] = [d for d in yaml.safe_load_all((REPO / "manifests" / "daemonset.yaml").read_text()) if d]
    [container] = doc["spec"]["template"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def test_the_daemonsets_capabilities_config_and_read_only_mounts_suffice(
    cluster: Cluster, tmp_path: Path
) -> None:
    """As in the pod: only the manifest's capabilities, the ConfigMap's config file, a read-only
    root file system, and the host's cgroups through a read-only bind mount at another path."""
    security = daemonset_container()["securityContext"]
    caps = ",".join(f"+{cap.lower()}" for cap in security["capabilities"]["add"])
    assert security["capabilities"]["drop"] == ["ALL"] and security["readOnlyRootFilesystem"]
    ws = cluster.pod("ws-jessie")
    host_cgroup = tmp_path / "host-cgroup"
    host_cgroup.mkdir()
    script = (
        'mount --rbind /sys/fs/cgroup "$0" && mount -o remount,bind,ro "$0" '
        '&& mount -o remount,bind,ro / && exec "$@"'
    )
    kubelet = cluster.kubelet
    command = [
        *("unshare", "-m", "--propagation", "private", "sh", "-c", script, str(host_cgroup)),
        *("setpriv", f"--bounding-set=-all,{caps}", "--inh-caps=-all"),
        *EXECLOG,
        *("run", "--config", str(REPO / "manifests" / "execlog.yaml")),
        *("--cgroup-root", str(host_cgroup), "--kubepods-roots", cluster.top),
        *("--kubelet-token-file", str(kubelet.token_file), "--kubelet-ca-file", str(kubelet.ca_file)),
    ]
    # The DaemonSet's own settings, with its listen addresses moved to loopback (tests listen
    # nowhere else) and the mTLS files of the Secret issued by a test CA.
    pod_env = {
        e["name"]: e["value"] for e in daemonset_container()["env"] if e["name"].startswith("EXECLOG_")
    }
    for name in ("EXECLOG_GRPC_LISTEN", "EXECLOG_GRPC_HEALTH_LISTEN", "EXECLOG_METRICS_LISTEN"):
        assert pod_env[name].startswith("0.0.0.0:"), name
        pod_env[name] = "127.0.0.1:0"
    ca = CertificateAuthority.create(tmp_path / "pki", "siem-ca")
    server = ca.issue_server_cert(tmp_path / "pki", "execlog")
    tls = {
        "EXECLOG_GRPC_TLS_CERT": str(server.cert_file),
        "EXECLOG_GRPC_TLS_KEY": str(server.key_file),
        "EXECLOG_GRPC_CLIENT_CA": str(ca.cert_file),
    }
    out, err = tmp_path / "stdout.jsonl", tmp_path / "stderr.log"
    env = {**os.environ, **pod_env, **tls, "EXECLOG_KUBELET_URL": kubelet.url, "NODE_NAME": NODE}
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(command, stdout=stdout, stderr=stderr, cwd=REPO, env=env)
    try:
        deadline = time.monotonic() + 20
        while b"pods on this node" not in err.read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
            time.sleep(0.05)
        ws.exec("echo", "in-the-pod")
        deadline = time.monotonic() + 10
        while b"in-the-pod" not in out.read_bytes():
            assert time.monotonic() < deadline, err.read_text()
            time.sleep(0.05)
        # What the kubelet's grpc probe does: a plaintext health check on the health-only port.
        health_port = re.search(r"gRPC health \(only\) on 127\.0\.0\.1:(\d+)", err.read_text())
        assert health_port, err.read_text()
        with grpc.insecure_channel(f"127.0.0.1:{health_port.group(1)}") as channel:
            check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert check.status == health_pb2.HealthCheckResponse.SERVING
        assert "(mTLS)" in err.read_text()
    finally:
        proc.terminate()
        assert proc.wait(20) == 0, err.read_text()
    [doc] = [json.loads(line) for line in out.read_bytes().splitlines() if b"in-the-pod" in line]
    assert doc["fields"]["labels"] == REFERENCE_LABELS
    assert doc["fields"]["kubernetes"]["pod"] == "ws-jessie"
    text = err.read_text()
    # the in-kernel filter was set from the read-only view of the host's cgroups
    assert re.search(rf"below {host_cgroup}/(memory/|unified/)?{cluster.top} \(1 present\)", text), text
    assert "Traceback" not in text and " ERROR " not in text
