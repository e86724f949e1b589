"""fields.labels from pod labels and annotations, and the Kubernetes settings in the config."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from kubernetes.config import incluster_config

from collector.config import ConfigError, add_flags, build_config
from collector.k8s.labels import DEFAULT_LABELS, LabelRule, map_labels, parse_label_mapping
from collector.k8s.selector import EVERYTHING, parse_selector

# The reference record's labels, and the Coder pod metadata they come from.
REFERENCE_LABELS = {
    "organization_id": "default",
    "user_email": "jessie@coder.com",
    "user_id": "5e876e9a-121663f01ebd1522060d5270",
    "username": "jessie",
    "workspace_id": "621d2e52-a6987ef6c56210058ee2593c",
    "workspace_name": "main",
}
CODER_POD_LABELS = {
    "com.coder.username": "jessie",
    "com.coder.workspace.name": "main",
    "com.coder.workspace.id": "621d2e52-a6987ef6c56210058ee2593c",
    "com.coder.user.id": "5e876e9a-121663f01ebd1522060d5270",
    "com.coder.organization.id": "default",
    "app.kubernetes.io/name": "coder-workspace",
}
CODER_POD_ANNOTATIONS = {"com.coder.user.email": "jessie@coder.com", "kubernetes.io/config.source": "api"}


def args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_flags(parser)
    return parser.parse_args(list(argv))


def test_the_default_mapping_reproduces_the_reference_labels() -> None:
    assert map_labels(DEFAULT_LABELS, CODER_POD_LABELS, CODER_POD_ANNOTATIONS) == REFERENCE_LABELS


def test_the_e_mail_comes_from_the_annotation_not_a_label_of_the_same_name() -> None:
    labels = {**CODER_POD_LABELS, "com.coder.user.email": "label-value"}
    assert map_labels(DEFAULT_LABELS, labels, {})["username"] == "jessie"
    assert "user_email" not in map_labels(DEFAULT_LABELS, labels, {})


def test_a_missing_label_is_left_out() -> None:
    assert map_labels(DEFAULT_LABELS, {"com.coder.username": "zac"}, {}) == {"username": "zac"}


def test_parse_a_mapping() -> None:
    rules = parse_label_mapping(
        {"team": {"label": "example.com/team"}, "owner": {"annotation": "example.com/owner"}}
    )
    assert rules == (
        LabelRule("team", "label", "example.com/team"),
        LabelRule("owner", "annotation", "example.com/owner"),
    )
    assert parse_label_mapping({}) == ()
    assert parse_label_mapping(None) == ()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (["username"], "expected a mapping of output name"),
        ({"user.name": {"label": "a"}}, "output name 'user.name' must be letters, digits and _"),
        ({"1st": {"label": "a"}}, "output name '1st'"),
        ({"username": "com.coder.username"}, "username: expected {label: KEY} or {annotation: KEY}"),
        ({"username": {"lable": "a"}}, "username: expected {label: KEY}"),
        ({"username": {"label": "a", "annotation": "b"}}, "username: expected"),
        ({"username": {"label": "bad key!"}}, "username: 'bad key!' is not a valid label key"),
        ({"username": {"annotation": 7}}, "username: 7 is not a valid annotation key"),
    ],
)
def test_bad_mappings_say_which_entry_and_why(raw: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}").replace("(", r"\(")):
        parse_label_mapping(raw)


def test_kubernetes_defaults() -> None:
    k8s = build_config(args(), environ={}).kubernetes
    assert not k8s.enabled
    assert k8s.labels == DEFAULT_LABELS
    assert k8s.pod_selector == EVERYTHING
    assert k8s.pending_timeout_ms == 2000
    assert k8s.kubepods_roots == ("kubepods", "kubepods.slice")
    # the service account's files, where the kubernetes package's in-cluster config reads them
    assert k8s.kubelet_token_file == Path(incluster_config.SERVICE_TOKEN_FILENAME)
    assert k8s.kubelet_ca_file == Path(incluster_config.SERVICE_CERT_FILENAME)
    assert k8s.kubelet_insecure_skip_tls_verify is False


def test_kubernetes_settings_from_flags_env_and_yaml(tmp_path: Path) -> None:
    cfg = tmp_path / "execlog.yaml"
    cfg.write_text(
        "kubelet_url: https://10.0.0.5:10250\n"
        "pod_selector: com.coder.workspace.id, tier notin (infra)\n"
        "kubepods_roots: [kubepods, custom/kubepods.slice]\n"
        "kubelet_insecure_skip_tls_verify: true\n"
        "kubelet_poll_interval_s: 5\n"
        "labels:\n"
        "  username: {label: com.coder.username}\n"
        "  user_email: {annotation: com.coder.user.email}\n"
    )
    config = build_config(
        args("--config", str(cfg), "--pending-timeout-ms", "500"), environ={"EXECLOG_PENDING_MAX": "7"}
    )
    k8s = config.kubernetes
    assert k8s.enabled and k8s.kubelet_url == "https://10.0.0.5:10250"
    assert k8s.pod_selector == parse_selector("com.coder.workspace.id,tier notin (infra)")
    assert k8s.kubepods_roots == ("kubepods", "custom/kubepods.slice")
    assert k8s.kubelet_insecure_skip_tls_verify is True
    assert k8s.kubelet_poll_interval_s == 5.0
    assert (k8s.pending_timeout_ms, k8s.pending_max) == (500, 7)
    assert k8s.labels == (
        LabelRule("username", "label", "com.coder.username"),
        LabelRule("user_email", "annotation", "com.coder.user.email"),
    )
    assert config.sources["labels"] == f"config file {cfg}, key labels"
    assert build_config(args("--kubelet-insecure-skip-tls-verify"), environ={}).kubernetes.enabled is False


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (
            ["--kubelet-url", "http://10.0.0.5:10255"],
            {},
            "flag --kubelet-url: 'http://10.0.0.5:10255' is not an https",
        ),
        (
            ["--kubelet-url", "https://node:port"],
            {},
            "flag --kubelet-url: 'https://node:port': Port could not be",
        ),
        (
            [],
            {"EXECLOG_POD_SELECTOR": "a in b"},
            "env EXECLOG_POD_SELECTOR: label selector 'a in b': expected '\\('",
        ),
        (
            ["--kubepods-roots", "kubepods,,x"],
            {},
            "flag --kubepods-roots: 'kubepods,,x': each root is a path",
        ),
        (["--kubepods-roots", "../etc"], {}, "each root is a path below the cgroup root"),
        (["--pending-max", "0"], {}, "flag --pending-max: the pending queue must hold at least one"),
        (["--pending-timeout-ms", "-1"], {}, "the pending timeout must be between 0 and 600000 ms"),
        (["--kubelet-poll-interval-s", "0.1"], {}, "the kubelet poll interval must be between"),
        (["--deleted-pod-grace-s", "-5"], {}, "cannot be negative"),
    ],
)
def test_bad_kubernetes_settings_name_their_source(
    argv: list[str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(args(*argv), environ=env)


def test_a_bad_label_mapping_in_yaml_names_the_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("labels:\n  username: com.coder.username\n")
    with pytest.raises(ConfigError, match=f"config file {cfg}, key labels: username: expected"):
        build_config(args("--config", str(cfg)), environ={})
    cfg.write_text("label:\n  username: {label: com.coder.username}\n")
    with pytest.raises(ConfigError, match="unknown settings label"):
        build_config(args("--config", str(cfg)), environ={})


def test_labels_is_not_a_flag() -> None:
    with pytest.raises(SystemExit):
        args("--labels", "x")
