"""Which cgroup hierarchy the kernel program reads an exec's cgroup from.

On a unified (v2-only) host that is the v2 hierarchy. On legacy and hybrid hosts (Ubuntu 20.04,
this project's CI) the kubelet places pods in the v1 controller hierarchies, so the v1 `memory`
hierarchy is tracked; the kernel program then reads ``task->cgroups->subsys[ssid]``. A
controller's ssid is its row in /proc/cgroups, which the kernel prints in ssid order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Hierarchy", "HierarchyError", "resolve_hierarchy"]


class HierarchyError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Hierarchy:
    version: int  # 1 or 2
    controller: str | None  # the v1 controller, None for v2
    subsys_idx: int  # the controller's ssid; -1 for v2
    mount: Path  # where the hierarchy's root is mounted

    def describe(self) -> str:
        if self.version == 2:
            return f"cgroup v2 at {self.mount}"
        return f"cgroup v1 {self.controller} hierarchy at {self.mount}"


def _v2_mount(cgroup_root: Path) -> Path | None:
    for candidate in (cgroup_root, cgroup_root / "unified"):
        if (candidate / "cgroup.controllers").is_file():
            return candidate
    return None


def _v1_controllers(proc_root: Path) -> dict[str, tuple[int, int, bool]]:
    """controller -> (ssid, hierarchy id, enabled), from /proc/cgroups."""
    path = proc_root / "cgroups"
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except OSError as exc:
        raise HierarchyError(f"cannot read {path}: {exc.strerror}") from exc
    rows: dict[str, tuple[int, int, bool]] = {}
    for ssid, line in enumerate(line for line in lines if line and not line.startswith("#")):
        parts = line.split()
        if len(parts) < 4 or not parts[1].isdigit():
            raise HierarchyError(f"{path}: unexpected line {line!r}")
        rows[parts[0]] = (ssid, int(parts[1]), parts[3] == "1")
    return rows


def resolve_hierarchy(spec: str, cgroup_root: Path, proc_root: Path) -> Hierarchy:
    """Turn 'auto', 'v2' or 'v1:<controller>' into the hierarchy to track on this host."""
    if spec == "auto":
        if (cgroup_root / "cgroup.controllers").is_file():
            return resolve_hierarchy("v2", cgroup_root, proc_root)
        controllers = _v1_controllers(proc_root)
        memory = controllers.get("memory")
        if memory and memory[1] != 0 and memory[2] and (cgroup_root / "memory").is_dir():
            return resolve_hierarchy("v1:memory", cgroup_root, proc_root)
        return resolve_hierarchy("v2", cgroup_root, proc_root)

    if spec == "v2":
        mount = _v2_mount(cgroup_root)
        if mount is None:
            raise HierarchyError(
                f"no cgroup v2 hierarchy at {cgroup_root} or {cgroup_root / 'unified'}; "
                "mount cgroup2 or choose --cgroup-hierarchy v1:<controller>"
            )
        return Hierarchy(2, None, -1, mount)

    controller = spec.removeprefix("v1:")
    controllers = _v1_controllers(proc_root)
    row = controllers.get(controller)
    if row is None:
        raise HierarchyError(f"controller {controller!r} is not in {proc_root / 'cgroups'}")
    ssid, hierarchy_id, enabled = row
    if hierarchy_id == 0 or not enabled:
        raise HierarchyError(
            f"controller {controller!r} is not mounted as a cgroup v1 hierarchy "
            "(it is on cgroup v2 or disabled); use --cgroup-hierarchy v2"
        )
    mount = cgroup_root / controller
    if not mount.is_dir():
        raise HierarchyError(f"cgroup v1 {controller} hierarchy is not mounted at {mount}")
    if ssid > 15:
        raise HierarchyError(f"controller {controller!r} has ssid {ssid}, beyond what the program reads")
    return Hierarchy(1, controller, ssid, mount)
