"""`execlog run` as a user runs it: a real process, its stdout read back as JSON lines."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.require import REPO, require_bpf

__all__ = ["EXECLOG", "RunningCollector", "start"]

EXECLOG = [sys.executable, "-m", "collector"]


class RunningCollector:
    """`execlog run` in the background, stdout to a file that tests read as JSON lines."""

    def __init__(self, tmp_path: Path, *flags: str, out_path: Path | None = None) -> None:
        self.out_path = out_path or tmp_path / "stdout.jsonl"
        self.err_path = tmp_path / "stderr.log"
        self._out = self.out_path.open("wb")
        self._err = self.err_path.open("wb")
        self.proc = subprocess.Popen([*EXECLOG, "run", *flags], stdout=self._out, stderr=self._err, cwd=REPO)
        deadline = time.monotonic() + 20
        while b"execlog running" not in self.err_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"execlog did not start:\n{self.err_path.read_text()}")
            time.sleep(0.05)

    def lines(self) -> list[dict[str, Any]]:
        """The complete lines so far; a line still being written (no newline yet) is not one."""
        data = self.out_path.read_bytes()
        return [json.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines()]

    def wait_for(self, tag: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for doc in self.lines():
                if doc["msg"] == "exec" and tag in doc["fields"]["event"]["argv"]:
                    return doc
            time.sleep(0.05)
        raise AssertionError(f"{tag} never appeared")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._out.close()
        self._err.close()
        return code


def start(started: list[RunningCollector], tmp_path: Path, *flags: str) -> RunningCollector:
    require_bpf()
    c = RunningCollector(tmp_path, *flags)
    started.append(c)
    return c
