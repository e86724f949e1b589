"""The container harness itself: real runc containers in kubelet-style cgroups, and clean teardown."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from tests.support.cgroups import cgroup_mounts
from tests.support.containers import (
    MEMORY,
    UNIFIED,
    QoS,
    RuncContainer,
    RuncError,
    Runtime,
    busybox_rootfs,
    cgroupfs_path,
    new_container_id,
    new_pod_uid,
    remove_cgroup_tree,
    systemd_path,
    unique_top,
)
from tests.support.require import require_runc

# What runc 1.1.5 joins on this hybrid host; see the docstring of tests.support.containers.
V1_HIERARCHIES = {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "name=systemd"}

Driver = Literal["cgroupfs", "systemd"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runc")


@pytest.fixture
def top(request: pytest.FixtureRequest) -> Iterator[str]:
    driver: Driver = getattr(request, "param", "cgroupfs")
    top = unique_top(driver)
    yield top
    # A safety net only: tests assert that the containers' own teardown left nothing.
    remove_cgroup_tree("/" + private_root(top))


def private_root(top: str) -> str:
    return top.partition("/")[0]


def leftovers(top: str) -> list[Path]:
    return [d for mount, _ in cgroup_mounts().values() if (d := mount / private_root(top)).exists()]


def kubelet_path(driver: Driver, top: str, qos: QoS, runtime: Runtime, container_id: str) -> str:
    if driver == "systemd":
        return systemd_path(new_pod_uid(), container_id, qos, runtime, top=top)
    return cgroupfs_path(new_pod_uid(), container_id, qos, top=top)


def ns_inode(pid: int | str, kind: str) -> int:
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


def test_path_builders_follow_the_kubelet() -> None:
    uid, cid = "0f4e-aa", "c0ffee"
    assert cgroupfs_path(uid, cid) == "/kubepods/burstable/pod0f4e-aa/c0ffee"
    assert cgroupfs_path(uid, cid, "besteffort") == "/kubepods/besteffort/pod0f4e-aa/c0ffee"
    assert cgroupfs_path(uid, cid, "guaranteed", top="t/kubepods") == "/t/kubepods/pod0f4e-aa/c0ffee"
    assert systemd_path(uid, cid) == (
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f4e_aa.slice/cri-containerd-c0ffee.scope"
    )
    assert systemd_path(uid, cid, "guaranteed", "crio", top="/t/kubepods.slice/") == (
        "/t/kubepods.slice/kubepods-pod0f4e_aa.slice/crio-c0ffee.scope"
    )
    assert unique_top("systemd").endswith("/kubepods.slice")
    assert unique_top() != unique_top()


def test_busybox_rootfs_is_built_once(tmp_path: Path) -> None:
    require_runc()
    rootfs = busybox_rootfs(tmp_path / "root")
    first = os.stat(rootfs / "bin" / "busybox").st_ino
    assert busybox_rootfs(tmp_path / "root") == rootfs
    assert os.stat(rootfs / "bin" / "busybox").st_ino == first
    for applet in ("sh", "true", "echo", "sleep", "env", "cat", "ls", "mkdir", "kill"):
        assert os.readlink(rootfs / "bin" / applet) == "busybox"
    assert all((rootfs / d).is_dir() for d in ("proc", "dev", "tmp", "sys", "etc"))
    assert [p.name for p in tmp_path.iterdir()] == ["root"], "the staging directory is gone"
    (tmp_path / "other").mkdir()
    with pytest.raises(FileExistsError):
        busybox_rootfs(tmp_path / "other")


CASES = [
    ("cgroupfs", "burstable", "cri-containerd"),
    ("cgroupfs", "guaranteed", "cri-containerd"),
    ("systemd", "besteffort", "cri-containerd"),
    ("systemd", "guaranteed", "crio"),
    ("systemd", "burstable", "docker"),
]


@pytest.mark.runc
@pytest.mark.parametrize(("top", "qos", "runtime"), CASES, indirect=["top"])
def test_container_runs_in_a_kubelet_cgroup(workdir: Path, top: str, qos: QoS, runtime: Runtime) -> None:
    require_runc()
    driver: Driver = "systemd" if top.endswith(".slice") else "cgroupfs"
    container_id = new_container_id()
    path = kubelet_path(driver, top, qos, runtime, container_id)
    with RuncContainer(path, workdir, container_id=container_id) as c:
        for kind in ("pid", "mnt", "ipc", "uts"):
            assert ns_inode(c.pid, kind) != ns_inode("self", kind), kind

        cgroups = c.cgroups()
        assert {h for h, p in cgroups.items() if p == path} == {*V1_HIERARCHIES, UNIFIED}
        dirs = c.cgroup_dirs()
        assert dirs[MEMORY] == Path("/sys/fs/cgroup/memory" + path)
        assert dirs[UNIFIED] == Path("/sys/fs/cgroup/unified" + path)
        for hierarchy in (MEMORY, UNIFIED):
            assert str(c.pid) in (dirs[hierarchy] / "cgroup.procs").read_text().split()
            assert c.cgroup_id(hierarchy) == os.stat(dirs[hierarchy]).st_ino
        assert c.cgroup_id(MEMORY) != c.cgroup_id(UNIFIED)
        bundle = c.bundle

    assert leftovers(top) == []
    assert not bundle.exists()


@pytest.mark.runc
def test_exec_runs_in_the_container(workdir: Path, top: str) -> None:
    require_runc()
    path = cgroupfs_path(new_pod_uid(), new_container_id(), top=top)
    with RuncContainer(path, workdir) as c:
        done = c.exec(["sh", "-c", "echo hello; cat /proc/self/cgroup; readlink /proc/self/ns/pid"])
        lines = done.stdout.splitlines()
        assert lines[0] == "hello"
        # No cgroup namespace: the exec'd process sees host paths, and it joined v1 and v2 alike.
        assert any(line.endswith(f":memory:{path}") for line in lines)
        assert f"0::{path}" in lines
        assert lines[-1] == f"pid:[{ns_inode(c.pid, 'pid')}]"

        assert c.exec(["id", "-u"], user=(1000, 1000)).stdout.strip() == "1000"
        assert c.exec(["id", "-g"], user=(1000, 1000)).stdout.strip() == "1000"
        assert c.exec(["env"], env={"GREETING": "hi"}).stdout.count("GREETING=hi") == 1
        assert c.exec(["cat"], input="piped").stdout == "piped"
        assert c.exec(["false"], check=False).returncode == 1
        with pytest.raises(subprocess.CalledProcessError):
            c.exec(["false"])
    assert leftovers(top) == []


@pytest.mark.runc
@pytest.mark.parametrize("top", ["systemd"], indirect=True)
def test_nested_container_runs_below_the_workspace_cgroup(workdir: Path, top: str) -> None:
    require_runc()
    outer_id = new_container_id()
    path = systemd_path(new_pod_uid(), outer_id, top=top)
    with RuncContainer(path, workdir, container_id=outer_id) as outer:
        inner = outer.nested()
        nested_path = f"{path}/docker/{inner.container_id}"
        assert inner.cgroups()[MEMORY] == nested_path
        assert inner.cgroups()[UNIFIED] == nested_path
        for hierarchy in (MEMORY, UNIFIED):
            assert inner.cgroup_dirs()[hierarchy].parent.parent == outer.cgroup_dirs()[hierarchy]
        assert inner.exec(["echo", "inside"]).stdout == "inside\n"
        assert ns_inode(inner.pid, "pid") != ns_inode(outer.pid, "pid")
        # The outer's own processes stay where they were.
        assert outer.cgroups()[MEMORY] == path
    assert leftovers(top) == []


@pytest.mark.runc
def test_two_containers_of_one_pod_leave_nothing_behind(workdir: Path, top: str) -> None:
    require_runc()
    uid = new_pod_uid()
    first = cgroupfs_path(uid, new_container_id(), top=top)
    second = cgroupfs_path(uid, new_container_id(), top=top)
    with RuncContainer(first, workdir) as a, RuncContainer(second, workdir) as b:
        assert a.cgroup_dirs()[MEMORY].parent == b.cgroup_dirs()[MEMORY].parent
    assert leftovers(top) == []


@pytest.mark.runc
def test_teardown_tolerates_a_container_that_lost_its_state(workdir: Path, top: str) -> None:
    require_runc()
    path = cgroupfs_path(new_pod_uid(), new_container_id(), "besteffort", top=top)
    c = RuncContainer(path, workdir).start()
    # A host process moved into the container's cgroup, the other way a test may fill a cgroup.
    stray = subprocess.Popen(["sleep", "60"])
    try:
        (c.cgroup_dirs()[MEMORY] / "cgroup.procs").write_text(str(stray.pid))
        (c.cgroup_dirs()[UNIFIED] / "cgroup.procs").write_text(str(stray.pid))
        # As after a killed session: runc no longer knows the container.
        subprocess.run(["rm", "-rf", str(c.bundle / "state")], check=True)
        c.close()
        assert stray.wait(timeout=5) == -9
    finally:
        stray.kill()
        stray.wait()
    c.close()
    assert leftovers(top) == []


@pytest.mark.runc
def test_a_failed_start_says_why_and_leaves_nothing_behind(workdir: Path, top: str) -> None:
    require_runc()
    path = cgroupfs_path(new_pod_uid(), new_container_id(), top=top)
    c = RuncContainer(path, workdir, args=["/bin/no-such-program"])
    with pytest.raises(RuncError, match="no-such-program"):
        c.start()
    assert leftovers(top) == []
    assert not c.bundle.exists()
