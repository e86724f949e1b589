"""The kubepods subtree of the tracked cgroup hierarchy, read from the file system.

Two things come from it, both in the background, never on the ring reader's thread:

- the ids of the kubepods roots that exist, for the kernel's cgroup filter (a root may appear
  after the collector starts, or be made anew);
- the ids of every pod and container cgroup, so that an exec in a cgroup nested below a container
  can be attributed from the ancestor ids its record carries, even when its own short-lived cgroup
  is gone by the time user space looks.

A cgroup's id is its directory's inode number (the kernfs node id on 64-bit kernels).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from collector.k8s.cgroups import CgroupRef, attribute_names

__all__ = ["CgroupIndex", "root_ids", "scan"]

# root / QoS / pod / container: containers sit at most three levels below a root. Deeper cgroups
# are below a container and are found through their ancestors instead.
_MAX_DEPTH: Final = 3


@dataclass(frozen=True, slots=True)
class CgroupIndex:
    """Pod and container cgroups by id, as found by one scan."""

    refs: Mapping[int, CgroupRef] = field(default_factory=dict)
    # The count of scan requests this scan answers (see PodWatcher.request_scan).
    answers: int = 0


def root_ids(mount: Path, roots: Sequence[str]) -> frozenset[int]:
    """Ids of the kubepods roots (paths relative to the hierarchy's mount) that exist now."""
    ids = set()
    for root in roots:
        try:
            st = os.stat(mount / root.strip("/"))
        except OSError:
            continue
        ids.add(st.st_ino)
    return frozenset(ids)


def scan(mount: Path, roots: Sequence[str], answers: int = 0) -> CgroupIndex:
    """Walk each root down to the container cgroups; cgroups that vanish meanwhile are skipped."""
    refs: dict[int, CgroupRef] = {}
    for root in roots:
        path = mount / root.strip("/")
        _walk(str(path), path.name, 1, refs)
    return CgroupIndex(refs, answers)


def _walk(directory: str, name: str, depth: int, refs: dict[int, CgroupRef]) -> None:
    try:
        with os.scandir(directory) as entries:
            children = [(e.path, e.name, e.inode()) for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return  # gone, or not a directory: the tree changes under us
    for path, child, inode in children:
        ref = attribute_names(child, name)
        if ref is not None:
            refs[inode] = ref
            if ref.container_id:
                continue  # below a container is the nested world, found through ancestors
        if depth < _MAX_DEPTH:
            _walk(path, child, depth + 1, refs)
