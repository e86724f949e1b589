"""Real containers for tests: runc, a busybox-static root, kubelet-style cgroup paths.

What runc 1.1.5 does on a hybrid host with its cgroupfs driver (checked on Linux 6.18, v1
controllers under /sys/fs/cgroup/<controller>, cgroup2 at /sys/fs/cgroup/unified, no systemd):

- ``cgroupsPath`` is taken as an absolute path from the root of every hierarchy. runc creates it
  (``mkdir -p``) in each mounted v1 hierarchy it knows: cpu, cpuacct, cpuset, memory, devices,
  freezer, blkio, pids and the named ``name=systemd``. It knows net_cls, net_prio, perf_event,
  hugetlb and rdma too, but skips them here because they are not mounted.
- It also joins the v2 unified hierarchy at the same path, by itself: libcontainer's fs manager
  adds a ``""`` subsystem when /sys/fs/cgroup/unified is a cgroup2 mount. So the container's init
  shows ``0::<cgroupsPath>`` in ``/proc/<pid>/cgroup`` with no help from us, and a process that
  ``runc exec`` starts joins the same set, v2 included. No option to place processes in v2 by
  hand is needed, and none is offered; the harness's own test checks that this stays true.
- Systemd-style names (``kubepods.slice/...scope``) are plain directory names to the cgroupfs
  driver; systemd is not involved.
- ``runc delete`` removes only the leaf directory in each hierarchy. The parents it created (pod,
  QoS class, top) stay behind, so :class:`RuncContainer` removes those it created itself.
- No cgroup namespace is asked for, so inside the container ``/proc/self/cgroup`` shows host paths,
  as on kubelet nodes with cgroup v1.
- With ``runc run --detach`` the container's init is reparented to the host's PID 1 when runc
  exits; PID 1 reaps it after the container dies, sometimes a moment later. A zombie does not keep
  a cgroup busy, so teardown does not wait for that.
- The OCI ``root.path`` must not be a symlink; a cached root file system is shared by giving its
  absolute path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from tests.support.cgroups import (
    MEMORY,
    UNIFIED,
    QoS,
    Runtime,
    cgroup_dirs,
    cgroupfs_path,
    missing_dirs,
    new_container_id,
    new_pod_uid,
    proc_cgroups,
    remove_cgroup_tree,
    remove_dirs,
    systemd_path,
    unique_top,
)

__all__ = [
    "APPLETS",
    "MEMORY",
    "UNIFIED",
    "ExecError",
    "QoS",
    "RuncContainer",
    "RuncError",
    "Runtime",
    "busybox_rootfs",
    "cgroup_dirs",
    "cgroupfs_path",
    "new_container_id",
    "new_pod_uid",
    "proc_cgroups",
    "remove_cgroup_tree",
    "systemd_path",
    "unique_top",
]

APPLETS = (
    "sh", "true", "false", "echo", "sleep", "env", "cat", "ls", "mkdir", "kill", "id", "ps", "touch",
    "rm", "grep", "head", "wc", "printf", "test", "stat", "readlink", "hostname", "pwd", "uname",
)  # fmt: skip
_ROOTFS_DIRS = ("bin", "proc", "dev", "tmp", "sys", "etc", "root")
# Bump when the layout changes, so an old cached root is not taken for a new one.
_ROOTFS_MARKER = ".execlog-busybox-rootfs-v1"


def busybox_rootfs(directory: Path, busybox: Path = Path("/bin/busybox")) -> Path:
    """Build a busybox root file system at ``directory`` once; later calls return it as is.

    The build happens in a sibling directory renamed into place, so a run killed midway never
    leaves a half-built root that a later run would trust.
    """
    if (directory / _ROOTFS_MARKER).is_file():
        return directory
    if directory.exists():
        raise FileExistsError(f"{directory} exists but is not a root file system built by this harness")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        staging.chmod(0o755)
        for name in _ROOTFS_DIRS:
            (staging / name).mkdir(mode=0o755)
        shutil.copy2(busybox, staging / "bin" / "busybox")
        for applet in APPLETS:
            (staging / "bin" / applet).symlink_to("busybox")
        (staging / "etc" / "passwd").write_text(
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/tmp:/bin/sh\n"
        )
        (staging / "etc" / "group").write_text("root:x:0:\nuser:x:1000:\n")
        (staging / _ROOTFS_MARKER).touch()
        try:
            staging.rename(directory)
        except OSError:
            # Another process finished first; its root is as good as ours.
            if not (directory / _ROOTFS_MARKER).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _oci_config(rootfs: Path, args: Sequence[str], cgroups_path: str, hostname: str) -> dict[str, object]:
    """An OCI runtime spec 1.0.2 config, close to ``runc spec`` but with a read-only shared root."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    nosuid = ["nosuid", "noexec", "nodev"]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": list(args),
            "env": ["PATH=/bin", "HOME=/root"],
            "cwd": "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        # Read-only, so many containers can share one cached root; /tmp is a tmpfs for writes.
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": [*nosuid, "size=65536k"],
            },
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": nosuid},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": [*nosuid, "ro"]},
            {
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777"],
            },
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            # Pod containers have their own network namespace too, so a test container does as well.
            "namespaces": [{"type": t} for t in ("pid", "mount", "ipc", "uts", "network")],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


class RuncError(RuntimeError):
    pass


class ExecError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout: {self.stdout!r}\nstderr: {self.stderr!r}"


class RuncContainer:
    """One runc container whose processes live in cgroup ``cgroups_path`` in every hierarchy.

    ``with RuncContainer(path, workdir) as c:`` starts it; leaving the block kills and deletes it
    and removes the cgroup directories that starting it created (pod, QoS and top included) along
    with its bundle and runc state under ``workdir/<container id>``. Containers that share a pod
    should be closed in the reverse order of starting, as nested ``with`` blocks, ``ExitStack`` and
    pytest fixtures do: a parent directory still used by another container is left to its last
    user. :func:`remove_cgroup_tree` on a test's private top removes whatever is left in any case.
    """

    def __init__(
        self,
        cgroups_path: str,
        workdir: Path,
        *,
        args: Sequence[str] = ("sleep", "3600"),
        container_id: str | None = None,
        rootfs: Path | None = None,
        runc: str = "runc",
    ) -> None:
        self.cgroups_path = cgroups_path
        self.container_id = container_id or new_container_id()
        self.workdir = workdir
        self.rootfs = rootfs or busybox_rootfs(workdir / "busybox-rootfs")
        self.bundle = workdir / self.container_id
        self.args = tuple(args)
        self.runc = runc
        self._state = self.bundle / "state"
        self._pid: int | None = None
        self._created: list[Path] = []
        self._children: list[RuncContainer] = []
        self._started = False
        self._closed = False

    def _runc(self, *args: str) -> list[str]:
        return [self.runc, "--root", str(self._state), *args]

    def start(self) -> RuncContainer:
        """Run the container detached; returns once its init runs. Starting twice is a no-op."""
        if self._started:
            return self
        self._started = True
        self._created = missing_dirs(self.cgroups_path)
        self.bundle.mkdir(parents=True)
        config = _oci_config(self.rootfs, self.args, self.cgroups_path, hostname=self.container_id[:12])
        (self.bundle / "config.json").write_text(json.dumps(config, indent=1))
        pid_file, log_file = self.bundle / "init.pid", self.bundle / "runc.log"
        # The detached init inherits runc's stdio; a pipe here would stay open for its lifetime.
        with log_file.open("wb") as log:
            done = subprocess.run(
                self._runc(
                    "run",
                    "--detach",
                    "--pid-file",
                    str(pid_file),
                    "--bundle",
                    str(self.bundle),
                    self.container_id,
                ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=_runc_env(),
                timeout=30,
                check=False,
            )
        if done.returncode != 0:
            message = log_file.read_text(errors="replace")
            self.close()
            raise RuncError(f"runc run {self.cgroups_path} failed ({done.returncode}): {message}")
        self._pid = int(pid_file.read_text())
        return self

    def __enter__(self) -> RuncContainer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def pid(self) -> int:
        """The container's init process, as a pid of the host (of this process's pid namespace)."""
        if self._pid is None:
            raise RuncError("container is not running")
        return self._pid

    def cgroups(self) -> dict[str, str]:
        """Hierarchy name -> cgroup path of the init, from ``/proc/<pid>/cgroup``."""
        return proc_cgroups(self.pid)

    def cgroup_dirs(self) -> dict[str, Path]:
        """Hierarchy name -> the init's cgroup directory under /sys/fs/cgroup (``""`` is v2)."""
        return cgroup_dirs(self.pid)

    def cgroup_id(self, hierarchy: str = MEMORY) -> int:
        """The kernel's id of the init's cgroup in ``hierarchy``: its directory's inode number."""
        dirs = self.cgroup_dirs()
        if hierarchy not in dirs:
            raise LookupError(
                f"container is not in a mounted {hierarchy or 'v2'!r} hierarchy: {sorted(dirs)}"
            )
        return os.stat(dirs[hierarchy]).st_ino

    def exec(
        self,
        args: Sequence[str],
        *,
        user: tuple[int, int] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        input: str | None = None,
        timeout: float = 10.0,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` in the container with ``runc exec`` and wait for it; ``user`` is (uid, gid)."""
        options: list[str] = []
        if user is not None:
            options += ["--user", f"{user[0]}:{user[1]}"]
        for key, value in (env or {}).items():
            options += ["--env", f"{key}={value}"]
        if cwd is not None:
            options += ["--cwd", cwd]
        done = subprocess.run(
            self._runc("exec", *options, self.container_id, *args),
            input=input,
            capture_output=True,
            text=True,
            env=_runc_env(),
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise ExecError(done.returncode, done.args, done.stdout, done.stderr)
        return done

    def nested(
        self,
        container_id: str | None = None,
        *,
        under: str = "docker",
        args: Sequence[str] = ("sleep", "3600"),
    ) -> RuncContainer:
        """Start a second container in cgroup ``<this cgroup>/<under>/<id>``, as docker-in-a-workspace.

        Only the cgroup is nested; its namespaces are new ones beside this container's. It is
        closed with this container, first, and may also be used in its own ``with`` block.
        """
        container_id = container_id or new_container_id()
        child = RuncContainer(
            f"{self.cgroups_path.rstrip('/')}/{under.strip('/')}/{container_id}",
            self.workdir,
            args=args,
            container_id=container_id,
            rootfs=self.rootfs,
            runc=self.runc,
        )
        self._children.append(child)
        return child.start()

    def close(self) -> None:
        """Kill and delete the container and remove what starting it created. Idempotent, and
        tolerant of a container or cgroups already gone."""
        if self._closed:
            return
        self._closed = True
        for child in reversed(self._children):
            child.close()
        if not self._started:
            return
        subprocess.run(
            self._runc("delete", "--force", self.container_id),
            capture_output=True,
            env=_runc_env(),
            timeout=30,
            check=False,
        )
        # Whatever runc could not remove (its state lost, processes moved in by a test) goes here.
        remove_cgroup_tree(self.cgroups_path)
        remove_dirs(self._created)
        shutil.rmtree(self.bundle, ignore_errors=True)
        self._pid = None


def _runc_env() -> dict[str, str]:
    # With NOTIFY_SOCKET set, runc proxies sd_notify through a socket in its state directory.
    return {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
