"""manifests/ and the Dockerfile, checked offline: Kubernetes schemas, our config loader, and the
choices docs/kubernetes.md promises (least privilege, read-only host paths, probes, downward
API)."""

from __future__ import annotations

import argparse
import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from collector.config import OPTIONS, add_flags, build_config
from collector.k8s.labels import DEFAULT_LABELS
from collector.k8s.selector import parse_selector
from tests.support.require import REPO

MANIFESTS = REPO / "manifests"
# The oldest Kubernetes with GA gRPC probes, and the newest schema kubernetes-validate ships.
VERSIONS = ("1.27", "1.37")


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization(directory: Path = MANIFESTS) -> dict[str, Any]:
    [doc] = load(directory / "kustomization.yaml")
    return doc


def resources() -> Iterator[tuple[str, dict[str, Any]]]:
    for name in kustomization()["resources"]:
        for doc in load(MANIFESTS / name):
            yield name, doc


def by_kind(kind: str) -> dict[str, Any]:
    [doc] = [doc for _, doc in resources() if doc["kind"] == kind]
    return doc


def daemonset_container() -> dict[str, Any]:
    [container] = by_kind("DaemonSet")["spec"]["template"]["spec"]["containers"]
    return container


def apply_json6902(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """The `add` operations of RFC 6902 that the components use, as kustomize applies them."""
    result = copy.deepcopy(doc)
    for op in ops:
        assert op["op"] == "add", op
        *parents, last = op["path"].strip("/").split("/")
        target: Any = result
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if last == "-":
            target.append(op["value"])
        else:
            target[last] = op["value"]
    return result


@pytest.mark.parametrize("version", VERSIONS)
def test_every_resource_is_valid_against_the_kubernetes_schemas(version: str) -> None:
    seen = []
    for _, doc in resources():
        kubernetes_validate.validate(doc, version, strict=True)
        seen.append(doc["kind"])
    assert sorted(seen) == sorted(
        ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet", "Service"]
    )


def test_the_validation_would_catch_a_mistake() -> None:
    daemonset = copy.deepcopy(by_kind("DaemonSet"))
    daemonset["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilites"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, VERSIONS[-1], strict=True)


def test_the_kustomization_names_only_files_that_exist_and_one_namespace() -> None:
    k = kustomization()
    for name in k["resources"]:
        assert (MANIFESTS / name).is_file(), name
    [generator] = k["configMapGenerator"]
    for name in generator["files"]:
        assert (MANIFESTS / name).is_file(), name
    namespaced = [
        doc for _, doc in resources() if doc["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding")
    ]
    assert {doc["metadata"]["namespace"] for doc in namespaced} == {k["namespace"]}
    assert by_kind("Namespace")["metadata"]["name"] == k["namespace"]
    assert [image["name"] for image in k["images"]] == [daemonset_container()["image"]]


def config_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_flags(parser)
    return parser.parse_args(list(argv))


def test_the_configmap_config_loads_with_the_daemonsets_environment() -> None:
    container = daemonset_container()
    [generator] = kustomization()["configMapGenerator"]
    [config_file] = generator["files"]
    # The DaemonSet mounts the generated ConfigMap where its --config flag looks.
    volumes = {v["name"]: v for v in by_kind("DaemonSet")["spec"]["template"]["spec"]["volumes"]}
    [mount] = [m for m in container["volumeMounts"] if "configMap" in volumes[m["name"]]]
    assert volumes[mount["name"]]["configMap"]["name"] == generator["name"]
    args = container["args"]
    assert args[:1] == ["run"]
    assert args[args.index("--config") + 1] == f"{mount['mountPath']}/{config_file}"

    environ = {
        "NODE_NAME": "node-a",
        "NODE_IP": "10.0.0.7",
        # as the kubelet expands $(NODE_IP) in the manifest
        **{
            e["name"]: e["value"].replace("$(NODE_IP)", "10.0.0.7")
            for e in container["env"]
            if e["name"].startswith("EXECLOG_") and "value" in e
        },
    }
    config = build_config(config_args("--config", str(MANIFESTS / config_file)), environ=environ)
    k8s = config.kubernetes
    assert k8s.enabled and k8s.kubelet_url == "https://10.0.0.7:10250"
    assert k8s.labels == DEFAULT_LABELS
    assert k8s.pod_selector == parse_selector("com.coder.workspace.id")
    assert config.output.node_name == "node-a"
    # The config reads the host's cgroups where the DaemonSet mounts them.
    host_cgroup = volumes["host-cgroup"]["hostPath"]["path"]
    [cgroup_mount] = [m for m in container["volumeMounts"] if m["name"] == "host-cgroup"]
    assert host_cgroup == "/sys/fs/cgroup"
    assert config.capture.cgroup_root == Path(cgroup_mount["mountPath"])


def test_every_execlog_variable_of_the_daemonset_is_a_setting() -> None:
    variables = {env["name"] for env in daemonset_container()["env"] if env["name"].startswith("EXECLOG_")}
    assert variables <= {opt.env for opt in OPTIONS}
    assert {"EXECLOG_GRPC_LISTEN", "EXECLOG_GRPC_HEALTH_LISTEN", "EXECLOG_METRICS_LISTEN"} <= variables


def test_the_stream_needs_mtls_and_the_probes_use_the_health_only_port() -> None:
    container = daemonset_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["grpc"]["port"] == ports["grpc-health"]
    assert container["readinessProbe"]["grpc"]["port"] == ports["grpc-health"]
    config = yaml.safe_load((MANIFESTS / "execlog.yaml").read_text())
    mount = next(m for m in container["volumeMounts"] if m["name"] == "grpc-tls")["mountPath"]
    assert {config["grpc_tls_cert"], config["grpc_tls_key"], config["grpc_client_ca"]} == {
        f"{mount}/tls.crt",
        f"{mount}/tls.key",
        f"{mount}/ca.crt",
    }


def test_the_collector_is_not_privileged_and_adds_only_bpf_and_perfmon() -> None:
    spec = by_kind("DaemonSet")["spec"]["template"]["spec"]
    security = daemonset_container()["securityContext"]
    assert security["privileged"] is False
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["BPF", "PERFMON"]}
    assert spec.get("hostPID", False) is False
    assert spec.get("hostNetwork", False) is False
    assert spec.get("hostIPC", False) is False


def test_host_paths_are_only_the_cgroup_tree_and_read_only() -> None:
    spec = by_kind("DaemonSet")["spec"]["template"]["spec"]
    host = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    assert host == {"host-cgroup": "/sys/fs/cgroup"}
    for mount in daemonset_container()["volumeMounts"]:
        assert mount.get("readOnly") is True, mount


def test_node_name_and_ip_come_from_the_downward_api_and_every_node_is_covered() -> None:
    env = {e["name"]: e for e in daemonset_container()["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["NODE_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    names = list(env)
    # $(NODE_IP) is expanded only from variables defined before it
    assert names.index("NODE_IP") < names.index("EXECLOG_KUBELET_URL")
    assert env["EXECLOG_KUBELET_URL"]["value"] == "https://$(NODE_IP):10250"
    spec = by_kind("DaemonSet")["spec"]["template"]["spec"]
    assert spec["tolerations"] == [{"operator": "Exists"}]
    resources_ = daemonset_container()["resources"]
    assert set(resources_["requests"]) == set(resources_["limits"]) == {"cpu", "memory"}


def test_probes_use_grpc_health_and_the_service_exposes_the_stream() -> None:
    container = daemonset_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 50051, "grpc-health": 50052, "metrics": 9400}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["grpc"] == {"port": 50052}
    service = by_kind("Service")
    assert service["spec"]["clusterIP"] == "None"
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["grpc", "metrics"]
    labels = by_kind("DaemonSet")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_rbac_is_get_on_the_kubelets_pods_for_the_collectors_service_account() -> None:
    role, binding = by_kind("ClusterRole"), by_kind("ClusterRoleBinding")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["nodes/pods"], "verbs": ["get"]}]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    account = by_kind("ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "execlog"}
    ]
    assert (
        by_kind("DaemonSet")["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    )
    assert by_kind("Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


@pytest.mark.parametrize(
    ("component", "kind", "check"),
    [
        (
            "kernel-before-5.11",
            "DaemonSet",
            lambda d: (
                d["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["add"]
                == ["BPF", "PERFMON", "SYS_RESOURCE"]
            ),
        ),
        (
            "kubernetes-before-1.33",
            "ClusterRole",
            lambda d: [r["resources"] for r in d["rules"]] == [["nodes/pods"], ["nodes/proxy"]],
        ),
    ],
)
def test_components_patch_what_they_say_and_stay_valid(component: str, kind: str, check: Any) -> None:
    [doc] = load(MANIFESTS / "components" / component / "kustomization.yaml")
    assert doc["kind"] == "Component"
    [patch] = doc["patches"]
    base = by_kind(kind)
    assert patch["target"] == {"kind": kind, "name": base["metadata"]["name"]}
    patched = apply_json6902(base, yaml.safe_load(patch["patch"]))
    assert check(patched)
    for version in VERSIONS:
        kubernetes_validate.validate(patched, version, strict=True)


def dockerfile() -> list[str]:
    """Instructions, continuation lines joined."""
    text = (REPO / "Dockerfile").read_text()
    text = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_image_builds_the_bpf_object_and_runs_on_bookworm_with_libbpf1() -> None:
    lines = dockerfile()
    froms = [line.split()[1] for line in lines if line.startswith("FROM")]
    assert len(froms) == 2 and all(f.startswith("debian:bookworm") for f in froms)
    runtime = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM")) :]
    build = lines[: len(lines) - len(runtime)]
    assert any("make bpf" in line for line in build)
    assert any(re.search(r"\blibbpf1\b", line) for line in runtime if line.startswith("RUN"))
    assert not any(re.search(r"\b(clang|llvm|gcc|libbpf-dev)\b", line) for line in runtime)
    # every file the build copies from the repository exists
    for line in build:
        if line.startswith("COPY") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source
    [copied] = [line.split()[-1] for line in runtime if line.startswith("COPY") and "exec.bpf.o" in line]
    env = " ".join(line for line in runtime if line.startswith("ENV"))
    assert f"EXECLOG_BPF_OBJECT={copied}" in env
    assert any(line.startswith("ENTRYPOINT") and "execlog" in line for line in runtime)
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "bpf/*.o" in ignored
