"""The real program on real execs: every field, every way to exec, every awkward argv, exact loss."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from collector.bpf.program import ExecProgram, ProgramOptions
from collector.event import ExecEvent
from tests.integration.conftest import OBJECT, Capture, MakeCapture
from tests.support.build import execprobe


@pytest.fixture(scope="module")
def probe() -> Path:
    return execprobe()


def tagged(tag: str) -> object:
    return lambda ev: tag in ev.argv


def test_every_field_of_an_unprivileged_exec(capture: Capture, probe: Path) -> None:
    before = time.time_ns()
    proc = capture.popen(
        [probe, "comm", "caller-x", "setid", "65534", "65534", "execve", "/bin/echo", "echo", "t1", "", " "]
    )
    proc.wait()
    after = time.time_ns()
    ev = capture.wait_for(lambda e: e.argv[:2] == ["echo", "t1"])
    assert ev.filename == "/bin/echo"
    assert ev.argv == ["echo", "t1", "", " "]
    assert ev.argc == 4
    assert ev.argv_size == len(b"echo\0t1\0\0 \0")
    assert not ev.truncated
    assert (ev.uid, ev.gid, ev.euid, ev.egid) == (65534, 65534, 65534, 65534)
    assert ev.comm == "caller-x"  # the caller's name before the exec, not "echo"
    assert ev.pid == proc.pid
    assert ev.ppid == os.getpid()
    assert before <= ev.time_ns <= after
    assert ev.cgroup_id == capture.cgroup.id
    assert ev.cgroup_name == "leaf"
    assert ev.parent_cgroup_name == capture.cgroup.path.parent.name
    assert ev.cgroup_ancestors[0] == capture.cgroup.path.parent.stat().st_ino
    assert ev.pid_ns == os.stat(f"/proc/{os.getpid()}/ns/pid").st_ino
    assert ev.mnt_ns == os.stat(f"/proc/{os.getpid()}/ns/mnt").st_ino


@pytest.mark.parametrize("mode", ["execve", "execveat", "fexecve", "thread", "fork"])
def test_every_way_to_exec_is_captured(capture: Capture, probe: Path, mode: str) -> None:
    read_fd, write_fd = os.pipe()
    proc = capture.popen([probe, mode, "/bin/echo", "echo", f"tag-{mode}"], fd3=write_fd)
    os.close(write_fd)
    proc.wait()
    child_pid = os.read(read_fd, 64).decode().strip()
    os.close(read_fd)
    assert proc.returncode == 0
    ev = capture.wait_for(lambda e: e.argv == ["echo", f"tag-{mode}"])
    assert ev.comm == "execprobe"
    if mode in ("execveat", "fexecve"):
        assert ev.filename.startswith("/dev/fd/")  # the kernel names an exec by fd so
    else:
        assert ev.filename == "/bin/echo"
    if mode == "fork":
        assert ev.pid == int(child_pid)
        assert ev.ppid == proc.pid
    else:
        # also from a non-leader thread: the process keeps its pid (the tgid) through the exec
        assert ev.pid == proc.pid
        assert ev.ppid == os.getpid()


def run_args(capture: Capture, probe: Path, args: list[bytes]) -> ExecEvent:
    tag = f"edge-{time.monotonic_ns()}".encode()
    capture.run([probe, "execve", "/bin/true", b"true", tag, *args])
    return capture.wait_for(lambda e: e.argv[1:2] == [tag.decode()])


@pytest.mark.parametrize(
    "args",
    [
        [b"a%d" % i for i in range(30)],  # with argv[0] and the tag: exactly 32 arguments
        [b"arg-%d" % i for i in range(700)],
        [b"x" * 1500, b"y"],
        [b"", b" ", b"", b"\t"],
    ],
    ids=["32-args", "700-args", "1500-byte-arg", "empty-and-blank"],
)
def test_argument_edge_cases(capture: Capture, probe: Path, args: list[bytes]) -> None:
    ev = run_args(capture, probe, args)
    assert ev.argv[2:] == [a.decode() for a in args]
    assert ev.argc == len(args) + 2
    assert not ev.truncated


def test_non_utf8_bytes_are_escaped(capture: Capture, probe: Path) -> None:
    ev = run_args(capture, probe, [b"caf\xc3\xa9", b"\xff\xfe-x", b"ok"])
    assert ev.argv[2:] == ["café", "\\xff\\xfe-x", "ok"]
    assert ev.non_utf8


def test_argv_far_beyond_the_cap_is_cut_and_marked(capture: Capture, probe: Path) -> None:
    args = [b"%04d" % i + b"z" * 1995 for i in range(100)]  # 200 KB of argv, cap 32 KiB
    ev = run_args(capture, probe, args)
    block = b"".join(a + b"\0" for a in [b"true", ev.argv[1].encode(), *args])
    assert ev.truncated
    assert ev.argc == 102
    assert ev.argv_size == len(block)
    kept = b"".join(a.encode() + b"\0" for a in ev.argv)
    assert block.startswith(kept.rstrip(b"\0"))
    assert len(kept.rstrip(b"\0")) == 32768 or len(kept) == 32768


@pytest.mark.parametrize("cap", [100, 1 << 17])
def test_cap_is_exact(make_capture: MakeCapture, probe: Path, cap: int) -> None:
    capture = make_capture(argv_cap=cap)
    args = [b"w" * 4000 for _ in range(40)]  # 160 KB
    ev = run_args(capture, probe, args)
    block = b"".join(a + b"\0" for a in [b"true", ev.argv[1].encode(), *args])
    expected = block[:cap].split(b"\0")
    assert ev.argv == [a.decode() for a in expected[:-1] + ([expected[-1]] if expected[-1] else [])]
    assert ev.truncated
    assert (ev.argc, ev.argv_size) == (42, len(block))


@pytest.mark.parametrize(
    ("exec_hook", "comm_hook"),
    [
        ("tp_btf", "prepare_exec"),
        ("tp_btf", "syscalls"),
        ("tracepoint", "prepare_exec"),
        ("tracepoint", "syscalls"),
    ],
)
def test_each_hook_records_the_same_exec(
    make_capture: MakeCapture, probe: Path, exec_hook: str, comm_hook: str
) -> None:
    capture = make_capture(exec_hooks=(exec_hook,), comm_hooks=(comm_hook,))
    assert (capture.program.attach_plan.exec_hook, capture.program.attach_plan.comm_hook) == (
        exec_hook,
        comm_hook,
    )
    capture.run([probe, "comm", "caller-h", "fork", "/bin/echo", "echo", "", "hook"])
    ev = capture.wait_for(lambda e: e.argv == ["echo", "", "hook"])
    assert ev.comm == "caller-h"
    assert ev.argc == 3
    assert ev.filename == "/bin/echo"
    assert capture.program.counters().comm_missing == 0


def test_lost_count_is_exact_with_a_tiny_ring_and_a_paused_reader(
    make_capture: MakeCapture, probe: Path
) -> None:
    capture = make_capture(ring_size=4096)
    # Nobody reads while 300 execs happen: the 4 KiB ring holds a handful.
    result = capture.run([probe, "storm", "300", "/bin/true", "lost"])
    assert result.returncode == 0
    records = capture.program.read(0)
    counters = capture.program.counters()
    total = 300 + 1  # the storm's children and execprobe's own exec
    assert counters.seen == total
    assert len(records) + counters.lost == total
    assert counters.lost >= 250


def test_repeated_start_and_stop_leaks_nothing(hierarchy: object) -> None:
    from tests.support.require import require_bpf

    require_bpf()

    def bpf_fds() -> dict[str, set[int]]:
        ids: dict[str, set[int]] = {"link": set(), "prog": set(), "map": set()}
        names = {"anon_inode:bpf_link": "link", "anon_inode:bpf-prog": "prog", "anon_inode:bpf-map": "map"}
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
                info = Path(f"/proc/self/fdinfo/{fd}").read_text()
            except OSError:
                continue
            kind = names.get(target)
            if kind is None:
                continue
            for line in info.splitlines():
                if line.startswith(f"{kind}_id:"):
                    ids[kind].add(int(line.split()[1]))
        return ids

    before_fds = set(os.listdir("/proc/self/fd"))
    before = bpf_fds()
    seen_links: set[int] = set()
    for _ in range(15):
        with ExecProgram(ProgramOptions(OBJECT)) as program:
            program.read(0)
            seen_links |= bpf_fds()["link"] - before["link"]
    assert seen_links, "the program held no links while attached"
    assert bpf_fds() == before
    assert set(os.listdir("/proc/self/fd")) <= before_fds | {str(fd) for fd in range(3)}
    # and the kernel no longer has those links attached anywhere
    for link_id in seen_links:
        assert os.system(f"bpftool link show id {link_id} >/dev/null 2>&1") != 0


def test_ring_fill_rises_with_undrained_records_and_falls_when_drained(
    make_capture: MakeCapture, probe: Path
) -> None:
    capture = make_capture(ring_size=64 << 10)
    assert capture.program.ring_fill() == 0.0
    capture.run([probe, "storm", "20", "/bin/true", "fill"])
    fill = capture.program.ring_fill()
    records = capture.program.read(0)
    assert len(records) == 21
    assert fill == pytest.approx(sum(len(r) + 8 for r in records) / (64 << 10), rel=0.05)
    assert capture.program.ring_fill() == 0.0
