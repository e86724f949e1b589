"""cgroup names -> pod and container, for every driver, runtime and QoS class; the kubepods scan.

The names are the kubelet's, built by the same helpers that place the real runc containers of the
integration tests. cgroup v1 and v2 use the same names (the kubelet names a pod's cgroup once and
creates it in every hierarchy), so one table serves both; the integration tests run each driver in
a v1 and a v2 hierarchy.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from collector.k8s.cgroups import (
    CgroupRef,
    attribute_below,
    attribute_names,
    container_id_of,
    is_structural,
    pod_uid_of,
)
from collector.k8s.scan import root_ids, scan
from tests.support.cgroups import cgroupfs_path, new_container_id, new_pod_uid, systemd_path

UID = "0e7f6b4c-1d2a-4c3b-9a8e-7f6b5c4d3e2a"
CID = "a3" * 32
STATIC_UID = "6ab1c0f2a9b34e5c8d7e6f5a4b3c2d1e"  # static pods: an md5 of the manifest


def leaf_and_parent(path: str) -> tuple[str, str]:
    parts = path.strip("/").split("/")
    return parts[-1], parts[-2]


@pytest.mark.parametrize(
    ("qos", "runtime"),
    list(itertools.product(["guaranteed", "burstable", "besteffort"], ["cri-containerd", "crio", "docker"])),
)
def test_systemd_driver_every_qos_and_runtime(qos: str, runtime: str) -> None:
    path = systemd_path(UID, CID, qos, runtime)  # type: ignore[arg-type]
    assert attribute_names(*leaf_and_parent(path)) == CgroupRef(UID, CID)


@pytest.mark.parametrize("qos", ["guaranteed", "burstable", "besteffort"])
@pytest.mark.parametrize("leaf", [CID, f"crio-{CID}", f"docker-{CID}", f"cri-containerd-{CID}"])
def test_cgroupfs_driver_every_qos_plain_and_prefixed_ids(qos: str, leaf: str) -> None:
    # containerd and docker name the leaf by the bare id under cgroupfs; CRI-O prefixes crio-.
    path = cgroupfs_path(UID, leaf, qos)  # type: ignore[arg-type]
    assert attribute_names(*leaf_and_parent(path)) == CgroupRef(UID, CID)


def test_guaranteed_pods_sit_right_below_the_root() -> None:
    assert cgroupfs_path(UID, CID, "guaranteed").split("/")[1:3] == ["kubepods", f"pod{UID}"]
    assert pod_uid_of(f"kubepods-pod{UID.replace('-', '_')}.slice") == UID


@pytest.mark.parametrize(
    "name",
    [
        f"pod{STATIC_UID}",
        f"kubepods-pod{STATIC_UID}.slice",
        f"kubepods-besteffort-pod{STATIC_UID}.slice",
    ],
)
def test_static_pod_uids(name: str) -> None:
    assert pod_uid_of(name) == STATIC_UID


@pytest.mark.parametrize(
    "name",
    [
        f"pod{UID.replace('-', '_')}",  # systemd escaping in a cgroupfs name
        f"kubepods-burstable-pod{UID}.slice",  # dashes in a systemd name
        f"kubepods-guaranteed-pod{UID.replace('-', '_')}.slice",  # no such QoS level in names
        f"pod{UID}x",
        "pod",
        "kubepods.slice",
    ],
)
def test_not_a_pod_cgroup(name: str) -> None:
    assert pod_uid_of(name) is None


def test_a_process_in_the_pod_cgroup_itself_belongs_to_the_pod() -> None:
    assert attribute_names(f"pod{UID}", "burstable") == CgroupRef(UID)
    assert attribute_names(f"kubepods-pod{UID.replace('-', '_')}.slice", "kubepods.slice") == CgroupRef(UID)


def test_children_of_a_pod_that_are_not_containers_belong_to_the_pod() -> None:
    assert attribute_names(f"crio-conmon-{CID}.scope", f"kubepods-pod{UID.replace('-', '_')}.slice") == (
        CgroupRef(UID)
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (CID, CID),
        (f"cri-containerd-{CID}.scope", CID),
        (f"crio-{CID}.scope", CID),
        (f"docker-{CID}.scope", CID),
        ("0123456789ab", "0123456789ab"),  # docker's short ids
        ("0123456789a", None),
        (f"crio-conmon-{CID}.scope", None),
        ("init.scope", None),
        ("docker", None),
        (CID.upper(), None),
        (f"{CID}.slice", None),
    ],
)
def test_container_ids(name: str, expected: str | None) -> None:
    assert container_id_of(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "kubepods",
        "burstable",
        "besteffort",
        "kubepods.slice",
        "kubepods-burstable.slice",
        "kubepods-besteffort.slice",
    ],
)
def test_the_cgroups_above_pods_are_structural(name: str) -> None:
    assert is_structural(name)
    assert attribute_names(name, "kubepods") is None


def test_names_alone_cannot_place_a_nested_container() -> None:
    assert attribute_names("b" * 64, "docker") is None


class TestNested:
    outer = CgroupRef(UID, CID)

    def below(self, name: str, parent: str, ancestors: tuple[int, ...]) -> CgroupRef | None:
        known = {10: self.outer, 20: CgroupRef(UID)}  # the container's cgroup, the pod's
        return attribute_below(name, parent, ancestors, known.get)

    def test_docker_in_a_workspace(self) -> None:
        # <container>/docker/<nested id>: the ancestors are docker (unknown), then the container.
        assert self.below("b" * 64, "docker", (11, 10, 20)) == CgroupRef(UID, CID, "b" * 64)

    def test_nested_with_the_systemd_driver_inside(self) -> None:
        name = f"docker-{'c' * 64}.scope"
        assert self.below(name, "system.slice", (11, 10, 20)) == CgroupRef(UID, CID, "c" * 64)

    def test_the_innermost_container_wins(self) -> None:
        # <container>/docker/<id1>/docker/<id2>, id2's process
        assert self.below("d" * 64, "docker", (13, 12, 11, 10, 20)) == CgroupRef(UID, CID, "d" * 64)

    def test_a_sub_cgroup_of_a_nested_container_names_it_by_its_parent(self) -> None:
        assert self.below("init.scope", "e" * 64, (12, 11, 10)) == CgroupRef(UID, CID, "e" * 64)

    def test_a_plain_sub_cgroup_of_the_container_is_not_nested(self) -> None:
        assert self.below("init.scope", "cri-containerd-x.scope", (10, 20)) == self.outer
        assert self.below("build", "jobs", (11, 10, 20)) == self.outer

    def test_below_a_pod_but_no_container(self) -> None:
        assert self.below("x", "y", (21, 20)) == CgroupRef(UID)

    def test_nothing_known(self) -> None:
        assert self.below("b" * 64, "docker", (11, 12, 13)) is None


def make_tree(mount: Path, paths: list[str]) -> dict[str, int]:
    inodes = {}
    for path in paths:
        directory = mount / path.lstrip("/")
        directory.mkdir(parents=True, exist_ok=True)
        inodes[path] = os.stat(directory).st_ino
    return inodes


def test_scan_finds_pods_and_containers_of_both_drivers_and_not_below(tmp_path: Path) -> None:
    u1, u2, u3 = new_pod_uid(), new_pod_uid(), new_pod_uid()
    c1, c2, c3 = new_container_id(), new_container_id(), new_container_id()
    fs1 = cgroupfs_path(u1, c1, "burstable")
    fs2 = cgroupfs_path(u2, c2, "guaranteed")
    sd3 = systemd_path(u3, c3, "besteffort", "crio")
    nested = f"{fs1}/docker/{new_container_id()}"
    inodes = make_tree(tmp_path, [fs1, fs2, sd3, nested, "/kubepods/besteffort", "/other/pod" + u1])
    index = scan(tmp_path, ["kubepods", "kubepods.slice"], answers=7)
    assert index.answers == 7
    assert index.refs[inodes[fs1]] == CgroupRef(u1, c1)
    assert index.refs[inodes[fs2]] == CgroupRef(u2, c2)
    assert index.refs[inodes[sd3]] == CgroupRef(u3, c3)
    pod_dir = tmp_path / fs1.lstrip("/").rpartition("/")[0]
    assert index.refs[os.stat(pod_dir).st_ino] == CgroupRef(u1)
    assert inodes[nested] not in index.refs  # below a container: found through ancestors
    assert len(index.refs) == 6  # three pods, three containers; nothing outside the roots


def test_root_ids_only_of_roots_that_exist(tmp_path: Path) -> None:
    (tmp_path / "top" / "kubepods").mkdir(parents=True)
    ids = root_ids(tmp_path, ["top/kubepods", "kubepods.slice", "/top/kubepods/"])
    assert ids == {os.stat(tmp_path / "top" / "kubepods").st_ino}
    assert root_ids(tmp_path, ["kubepods"]) == frozenset()
