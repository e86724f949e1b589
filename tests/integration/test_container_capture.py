"""Execs inside real runc containers at kubelet-style cgroup paths, tracked in cgroup v1 and v2."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.bpf.hierarchy import resolve_hierarchy
from collector.bpf.program import ExecProgram, ProgramOptions
from collector.event import BootClock, ExecEvent, decode
from tests.integration.conftest import OBJECT
from tests.support.containers import (
    MEMORY,
    UNIFIED,
    RuncContainer,
    cgroupfs_path,
    new_container_id,
    new_pod_uid,
    remove_cgroup_tree,
    systemd_path,
    unique_top,
)
from tests.support.require import require_bpf, require_runc


@pytest.fixture
def top(request: pytest.FixtureRequest) -> Iterator[str]:
    driver = request.node.callspec.params["driver"]
    top = unique_top(driver)
    yield top
    remove_cgroup_tree("/" + top.split("/")[0])


def wait_for(program: ExecProgram, tag: str, timeout: float = 10.0) -> ExecEvent:
    clock = BootClock()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for raw in program.read(50):
            ev = decode(raw, clock.offset_ns())
            if tag in ev.argv:
                return ev
    raise AssertionError(f"no exec with {tag}")


@pytest.mark.parametrize("hierarchy", ["v1:memory", "v2"])
@pytest.mark.parametrize("driver", ["cgroupfs", "systemd"])
def test_container_exec_carries_the_container_cgroup(
    tmp_path: Path, top: str, hierarchy: str, driver: str
) -> None:
    require_bpf()
    require_runc()
    tracked = resolve_hierarchy(hierarchy, Path("/sys/fs/cgroup"), Path("/proc"))
    pod_uid, cid = new_pod_uid(), new_container_id()
    if driver == "cgroupfs":
        path = cgroupfs_path(pod_uid, cid, "burstable", top=top)
        leaf, parent = cid, f"pod{pod_uid}"
    else:
        path = systemd_path(pod_uid, cid, "burstable", "cri-containerd", top=top)
        leaf, parent = (
            f"cri-containerd-{cid}.scope",
            f"kubepods-burstable-pod{pod_uid.replace('-', '_')}.slice",
        )

    options = ProgramOptions(OBJECT, cgroup_subsys_idx=tracked.subsys_idx, cgroup_filter=frozenset())
    with ExecProgram(options) as program, RuncContainer(path, tmp_path) as container:
        # The filter can change while the program runs: the test's private tree only.
        top_dir = tracked.mount / top.split("/", maxsplit=1)[0]
        program.set_cgroup_filter(frozenset({top_dir.stat().st_ino}))
        tag = f"in-container-{driver}-{tracked.version}"
        assert container.exec(["echo", tag]).stdout.strip() == tag
        ev = wait_for(program, tag)

        assert ev.argv == ["echo", tag]
        assert ev.cgroup_id == container.cgroup_id(MEMORY if tracked.version == 1 else UNIFIED)
        assert ev.cgroup_name == leaf
        assert ev.parent_cgroup_name == parent
        # ancestors, parent first: pod, qos class, kubepods, the test's private top, the root
        container_dir = tracked.mount / path.lstrip("/")
        expected = [p.stat().st_ino for p in container_dir.parents if p.is_relative_to(tracked.mount)]
        assert list(ev.cgroup_ancestors) == expected
        # its own pid and mount namespaces, as a pod's container has
        assert ev.pid_ns == os.stat(f"/proc/{container.pid}/ns/pid").st_ino
        assert ev.mnt_ns == os.stat(f"/proc/{container.pid}/ns/mnt").st_ino
        assert ev.pid_ns != os.stat("/proc/self/ns/pid").st_ino
        assert ev.mnt_ns != os.stat("/proc/self/ns/mnt").st_ino


@pytest.mark.parametrize("driver", ["cgroupfs"])
def test_cgroup_filter_keeps_other_execs_out(tmp_path: Path, top: str, driver: str) -> None:
    require_bpf()
    require_runc()
    tracked = resolve_hierarchy("auto", Path("/sys/fs/cgroup"), Path("/proc"))
    path = cgroupfs_path(new_pod_uid(), new_container_id(), top=top)
    options = ProgramOptions(OBJECT, cgroup_subsys_idx=tracked.subsys_idx, cgroup_filter=frozenset())
    with ExecProgram(options) as program, RuncContainer(path, tmp_path) as container:
        program.set_cgroup_filter(frozenset({(tracked.mount / top.split("/", maxsplit=1)[0]).stat().st_ino}))
        os.system("/bin/echo outside-the-filter >/dev/null")
        container.exec(["echo", "inside-the-filter"])
        time.sleep(0.2)
        seen = [decode(raw, 0).argv for raw in program.read(0)]
        assert ["echo", "inside-the-filter"] in seen
        assert not [argv for argv in seen if "outside-the-filter" in argv]
        program.set_cgroup_filter(frozenset())
        container.exec(["echo", "after-clearing"])
        time.sleep(0.2)
        assert not [raw for raw in program.read(0) if b"after-clearing" in raw]
