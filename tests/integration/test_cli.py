"""`execlog run` and `execlog check` as a user runs them: real processes, real execs, real stdout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.build import execprobe
from tests.support.collector import EXECLOG, RunningCollector, start
from tests.support.require import REPO, require_bpf


def tags_in(lines: list[dict[str, Any]], prefix: str) -> list[str]:
    return [
        arg
        for doc in lines
        if doc["msg"] == "exec"
        for arg in doc["fields"]["event"]["argv"][1:2]
        if arg.startswith(prefix)
    ]


def test_run_logs_each_exec_as_a_reference_record_and_stops_cleanly(
    collector: list[RunningCollector], tmp_path: Path
) -> None:
    c = start(collector, tmp_path)
    tag = f"cli-{os.getpid()}"
    subprocess.run(["/bin/sh", "-c", f"uname -a {tag} >/dev/null 2>&1; true"], check=False)
    doc = c.wait_for(tag)
    assert c.stop() == 0
    assert doc["msg"] == "exec"
    assert doc["level"] == "INFO"
    assert doc["ts"].endswith("Z")
    assert len(doc["ts"].split(".")[1]) == 10  # nine digits and the Z
    fields = doc["fields"]
    assert fields["cmdline"] == f"uname -a {tag}"
    ev = fields["event"]
    assert ev["argv"] == ["uname", "-a", tag]
    assert ev["comm"] == "sh"  # the caller, before it became uname
    assert ev["filename"].endswith("/uname")
    assert set(ev) >= {"filename", "argv", "truncated", "pid", "uid", "gid", "comm"}
    seqs = [d["fields"]["seq"] for d in c.lines()]
    assert seqs == list(range(1, len(seqs) + 1))
    assert {d["fields"]["stream_id"] for d in c.lines()} == {fields["stream_id"]}
    assert "Traceback" not in c.err_path.read_text()


def test_storm_every_tag_once_and_exact_past_many_ring_wraps(
    collector: list[RunningCollector], tmp_path: Path
) -> None:
    # ~20,000 records of ~470 bytes through a 512 KiB ring: the ring wraps about 18 times.
    c = start(collector, tmp_path, "--ring-size", "512KiB")
    count = 20_000
    prefix = f"storm{os.getpid()}"
    result = subprocess.run(
        [execprobe(), "storm", str(count), "/bin/true", prefix, "2"], capture_output=True, check=True
    )
    assert json.loads(result.stdout)["failed"] == 0
    time.sleep(0.5)
    assert c.stop() == 0
    lines = c.lines()
    tags = tags_in(lines, prefix + "-")
    assert sorted(tags) == sorted(f"{prefix}-{i}" for i in range(count))  # each once, none corrupt
    for doc in lines:
        ev = doc["fields"].get("event", {})
        if any(arg.startswith(prefix + "-") for arg in ev.get("argv", [])[1:2]):
            assert ev["argv"] == ["/bin/true", ev["argv"][1]]
            assert ev["filename"] == "/bin/true"
            assert ev["comm"] == "execprobe"  # every caller's comm kept, two spawners in parallel
            assert ev["argc"] == 2
    assert [d for d in lines if d["msg"] == "gap"] == []


def test_sigterm_delivers_what_the_kernel_already_recorded(
    collector: list[RunningCollector], tmp_path: Path
) -> None:
    # A long drain interval: without the final drain on SIGTERM these would still be in the ring.
    c = start(collector, tmp_path, "--drain-interval-ms", "5000")
    prefix = f"drain{os.getpid()}"
    subprocess.run([execprobe(), "storm", "300", "/bin/true", prefix], capture_output=True, check=True)
    assert c.stop(signal.SIGTERM) == 0
    assert len(tags_in(c.lines(), prefix + "-")) == 300
    assert "draining and stopping" in c.err_path.read_text()


def test_a_full_kernel_ring_becomes_a_gap_record(collector: list[RunningCollector], tmp_path: Path) -> None:
    c = start(collector, tmp_path, "--ring-size", "4KiB")
    prefix = f"loss{os.getpid()}"
    os.kill(c.proc.pid, signal.SIGSTOP)  # the reader is frozen while the execs happen
    try:
        subprocess.run([execprobe(), "storm", "200", "/bin/true", prefix], capture_output=True, check=True)
    finally:
        os.kill(c.proc.pid, signal.SIGCONT)
    time.sleep(0.5)
    assert c.stop() == 0
    lines = c.lines()
    gaps = [d for d in lines if d["msg"] == "gap"]
    assert gaps and all(g["fields"]["reason"] == "kernel_ring_full" for g in gaps)
    assert all(g["level"] == "WARN" for g in gaps)
    captured = len(tags_in(lines, prefix + "-"))
    lost = sum(g["fields"]["lost"] for g in gaps)
    assert captured < 200
    assert captured + lost >= 200  # host execs may be among the lost, never fewer than ours
    assert "kernel ring buffer was full" in c.err_path.read_text()


def run_cli(
    *args: str, prefix: Sequence[str] = (), preexec: Any = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`execlog ARGS`, run under `prefix` (e.g. setpriv, unshare) when given."""
    return subprocess.run(
        [*prefix, *EXECLOG, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
        preexec_fn=preexec,
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("execlog: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_missing_btf_is_one_clear_line() -> None:
    require_bpf()
    result = run_cli("run", "--btf-path", "/nonexistent/vmlinux")
    assert result.returncode == 1
    line = one_error_line(result)
    assert "BTF file /nonexistent/vmlinux not found" in line
    assert "fix:" in line


def test_without_privileges_is_one_clear_line() -> None:
    require_bpf()
    # uid 0 with an empty bounding set execs with no capabilities at all: a container without
    # CAP_BPF/CAP_PERFMON, or a user who is not root. (A uid switch cannot even exec the venv's
    # interpreter, which lives under /root.)
    result = run_cli("run", prefix=("setpriv", "--bounding-set=-all", "--inh-caps=-all"))
    assert result.returncode == 1
    line = one_error_line(result)
    assert "CAP_BPF" in line
    assert "run as root" in line


def test_no_tracefs_with_the_classic_tracepoint_is_one_clear_line() -> None:
    require_bpf()
    script = 'umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug 2>/dev/null; exec "$@"'
    result = run_cli("run", "--exec-hook", "tracepoint", prefix=("unshare", "-m", "sh", "-c", script, "sh"))
    assert result.returncode == 1
    line = one_error_line(result)
    assert "tracepoint" in line
    assert "mount tracefs" in line


def test_bad_setting_exits_2_naming_the_flag() -> None:
    result = run_cli("run", "--argv-cap", "lots")
    assert result.returncode == 2
    assert (
        one_error_line(result)
        == "execlog: bad setting: flag --argv-cap: not a size: 'lots' (examples: 32768, 32KiB, 8MiB)"
    )


def test_check_reports_each_requirement_and_the_hooks_in_use() -> None:
    require_bpf()
    result = run_cli("check")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for name in ("kernel", "btf", "privileges", "ring buffer", "tracefs", "cgroups", "program"):
        assert any(line.split()[1:2] == name.split()[:1] for line in out.splitlines()), name
    assert "loaded and attached on tp_btf/sched_process_exec" in out
    assert "this node can run execlog" in out


def test_check_names_the_fix_for_each_unmet_requirement() -> None:
    require_bpf()
    result = run_cli("check", "--btf-path", "/nonexistent")
    assert result.returncode == 1
    fail = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert any("btf" in line and "fix:" in line for line in fail)
    assert "cannot run execlog" in result.stdout


def test_help_explains_every_setting_and_its_environment_variable() -> None:
    result = run_cli("run", "--help")
    assert result.returncode == 0
    for text in ("--argv-cap", "EXECLOG_ARGV_CAP", "--ring-size", "--config", "SIGTERM", "Exit status"):
        assert text in result.stdout
