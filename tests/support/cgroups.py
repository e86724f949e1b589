"""Kubelet-style cgroup paths, and reading and removing cgroups on the host, for container tests.

Paths here are cgroup paths as the kernel prints them in ``/proc/<pid>/cgroup``: absolute, relative
to the root of a hierarchy, e.g. ``/kubepods/burstable/pod<uid>/<id>``. A hierarchy is named by the
second field of that file: ``memory``, ``cpu,cpuacct``, ``name=systemd``, or ``""`` for cgroup v2.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import time
import uuid
from pathlib import Path
from typing import Literal

__all__ = [
    "MEMORY",
    "UNIFIED",
    "QoS",
    "Runtime",
    "cgroup_dirs",
    "cgroup_mounts",
    "cgroupfs_path",
    "missing_dirs",
    "new_container_id",
    "new_pod_uid",
    "proc_cgroups",
    "remove_cgroup_tree",
    "remove_dirs",
    "systemd_path",
    "unique_top",
]

QoS = Literal["guaranteed", "burstable", "besteffort"]
Runtime = Literal["cri-containerd", "crio", "docker"]

MEMORY = "memory"
UNIFIED = ""

# A dying task can keep its cgroup busy for a moment after SIGKILL.
_RMDIR_PATIENCE_S = 2.0


def new_pod_uid() -> str:
    return str(uuid.uuid4())


def new_container_id() -> str:
    # CRI runtimes use 64 hex digits; tests should see ids of the real shape.
    return secrets.token_hex(32)


def unique_top(driver: Literal["cgroupfs", "systemd"] = "cgroupfs", stem: str = "execlog-test") -> str:
    """A private top for one test run, e.g. ``execlog-test-1a2b3c4d/kubepods.slice``.

    The random parent keeps concurrent or killed runs apart and away from a real kubelet; the
    kubepods name below it keeps the tree looking like the kubelet's.
    """
    kubepods = "kubepods.slice" if driver == "systemd" else "kubepods"
    return f"{stem}-{secrets.token_hex(4)}/{kubepods}"


def cgroupfs_path(pod_uid: str, container_id: str, qos: QoS = "burstable", *, top: str = "kubepods") -> str:
    """The kubelet's cgroupfs-driver path: ``/kubepods[/<qos>]/pod<uid>/<container id>``."""
    pod = f"pod{pod_uid}"
    parts = [top.strip("/"), pod] if qos == "guaranteed" else [top.strip("/"), qos, pod]
    return "/" + "/".join([*parts, container_id])


def systemd_path(
    pod_uid: str,
    container_id: str,
    qos: QoS = "burstable",
    runtime: Runtime = "cri-containerd",
    *,
    top: str = "kubepods.slice",
) -> str:
    """The kubelet's systemd-driver path, e.g.
    ``/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/<runtime>-<id>.scope``.

    Only the top directory is configurable: every name below it is exactly the kubelet's, so code
    that reads a cgroup's leaf and parent names sees real ones whatever top a test picks.
    """
    # systemd unit names use "-" for nesting, so the kubelet escapes the uid's dashes.
    uid = pod_uid.replace("-", "_")
    if qos == "guaranteed":
        slices = [f"kubepods-pod{uid}.slice"]
    else:
        slices = [f"kubepods-{qos}.slice", f"kubepods-{qos}-pod{uid}.slice"]
    return "/" + "/".join([top.strip("/"), *slices, f"{runtime}-{container_id}.scope"])


def proc_cgroups(pid: int | str, proc: Path = Path("/proc")) -> dict[str, str]:
    """Hierarchy name -> cgroup path of a process, from ``/proc/<pid>/cgroup``."""
    paths: dict[str, str] = {}
    for line in (proc / str(pid) / "cgroup").read_text().splitlines():
        _, hierarchy, path = line.split(":", 2)
        paths[hierarchy] = path
    return paths


def cgroup_mounts(mountinfo: Path = Path("/proc/self/mountinfo")) -> dict[str, tuple[Path, str]]:
    """Hierarchy name -> (mount point, cgroup path mounted there) for each mounted hierarchy."""
    mounts: dict[str, tuple[Path, str]] = {}
    for line in mountinfo.read_text().splitlines():
        fields = line.split()
        dash = fields.index("-")
        fstype, super_options = fields[dash + 1], fields[dash + 3].split(",")
        if fstype == "cgroup2":
            hierarchy = UNIFIED
        elif fstype == "cgroup":
            known = ("ro", "rw", "xattr", "noprefix", "clone_children", "cpuset_v2_mode", "favordynmods")
            hierarchy = ",".join(o for o in super_options if o not in known and not o.startswith("release_"))
        else:
            continue
        # The first mount wins: later ones are usually bind mounts of the same hierarchy.
        mounts.setdefault(hierarchy, (Path(fields[4]), fields[3]))
    return mounts


def _directory(mount: tuple[Path, str], path: str) -> Path:
    mount_point, mounted_root = mount
    return mount_point / os.path.relpath(path, mounted_root)


def cgroup_dirs(pid: int | str, proc: Path = Path("/proc")) -> dict[str, Path]:
    """Hierarchy name -> directory of the process's cgroup, for each hierarchy mounted here."""
    mounts = cgroup_mounts(proc / "self" / "mountinfo")
    return {h: _directory(mounts[h], path) for h, path in proc_cgroups(pid, proc).items() if h in mounts}


def _kill_members(directory: Path) -> None:
    try:
        pids = (directory / "cgroup.procs").read_text().split()
    except FileNotFoundError:
        return
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def _rmdir(directory: Path, *, patience: float) -> bool:
    """Remove one cgroup directory; False when it is gone already or still in use after a wait."""
    deadline = time.monotonic() + patience
    while True:
        try:
            directory.rmdir()
            return True
        except FileNotFoundError:
            return False
        except OSError as e:
            if e.errno not in (errno.EBUSY, errno.ENOTEMPTY) or time.monotonic() >= deadline:
                return False
        time.sleep(0.02)


def remove_cgroup_tree(path: str, mountinfo: Path = Path("/proc/self/mountinfo")) -> None:
    """Kill every process in cgroup ``path`` and below, and remove those directories leaf-first,
    in every mounted hierarchy. Tolerates a tree that is partly or wholly gone already."""
    if not path.strip("/"):
        raise ValueError("refusing to remove a hierarchy's root cgroup")
    for mount in cgroup_mounts(mountinfo).values():
        root = _directory(mount, path)
        if not root.is_dir():
            continue
        for directory, _, _ in os.walk(root, topdown=False):
            _kill_members(Path(directory))
            _rmdir(Path(directory), patience=_RMDIR_PATIENCE_S)


def missing_dirs(path: str, mountinfo: Path = Path("/proc/self/mountinfo")) -> list[Path]:
    """The directories along ``path`` that do not exist yet, in every hierarchy, deepest first."""
    parts = path.strip("/").split("/")
    missing = [
        directory
        for mount in cgroup_mounts(mountinfo).values()
        for i in range(1, len(parts) + 1)
        if not (directory := _directory(mount, "/" + "/".join(parts[:i]))).exists()
    ]
    return sorted(missing, key=lambda d: len(d.parts), reverse=True)


def remove_dirs(directories: list[Path]) -> None:
    """rmdir each directory, deepest first; one still in use by someone else is left alone."""
    for directory in sorted(directories, key=lambda d: len(d.parts), reverse=True):
        # No waiting: the cgroups below were removed synchronously, so EBUSY means a live user.
        _rmdir(directory, patience=0)
