"""Fixtures that load the real exec program.

Each test gets a private cgroup in the hierarchy the program tracks, and the program is loaded
with its in-kernel cgroup filter set to that cgroup. The execs a test starts inside it are then
exactly the events it sees: no host noise, so counts can be exact.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from collector.bpf.hierarchy import Hierarchy, resolve_hierarchy
from collector.bpf.program import ExecProgram, ProgramOptions
from collector.event import BootClock, ExecEvent, decode
from tests.support.collector import RunningCollector
from tests.support.require import REPO, require_bpf

OBJECT = REPO / "bpf" / "exec.bpf.o"


@dataclass(slots=True)
class TestCgroup:
    path: Path

    @property
    def id(self) -> int:
        return self.path.stat().st_ino

    def join(self) -> None:
        """Move the calling process in; used as preexec_fn, so children exec inside."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))


@pytest.fixture(scope="session")
def hierarchy() -> Hierarchy:
    return resolve_hierarchy("auto", Path("/sys/fs/cgroup"), Path("/proc"))


@pytest.fixture
def test_cgroup(hierarchy: Hierarchy) -> Iterator[TestCgroup]:
    require_bpf()
    # Two levels, so that the recorded parent name is the test's and not the hierarchy root's.
    top = hierarchy.mount / f"execlog-test-{uuid.uuid4().hex[:12]}"
    path = top / "leaf"
    path.mkdir(parents=True)
    try:
        yield TestCgroup(path)
    finally:
        remove_cgroup(top)


def remove_cgroup(path: Path) -> None:
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        remove_cgroup(child)
    deadline = time.monotonic() + 5
    while path.exists():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            for pid in (path / "cgroup.procs").read_text().split():
                os.kill(int(pid), 9)
        try:
            path.rmdir()
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@dataclass(slots=True)
class Capture:
    program: ExecProgram
    cgroup: TestCgroup
    clock: BootClock = field(default_factory=BootClock)
    events: list[ExecEvent] = field(default_factory=list)

    def run(self, args: Sequence[str | bytes | Path], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        """Run a command whose process starts inside the test cgroup."""
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        return subprocess.run(list(args), preexec_fn=self.cgroup.join, check=False, **kwargs)

    def popen(
        self, args: Sequence[str | bytes | Path], fd3: int | None = None, **kwargs: Any
    ) -> subprocess.Popen[bytes]:
        """Start a command inside the test cgroup; `fd3` becomes the child's fd 3."""

        def setup() -> None:
            if fd3 is not None:
                os.dup2(fd3, 3)  # dup2 clears close-on-exec, and close_fds is off below
            self.cgroup.join()

        if fd3 is not None:
            kwargs["close_fds"] = False  # Python's own fds are not inheritable anyway (PEP 446)
        return subprocess.Popen(list(args), preexec_fn=setup, **kwargs)

    def drain(self) -> list[ExecEvent]:
        """Everything recorded so far, decoded; also kept in `events`."""
        new = [decode(raw, self.clock.offset_ns()) for raw in self.program.read(0)]
        self.events.extend(new)
        return new

    def wait_for(self, predicate: Callable[[ExecEvent], bool], timeout: float = 5.0) -> ExecEvent:
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events:
                if predicate(ev):
                    return ev
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching exec among {len(self.events)} captured")
            self.events.extend(decode(raw, self.clock.offset_ns()) for raw in self.program.read(50))


MakeCapture = Callable[..., Capture]


@pytest.fixture
def make_capture(test_cgroup: TestCgroup, hierarchy: Hierarchy) -> Iterator[MakeCapture]:
    """Load the real program, filtered to the test cgroup, with the given ProgramOptions."""
    programs: list[ExecProgram] = []

    def make(**options: Any) -> Capture:
        options.setdefault("cgroup_subsys_idx", hierarchy.subsys_idx)
        options.setdefault("cgroup_filter", frozenset({test_cgroup.id}))
        program = ExecProgram(ProgramOptions(OBJECT, **options))
        programs.append(program)
        return Capture(program, test_cgroup)

    yield make
    for program in programs:
        program.close()


@pytest.fixture
def capture(make_capture: MakeCapture) -> Capture:
    return make_capture()


@pytest.fixture
def collector() -> Iterator[list[RunningCollector]]:
    """Collectors a test starts (with tests.support.collector.start); killed if still running."""
    started: list[RunningCollector] = []
    yield started
    for c in started:
        if c.proc.poll() is None:
            c.stop(signal.SIGKILL)
