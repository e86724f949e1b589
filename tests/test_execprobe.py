"""execprobe really performs each kind of exec, and build.py builds it only when it must.

No BPF here: what the exec'd programs report about themselves (/proc/self/cmdline, $$, $PPID,
id) is the proof that the exec happened, in the process and with the argv the tests chose.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.build import EXECPROBE_SOURCE, BuildError, build, execprobe
from tests.support.require import require_root

EXEC_MODES = ["execve", "execveat", "fexecve", "thread", "fork"]
# Modes in which the exec'd image replaces execprobe itself rather than a forked child.
IN_PLACE_MODES = ["execve", "execveat", "fexecve", "thread"]
TIMEOUT = 60


@pytest.fixture(scope="module")
def probe() -> Path:
    return execprobe()


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=TIMEOUT, check=False, env=env
    )


def test_execve_passes_argv_verbatim_with_empty_arguments(probe: Path) -> None:
    proc = run(probe, "execve", "/bin/echo", "echo", "a", "", "b")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "a  b\n"


@pytest.mark.parametrize("mode", EXEC_MODES)
def test_mode_execs_with_the_given_argv_including_argv0(probe: Path, mode: str) -> None:
    # cat prints its own cmdline: argv[0] is ours, not the path, only if the exec used our argv.
    proc = subprocess.run(
        [str(probe), mode, "/bin/cat", f"zeroth-{mode}", "/proc/self/cmdline"],
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"zeroth-{mode}\0/proc/self/cmdline\0".encode()


@pytest.mark.parametrize("mode", IN_PLACE_MODES)
def test_in_place_modes_exec_in_the_probe_process(probe: Path, mode: str) -> None:
    # For `thread` this also shows the kernel's de_thread at work: the exec came from a
    # non-leader thread, yet the new image runs under the original pid.
    with subprocess.Popen(
        [str(probe), mode, "/bin/sh", "sh", "-c", "echo $$"], stdout=subprocess.PIPE, text=True
    ) as proc:
        out, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0
    assert int(out) == proc.pid


def test_empty_argv_is_allowed(probe: Path) -> None:
    proc = run(probe, "execve", "/bin/true")
    assert proc.returncode == 0, proc.stderr


def read_to_eof(fd: int, timeout: float) -> bytes:
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise TimeoutError(f"no EOF on fd {fd} within {timeout}s")
        chunk = os.read(fd, 4096)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def test_fork_writes_child_pid_to_fd3_while_the_child_runs(probe: Path) -> None:
    r, w = os.pipe()
    try:
        # The pipe's write end becomes fd 3 in execprobe only: dup2 clears close-on-exec on the copy,
        # and every other descriptor of ours is close-on-exec already.
        with subprocess.Popen(
            [str(probe), "fork", "/bin/sh", "sh", "-c", "echo $$ $PPID; cat >/dev/null"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            close_fds=False,
            preexec_fn=lambda: os.dup2(w, 3),
        ) as proc:
            os.close(w)
            w = -1
            # The child blocks on stdin until we close it, so EOF here proves that neither it nor
            # execprobe keeps fd 3 open: a test can learn the pid while the child still runs.
            reported = read_to_eof(r, TIMEOUT).decode()
            out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    assert proc.returncode == 0
    child_pid, child_ppid = (int(x) for x in out.split())
    assert reported == f"{child_pid}\n"
    assert child_pid != proc.pid
    assert child_ppid == proc.pid


def test_fork_without_fd3_prints_nothing_of_its_own(probe: Path) -> None:
    proc = run(probe, "fork", "/bin/true", "true")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


@pytest.mark.parametrize(("script", "status"), [("exit 7", 7), ("kill -TERM $$", 128 + 15)])
def test_fork_exits_with_the_child_status(probe: Path, script: str, status: int) -> None:
    proc = run(probe, "fork", "/bin/sh", "sh", "-c", script)
    assert proc.returncode == status


def test_comm_is_set_before_the_exec(probe: Path) -> None:
    # The exec resets the child's own comm, but its parent keeps the name we set, and the child
    # inherited it at fork: it was the caller's comm at the moment of the exec.
    proc = run(probe, "comm", "probe-caller", "fork", "/bin/sh", "sh", "-c", "cat /proc/$PPID/comm")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "probe-caller\n"


def test_comm_name_is_cut_to_the_kernel_limit(probe: Path) -> None:
    proc = run(probe, "comm", "a-name-longer-than-15", "fork", "/bin/sh", "sh", "-c", "cat /proc/$PPID/comm")
    assert proc.stdout == "a-name-longer-t\n"


@pytest.mark.parametrize("mode", EXEC_MODES)
def test_setid_execs_unprivileged(probe: Path, mode: str) -> None:
    require_root()
    proc = run(probe, "setid", "4242", "4343", mode, "/bin/sh", "sh", "-c", "id -u; id -g; id -G")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["4242", "4343", "4343"]


def test_setid_combines_with_comm(probe: Path) -> None:
    require_root()
    proc = run(probe, "comm", "unpriv", "setid", "4242", "4242", "execve", "/usr/bin/id", "id", "-u")
    assert (proc.returncode, proc.stdout) == (0, "4242\n")


def test_setid_failure_is_a_setup_error(probe: Path) -> None:
    require_root()
    # Once unprivileged, going back to root must fail, before any exec.
    proc = run(probe, "setid", "4242", "4242", "setid", "0", "0", "execve", "/bin/true", "true")
    assert proc.returncode == 1
    assert "setgroups" in proc.stderr


@pytest.mark.parametrize("mode", EXEC_MODES)
def test_exec_failure_exits_127_with_the_reason(probe: Path, mode: str, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-program"
    proc = run(probe, mode, missing, "x")
    assert proc.returncode == 127
    assert str(missing) in proc.stderr
    assert "No such file or directory" in proc.stderr


def test_exec_of_a_non_executable_file_exits_127(probe: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_text("not a program\n")
    proc = run(probe, "execve", data, "data")
    assert proc.returncode == 127
    assert "Permission denied" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["bogus", "/bin/true"],
        ["execve"],
        ["comm", "name"],
        ["setid", "1", "1"],
        ["setid", "x", "1", "execve", "/bin/true"],
        ["setid", "1", "-1", "execve", "/bin/true"],
        ["storm", "10", "/bin/true"],
        ["storm", "ten", "/bin/true", "t"],
        ["storm", "10", "/bin/true", "t", "0"],
        ["storm", "10", "/bin/true", "t", "1", "fast"],
        ["storm", "10", "/bin/true", "t", "1", "-5"],
        ["storm", "10", "/bin/true", "t", "1", "5", "extra"],
    ],
)
def test_usage_errors_exit_2(probe: Path, args: list[str]) -> None:
    proc = run(probe, *args)
    assert proc.returncode == 2
    assert proc.stderr
    assert proc.stdout == ""


def test_help_goes_to_stdout_and_exits_0(probe: Path) -> None:
    proc = run(probe, "-h")
    assert proc.returncode == 0
    for word in ["execve", "execveat", "fexecve", "thread", "fork", "comm", "setid", "storm"]:
        assert word in proc.stdout


def test_storm_spawns_each_tag_once_and_reports_json(probe: Path, tmp_path: Path) -> None:
    out = tmp_path / "tags"
    script = tmp_path / "record"
    script.write_text('#!/bin/sh\nprintf "%s\\n" "$1" >> "$STORM_OUT"\necho noise; echo noise >&2\n')
    script.chmod(0o755)
    count = 200
    proc = run(probe, "storm", str(count), script, "tag", "4", env={**os.environ, "STORM_OUT": str(out)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1  # the children's output went to /dev/null
    report = json.loads(proc.stdout)
    assert set(report) == {"count", "failed", "nonzero", "seconds", "rate"}
    assert (report["count"], report["failed"], report["nonzero"]) == (count, 0, 0)
    assert report["seconds"] > 0
    assert report["rate"] == pytest.approx(count / report["seconds"], rel=0.01)
    assert sorted(out.read_text().split()) == sorted(f"tag-{i}" for i in range(count))


def test_storm_defaults_to_one_at_a_time(probe: Path) -> None:
    proc = run(probe, "storm", "50", "/bin/true", "t")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["count"] == 50


def test_a_paced_storm_never_runs_ahead_of_its_rate(probe: Path) -> None:
    # Spawn i starts no earlier than i/RATE s after the first, so 41 spawns at 200/s take at least
    # 0.2 s however fast the machine is; RATE 0 is the unpaced storm.
    proc = run(probe, "storm", "41", "/bin/true", "t", "2", "200")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["count"] == 41
    assert report["seconds"] >= 0.2
    assert run(probe, "storm", "5", "/bin/true", "t", "1", "0").returncode == 0


def test_storm_counts_failed_spawns_and_nonzero_children(probe: Path, tmp_path: Path) -> None:
    proc = run(probe, "storm", "5", tmp_path / "missing", "t", "2")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert (report["count"], report["failed"], report["nonzero"]) == (5, 5, 0)
    assert "No such file or directory" in proc.stderr

    proc = run(probe, "storm", "5", "/bin/false", "t", "2")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert (report["count"], report["failed"], report["nonzero"]) == (5, 0, 5)


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_source_is_warning_free(compiler: str, tmp_path: Path) -> None:
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} not installed")
    cmd = [compiler, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread"]
    proc = run(*cmd, "-o", tmp_path / "execprobe", EXECPROBE_SOURCE)
    assert proc.returncode == 0, proc.stderr


# build.py, on a copy of the source so the shared binary is left alone.


@pytest.fixture
def source_copy(tmp_path: Path) -> Path:
    source = tmp_path / "execprobe.c"
    shutil.copy(EXECPROBE_SOURCE, source)
    return source


def test_build_compiles_once_then_only_when_the_source_is_newer(source_copy: Path, tmp_path: Path) -> None:
    output = tmp_path / "bin" / "execprobe"
    assert build(source_copy, output) == output
    first = output.stat().st_mtime_ns
    assert run(output, "execve", "/bin/true", "true").returncode == 0

    build(source_copy, output)
    assert output.stat().st_mtime_ns == first

    later = first + 10**9
    os.utime(source_copy, ns=(later, later))
    inode = output.stat().st_ino
    build(source_copy, output)
    assert output.stat().st_ino != inode  # a new binary was renamed into place


def test_concurrent_builds_leave_one_working_binary(source_copy: Path, tmp_path: Path) -> None:
    output = tmp_path / "bin" / "execprobe"
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: build(source_copy, output), range(3)))
    assert results == [output] * 3
    assert sorted(p.name for p in output.parent.iterdir()) == ["execprobe"]  # no temporaries left
    assert run(output, "execve", "/bin/echo", "echo", "ok").stdout == "ok\n"


def test_build_without_a_compiler_says_so(
    source_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(BuildError, match="no C compiler found"):
        build(source_copy, tmp_path / "bin" / "execprobe")

    monkeypatch.setenv("CC", str(tmp_path / "no-cc"))
    with pytest.raises(BuildError, match=r"no C compiler found.*no-cc"):
        build(source_copy, tmp_path / "bin" / "execprobe")


def test_build_reports_compiler_errors_and_cleans_up(source_copy: Path, tmp_path: Path) -> None:
    source_copy.write_text("int main(void) { return missing; }\n")
    output = tmp_path / "bin" / "execprobe"
    with pytest.raises(BuildError, match="missing"):
        build(source_copy, output)
    assert list(output.parent.iterdir()) == []
