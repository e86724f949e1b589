"""A workspace pod for Kubernetes-mode benchmarks: a runc container and the test kubelet listing it.

The container runs at a kubelet-style cgroup path below a private top
(`execlog-bench-<hex>/kubepods/burstable/pod<uid>/<id>`), so a real kubelet's tree is never
touched, and the FakeKubelet (HTTPS, bearer token) lists it with Coder's workspace labels. A storm
joins the container's cgroup in the hierarchy the collector tracks (`join` as a preexec_fn), so
its execs pass the in-kernel kubepods filter and are attributed to the pod, as a workspace's are.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from collector.bpf.hierarchy import resolve_hierarchy
from tests.support.containers import (
    RuncContainer,
    cgroupfs_path,
    new_container_id,
    new_pod_uid,
    remove_cgroup_tree,
    unique_top,
)
from tests.support.kubelet import CODER_LABELS, FakeKubelet, make_pod

__all__ = ["NODE", "BenchPod"]

NODE = "bench-node"


class BenchPod:
    """`with BenchPod() as pod:` starts the container and the kubelet; leaving removes both."""

    def __init__(self) -> None:
        self.top = unique_top("cgroupfs", stem="execlog-bench")
        self.workdir = Path(tempfile.mkdtemp(prefix="execlog-bench-pod-"))
        self._stack = contextlib.ExitStack()
        self.procs: Path | None = None  # cgroup.procs of the container, in the tracked hierarchy
        self.kubelet: FakeKubelet | None = None

    def __enter__(self) -> BenchPod:
        try:
            self._stack.callback(shutil.rmtree, self.workdir, True)
            self._stack.callback(remove_cgroup_tree, "/" + self.top.partition("/")[0])
            uid, cid = new_pod_uid(), new_container_id()
            container = self._stack.enter_context(
                RuncContainer(cgroupfs_path(uid, cid, "burstable", top=self.top), self.workdir / "runc")
            )
            self.kubelet = self._stack.enter_context(FakeKubelet(directory=self.workdir / "kubelet"))
            self.kubelet.add_pod(
                make_pod(
                    "ws-jessie-main",
                    "coder-workspaces",
                    uid,
                    NODE,
                    labels=CODER_LABELS,
                    annotations={"com.coder.user.email": "jessie@coder.com"},
                    containers=[("dev", f"containerd://{cid}")],
                )
            )
            hierarchy = resolve_hierarchy("auto", Path("/sys/fs/cgroup"), Path("/proc"))
            # /proc/<pid>/cgroup names v2 ""; a v1 hierarchy by its controller (memory here).
            key = "" if hierarchy.version == 2 else str(hierarchy.controller)
            self.procs = container.cgroup_dirs()[key] / "cgroup.procs"
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def join(self) -> None:
        """Move the calling process into the pod's container cgroup (use as preexec_fn)."""
        assert self.procs is not None
        self.procs.write_text(str(os.getpid()))

    def collector_flags(self) -> list[str]:
        """The `execlog run` flags of Kubernetes mode against this pod's kubelet."""
        assert self.kubelet is not None
        return self.kubelet.collector_flags(self.top, NODE)
