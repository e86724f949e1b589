"""The tracers a storm is measured under, each a real process started as a user would start it.

- `ExeclogRun`: `execlog run` with stdout to a file (its JSON lines), optionally Kubernetes mode
  and gRPC subscribers (`bench.subscriber` processes reading everything);
- `BpftraceRun`: Debian's `bpftrace /usr/sbin/execsnoop.bt`, stdout to a file.

Every tracer gives its pid (for CPU and RSS), the ids of its BPF programs (for bpf_stats), how
many records it has written so far, and after `stop` what it delivered and lost.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import orjson

from bench.bpfstats import own_prog_ids
from bench.procstat import rss_bytes
from tests.support.require import REPO

__all__ = ["BpftraceRun", "Delivery", "ExeclogRun", "JsonLog", "Tracer"]

EXECSNOOP = Path("/usr/sbin/execsnoop.bt")


@dataclass(slots=True)
class Delivery:
    """What one outlet delivered of a storm, and what it reported lost (reason -> records)."""

    outlet: str
    tagged: int  # records of the storm's execs that arrived
    lost: dict[str, int] = field(default_factory=dict)
    p50_ms: float | None = None  # latency exec -> receipt (gRPC subscribers only)
    p99_ms: float | None = None


class Tracer(Protocol):
    name: str

    @property
    def pid(self) -> int: ...

    def prog_ids(self) -> list[int]: ...

    def records(self) -> int | None:
        """Exec records written so far, when they can be counted while it runs."""
        ...

    def caught_up(self, stem: str, execs: int) -> bool:
        """Every outlet has the storm's `execs` records (always True when that is unknowable)."""
        ...

    def rss_bytes(self) -> int: ...

    def finish(self, stem: str) -> list[Delivery]:
        """Stop the tracer; what each of its outlets delivered of the storm and reported lost."""
        ...


class JsonLog:
    """Counts what `execlog run` wrote to its stdout file, reading only the new bytes each time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self.execs = 0
        self.lost: Counter[str] = Counter()
        self.tagged: Counter[str] = Counter()

    def poll(self) -> None:
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if b'"msg":"exec"' in line:
                self.execs += 1
                match = _TAG.search(line)
                if match:
                    self.tagged[match.group(1).decode()] += 1
            elif b'"msg":"gap"' in line:
                fields = orjson.loads(line)["fields"]
                self.lost[fields["reason"]] += fields["lost"]


_TAG = re.compile(rb'"argv":\["[^"]*","([A-Za-z0-9]+)-[0-9]+"\]')


class ExeclogRun:
    def __init__(self, name: str, flags: tuple[str, ...] = (), subscribers: int = 0) -> None:
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix="execlog-bench-"))
        self.json = JsonLog(self.dir / "stdout.jsonl")
        self._err_path = self.dir / "stderr.log"
        args = list(flags)
        if subscribers:
            self.address = f"unix://{self.dir}/grpc.sock"
            args += ["--grpc-listen", self.address]
        with self.json.path.open("wb") as out, self._err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "collector", "run", *args], stdout=out, stderr=err, cwd=REPO
            )
        self._wait_for(b"execlog running", 30)
        self.subscribers: list[subprocess.Popen[str]] = []
        for i in range(subscribers):
            sub = subprocess.Popen(
                [sys.executable, "-m", "bench.subscriber", self.address, f"bench-{i + 1}"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=REPO,
            )
            self.subscribers.append(sub)
        for sub in self.subscribers:
            assert sub.stdout is not None
            line = sub.stdout.readline().strip()
            if line != "ready":
                self.stop()
                raise RuntimeError(f"a subscriber of {name} did not start: {line!r}")
        self.summary: dict[str, int] = {}

    def _wait_for(self, text: bytes, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self._err_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"execlog did not start:\n{self._err_path.read_text()}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def prog_ids(self) -> list[int]:
        return own_prog_ids(self.pid)

    def records(self) -> int:
        self.json.poll()
        return self.json.execs

    def _report(self, stem: str) -> list[dict[str, object]]:
        reports = []
        for sub in self.subscribers:
            assert sub.stdin is not None and sub.stdout is not None
            sub.stdin.write(f"report {stem}\n")
            sub.stdin.flush()
            reports.append(json.loads(sub.stdout.readline()))
        return reports

    def caught_up(self, stem: str, execs: int) -> bool:
        self.json.poll()
        if self.json.tagged[stem] < execs:
            return False
        return all(int(str(r["count"])) >= execs for r in self._report(stem))

    def finish(self, stem: str) -> list[Delivery]:
        try:
            return self._deliveries(stem)
        finally:
            self.stop()

    def _deliveries(self, stem: str) -> list[Delivery]:
        self.json.poll()
        out = [Delivery("stdout", self.json.tagged[stem], dict(self.json.lost))]
        for i, report in enumerate(self._report(stem), 1):
            gaps = report["gaps"]
            assert isinstance(gaps, dict)
            out.append(
                Delivery(
                    f"subscriber {i}",
                    int(str(report["count"])),
                    {str(k).removeprefix("REASON_").lower(): int(v) for k, v in gaps.items()},
                    float(str(report["p50_ms"])),
                    float(str(report["p99_ms"])),
                )
            )
        return out

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def stop(self) -> None:
        """SIGTERM (it delivers what the kernel recorded), then end the subscribers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for sub in self.subscribers:
            if sub.stdin is not None:
                sub.stdin.close()
            sub.kill()
            sub.wait()
        self.subscribers = []
        match = re.search(r"execlog stopped: (.*)", self._err_path.read_text())
        if match:
            self.summary = {k: int(v) for k, v in (p.split("=") for p in match.group(1).split())}
        shutil.rmtree(self.dir, ignore_errors=True)


class BpftraceRun:
    """`bpftrace execsnoop.bt > file`: its output is block-buffered, so it is counted after stop."""

    name = "bpftrace execsnoop.bt"

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="execlog-bench-bt-"))
        self._out_path = self.dir / "stdout.txt"
        with self._out_path.open("wb") as out, (self.dir / "stderr.txt").open("wb") as err:
            self.proc = subprocess.Popen(["bpftrace", str(EXECSNOOP)], stdout=out, stderr=err)
        # Attached once its tracepoint programs are loaded (one per sys_enter_exec* tracepoint).
        deadline = time.monotonic() + 30
        while len(self.prog_ids()) < 2:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bpftrace did not start: {(self.dir / 'stderr.txt').read_text()}")
            time.sleep(0.05)
        time.sleep(0.2)  # the programs are loaded just before they are attached
        self._text = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def prog_ids(self) -> list[int]:
        return own_prog_ids(self.pid)

    def records(self) -> None:
        return None

    def caught_up(self, stem: str, execs: int) -> bool:
        return True

    def finish(self, stem: str) -> list[Delivery]:
        self.stop()
        tagged = len(re.findall(rf" {stem}-[0-9]+$", self._text, re.MULTILINE))
        lost = sum(int(n) for n in re.findall(r"^Lost ([0-9]+) events", self._text, re.MULTILINE))
        return [Delivery("stdout", tagged, {"perf_buffer_lost": lost} if lost else {})]

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # bpftrace flushes its output on SIGINT
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._text = self._out_path.read_text(errors="replace")
        shutil.rmtree(self.dir, ignore_errors=True)
