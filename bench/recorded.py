"""Real ring records for replay benchmarks: a corpus of command lines, exec'd and captured.

The records come from the loaded BPF program, so their sizes and contents are what the
collector sees in production; only the binary is /bin/true, so the execs cost nothing to run.
"""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from pathlib import Path

from collector.bpf.hierarchy import resolve_hierarchy
from collector.bpf.program import ExecProgram, ProgramOptions
from collector.event.kinds.exec import EXEC
from tests.support.build import execprobe

__all__ = ["COMMAND_LINES", "record_execs"]

REPO = Path(__file__).resolve().parents[1]

# What a developer's workspace runs: short tools, compilers with long flag lists, scripts.
COMMAND_LINES: tuple[tuple[str, ...], ...] = (
    ("git", "status", "--porcelain"),
    ("git", "log", "--oneline", "-n", "20", "--decorate"),
    ("ls", "-la", "/home/coder/project"),
    ("cat", "package.json"),
    (
        "node",
        "/home/coder/.vscode-server/bin/node_modules/typescript/lib/tsserver.js",
        "--useInferredProjectPerProjectRoot",
    ),
    ("python3", "-m", "pytest", "-q", "tests/test_api.py::test_login", "--maxfail=1"),
    (
        "gcc",
        "-O2",
        "-g",
        "-Wall",
        "-Wextra",
        "-fPIC",
        "-Iinclude",
        "-I/usr/include/openssl",
        "-DNDEBUG",
        "-D_GNU_SOURCE",
        "-c",
        "src/server/http_connection.c",
        "-o",
        "build/obj/server/http_connection.o",
        "-MMD",
        "-MP",
        "-MF",
        "build/obj/server/http_connection.d",
    ),
    ("make", "-j8", "all"),
    ("kubectl", "get", "pods", "-n", "coder", "-o", "wide"),
    ("go", "build", "-trimpath", "-ldflags=-s -w", "-o", "bin/server", "./cmd/server"),
    ("sh", "-c", "npm run build && npm test -- --coverage"),
    ("grep", "-rn", "TODO", "--include=*.py", "src/"),
    ("curl", "-fsSL", "https://example.com/api/v1/health"),
    ("docker", "build", "-t", "registry.example.com/team/app:dev", "."),
)


def record_execs(count: int, ring_size: int = 1 << 25) -> list[bytes]:
    """Exec `count` command lines from the corpus in a private cgroup; return their raw records."""
    hierarchy = resolve_hierarchy("auto", Path("/sys/fs/cgroup"), Path("/proc"))
    cgroup = hierarchy.mount / f"execlog-bench-{uuid.uuid4().hex[:8]}"
    cgroup.mkdir()
    probe = execprobe()
    script = cgroup.with_name(cgroup.name + ".sh")
    try:
        options = ProgramOptions(
            REPO / "bpf" / "exec.bpf.o",
            ring_size=ring_size,
            cgroup_subsys_idx=hierarchy.subsys_idx,
            cgroup_filter=frozenset({cgroup.stat().st_ino}),
        )
        with ExecProgram(options) as program:
            records: list[bytes] = []
            with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
                script = Path(f.name)
                f.write(f"echo $$ > {cgroup / 'cgroup.procs'}\n")  # the shell joins, then its children exec
                for i in range(count):
                    args = " ".join(_quote(a) for a in COMMAND_LINES[i % len(COMMAND_LINES)])
                    f.write(f'"$1" execve /bin/true {args}\n')
            proc = subprocess.Popen(["/bin/sh", str(script), str(probe)])
            while proc.poll() is None:
                records += program.read(50)
            records += program.read(0)
            if program.counters().lost:
                raise RuntimeError(f"the ring lost {program.counters().lost} records while recording")
        # The shell's own exec and execprobe's are records too; keep the corpus ones.
        # The filename follows the exec header: keep only the storm's own /bin/true execs.
        name = slice(EXEC.size, EXEC.size + len(b"/bin/true"))
        return [r for r in records if r[name] == b"/bin/true"][:count]
    finally:
        script.unlink(missing_ok=True)
        cgroup.rmdir()


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"
