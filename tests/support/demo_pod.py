"""Try Kubernetes mode on one machine: a runc "pod" and the test kubelet that lists it.

    .venv/bin/python -m tests.support.demo_pod      # as root; then follow what it prints

It starts a busybox container with runc at a kubelet-style cgroup path below a private top
(`execlog-demo/kubepods`, so a real kubelet's tree is never touched), and serves a pod for it with
Coder's workspace labels from the FakeKubelet (HTTPS, bearer token) on 127.0.0.1. It prints the
`execlog run` command to start in a second terminal, and writes `<dir>/exec`, a script that runs
a command in the container, for a third. Ctrl-C removes the container and its cgroups.

`--pod-delay 5` lists the pod only 5 s after start, to watch execs wait in the pending queue and
resolve when the pod appears (run the collector with `--pending-timeout-ms 10000`).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from tests.support.containers import (
    RuncContainer,
    cgroupfs_path,
    new_pod_uid,
    remove_cgroup_tree,
    systemd_path,
)
from tests.support.kubelet import CODER_ANNOTATIONS, CODER_LABELS, FakeKubelet, make_pod

__all__ = ["main"]

TOP = "execlog-demo"
# A fixed id, so the commands printed (and those in docs/kubernetes.md) stay the same from run
# to run.
CONTAINER_ID = "5d1c0a7e" * 8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.demo_pod", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--dir", type=Path, default=Path("/tmp/execlog-demo"), help="work directory")
    parser.add_argument("--port", type=int, default=10250, help="kubelet port on 127.0.0.1")
    parser.add_argument("--driver", choices=("cgroupfs", "systemd"), default="cgroupfs")
    parser.add_argument("--pod-delay", type=float, default=0.0, help="seconds before the pod is listed")
    args = parser.parse_args(argv)

    workdir: Path = args.dir
    remove_cgroup_tree("/" + TOP)  # what a killed run left behind
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    uid = new_pod_uid()
    top = f"{TOP}/kubepods.slice" if args.driver == "systemd" else f"{TOP}/kubepods"
    if args.driver == "systemd":
        path = systemd_path(uid, CONTAINER_ID, "burstable", "cri-containerd", top=top)
    else:
        path = cgroupfs_path(uid, CONTAINER_ID, "burstable", top=top)
    pod = make_pod(
        "ws-jessie-main",
        "coder-workspaces",
        uid,
        "demo-node",
        labels=CODER_LABELS,
        annotations=CODER_ANNOTATIONS,
        containers=[("dev", f"containerd://{CONTAINER_ID}")],
    )

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with (
        RuncContainer(path, workdir, container_id=CONTAINER_ID) as container,
        FakeKubelet(port=args.port, directory=workdir / "kubelet") as kubelet,
    ):
        exec_script = workdir / "exec"
        state = container.bundle / "state"
        exec_script.write_text(f'#!/bin/sh\nexec runc --root {state} exec {CONTAINER_ID} "$@"\n')
        exec_script.chmod(0o755)
        print(f"pod coder-workspaces/ws-jessie-main (uid {uid}), container dev in cgroup {path}")
        print(f"kubelet stand-in on {kubelet.url}\n")
        print("In a second terminal, start the collector:\n")
        print(
            f"  .venv/bin/execlog run --kubelet-url {kubelet.url} \\\n"
            f"      --kubelet-token-file {kubelet.token_file} \\\n"
            f"      --kubelet-ca-file {kubelet.ca_file} \\\n"
            f"      --kubepods-roots {top} --node-name demo-node\n"
        )
        print("In a third, run something in the workspace container:\n")
        print(f"  {exec_script} uname -a\n")
        print("Ctrl-C here removes the container and its cgroups.", flush=True)
        try:
            if args.pod_delay > 0:
                stop.wait(args.pod_delay)
            if not stop.is_set():
                kubelet.add_pod(pod)
                print(f"the kubelet now lists the pod ({time.strftime('%H:%M:%S')})", flush=True)
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
    remove_cgroup_tree("/" + TOP)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
