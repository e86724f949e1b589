"""scripts/check_btf.sh against fixture node trees, and once against this machine as it is."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.build import execprobe
from tests.support.require import REPO, require, require_root

SCRIPT = REPO / "scripts" / "check_btf.sh"
NEW = "6.1.0-18-amd64"
BTF_Y = "CONFIG_BPF=y\nCONFIG_DEBUG_INFO_BTF=y\nCONFIG_DEBUG_INFO_BTF_MODULES=y\n"
BTF_NOT_SET = "CONFIG_BPF=y\n# CONFIG_DEBUG_INFO_BTF is not set\n"
# BTF's magic 0xeB9F in the host's byte order, then the rest of a header's worth of bytes.
BTF_BYTES = struct.pack("=HBB", 0xEB9F, 1, 0) + bytes(20)


@dataclass
class Result:
    code: int
    lines: dict[str, tuple[str, str]]  # check name -> (status, whole line)
    stdout: str

    def status(self, check: str) -> str:
        return self.lines[check][0]

    def line(self, check: str) -> str:
        return self.lines[check][1]


def parse(stdout: str) -> dict[str, tuple[str, str]]:
    lines = {}
    for line in stdout.splitlines():
        status, check = line.split()[:2]
        lines[check.rstrip(":")] = (status, line)
    return lines


def run_script(env_overrides: dict[str, str] | None, shell: str = "sh") -> Result:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECK_BTF_")}
    env.update(env_overrides or {})
    proc = subprocess.run(
        [shell, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.stderr == ""
    result = Result(proc.returncode, parse(proc.stdout), proc.stdout)
    assert set(result.lines) == {"kernel", "config", "btf"}, proc.stdout
    return result


class Node:
    """A fake node: its release, /proc/config.gz, /boot and kernel BTF under one directory."""

    def __init__(self, root: Path, release: str = NEW) -> None:
        self.root = root
        self.release = release
        self.proc_config = root / "proc" / "config.gz"
        self.boot = root / "boot"
        self.vmlinux = root / "sys" / "kernel" / "btf" / "vmlinux"
        for d in (self.proc_config.parent, self.boot, self.vmlinux.parent):
            d.mkdir(parents=True, exist_ok=True)

    def with_proc_config(self, text: str) -> Node:
        self.proc_config.write_bytes(gzip.compress(text.encode()))
        return self

    def with_boot_config(self, text: str, release: str | None = None) -> Node:
        (self.boot / f"config-{release or self.release}").write_text(text)
        return self

    def with_btf(self, data: bytes = BTF_BYTES) -> Node:
        self.vmlinux.write_bytes(data)
        return self

    def env(self) -> dict[str, str]:
        return {
            "CHECK_BTF_RELEASE": self.release,
            "CHECK_BTF_PROC_CONFIG": str(self.proc_config),
            "CHECK_BTF_BOOT_DIR": str(self.boot),
            "CHECK_BTF_VMLINUX": str(self.vmlinux),
        }

    def check(self, shell: str = "sh") -> Result:
        return run_script(self.env(), shell)


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def healthy(node: Node, release: str) -> Node:
    node.release = release
    return node.with_proc_config(BTF_Y).with_btf()


def assert_fix(result: Result, check: str, *words: str) -> None:
    line = result.line(check)
    assert result.status(check) == "FAIL", result.stdout
    assert "fix:" in line, line
    for word in words:
        assert word in line.split("fix:", 1)[1], line


# --- kernel release -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "release",
    [
        "6.1.0-18-amd64",
        "5.15.0-1051-aws",
        "5.8",
        "5.8.0",
        "5.10.0-rc1",
        "6.18.44-fc-v595",
        "10.0.0",
        "5.08.0",  # a leading zero must not be read as octal
        "99999999999999999999.0.0",
    ],
)
def test_new_enough_kernels_pass(node: Node, release: str) -> None:
    result = healthy(node, release).check()
    assert result.code == 0, result.stdout
    assert [result.status(c) for c in ("kernel", "config", "btf")] == ["OK", "OK", "OK"]
    assert release in result.line("kernel")


@pytest.mark.parametrize(
    ("release", "version"),
    [("5.4.0", "5.4"), ("4.19.112+", "4.19"), ("5.7.19-1-lts", "5.7"), ("3.10.0-1160.el7.x86_64", "3.10")],
)
def test_old_kernels_fail_with_the_fix(node: Node, release: str, version: str) -> None:
    result = healthy(node, release).check()
    assert result.code == 1
    assert_fix(result, "kernel", ">= 5.8")
    assert f"is {version}," in result.line("kernel")
    assert result.status("btf") == "OK"


@pytest.mark.parametrize("release", ["", "linux", "v5.15", "6", "5.x", "x5.15"])
def test_unparsable_release_is_unknown(node: Node, release: str) -> None:
    result = healthy(node, release).check()
    assert result.code == 2
    assert result.status("kernel") == "UNKNOWN"


def test_old_kernel_and_unknown_btf_is_a_failure(node: Node) -> None:
    node.release = "4.19.112+"
    result = node.check()  # no config, no BTF: undetermined, but the kernel already fails
    assert result.code == 1
    assert result.status("btf") == "UNKNOWN"


# --- kernel config --------------------------------------------------------------------------------


def test_proc_config_without_btf_fails_with_the_fix(node: Node) -> None:
    result = node.with_proc_config(BTF_NOT_SET).check()
    assert result.code == 1
    assert_fix(result, "config", "CONFIG_DEBUG_INFO_BTF=y")
    assert "is not set" in result.line("config")
    assert_fix(result, "btf", "CONFIG_DEBUG_INFO_BTF=y")


def test_btf_modules_option_is_not_mistaken_for_btf(node: Node) -> None:
    result = node.with_proc_config("CONFIG_DEBUG_INFO_BTF_MODULES=y\n").check()
    assert result.code == 1
    assert result.status("config") == "FAIL"


def test_boot_config_is_used_without_proc_config(node: Node) -> None:
    result = node.with_boot_config(BTF_Y).with_btf().check()
    assert result.code == 0
    assert result.status("config") == "OK"
    assert str(node.boot / f"config-{NEW}") in result.line("config")


def test_boot_config_without_btf_fails(node: Node) -> None:
    result = node.with_boot_config(BTF_NOT_SET).check()
    assert result.code == 1
    assert_fix(result, "config", "CONFIG_DEBUG_INFO_BTF=y")


def test_boot_config_of_another_release_does_not_count(node: Node) -> None:
    result = node.with_boot_config(BTF_Y, release="5.10.0-other").check()
    assert result.code == 2
    assert result.status("config") == "UNKNOWN"


def test_proc_config_wins_over_boot(node: Node) -> None:
    result = node.with_proc_config(BTF_Y).with_boot_config(BTF_NOT_SET).with_btf().check()
    assert result.code == 0
    assert str(node.proc_config) in result.line("config")


def test_corrupt_proc_config_falls_back_to_boot(node: Node) -> None:
    node.proc_config.write_text("CONFIG_DEBUG_INFO_BTF=y\n")  # not gzip
    result = node.with_boot_config(BTF_Y).with_btf().check()
    assert result.code == 0
    assert str(node.boot) in result.line("config")


def test_unknown_config_with_readable_btf_is_ok(node: Node) -> None:
    result = node.with_btf().check()
    assert result.code == 0
    assert result.status("config") == "UNKNOWN"
    assert result.status("btf") == "OK"


def test_no_config_and_no_btf_cannot_be_determined(node: Node) -> None:
    result = node.check()
    assert result.code == 2
    assert (result.status("config"), result.status("btf")) == ("UNKNOWN", "UNKNOWN")


def test_stale_boot_config_with_btf_present_only_warns(node: Node) -> None:
    result = node.with_boot_config(BTF_NOT_SET).with_btf().check()
    assert result.code == 0
    assert result.status("config") == "WARN"


# --- kernel BTF -----------------------------------------------------------------------------------


def test_btf_config_but_no_vmlinux_fails_with_the_fix(node: Node) -> None:
    result = node.with_proc_config(BTF_Y).check()
    assert result.code == 1
    assert_fix(result, "btf", "/sys")


def test_vmlinux_that_is_not_btf_fails(node: Node) -> None:
    result = node.with_proc_config(BTF_Y).with_btf(b"\x7fELF" + bytes(20)).check()
    assert result.code == 1
    assert_fix(result, "btf", "/sys")


def test_vmlinux_that_is_a_directory_fails(node: Node) -> None:
    node.vmlinux.mkdir()
    result = node.with_proc_config(BTF_Y).check()
    assert result.code == 1
    assert result.status("btf") == "FAIL"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    # pytest's tmp_path is private to root; this one another user can enter.
    path = Path(tempfile.mkdtemp(prefix="check-btf-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_unreadable_vmlinux_fails_with_the_fix(shared_dir: Path) -> None:
    require_root()  # root reads any file, so the check runs as another user
    node = Node(shared_dir).with_proc_config(BTF_Y).with_btf()
    for d in (shared_dir, *shared_dir.rglob("*")):
        d.chmod(0o755 if d.is_dir() else 0o644)
    node.vmlinux.chmod(0)
    script = shared_dir / "check_btf.sh"
    shutil.copy(SCRIPT, script)
    script.chmod(0o755)
    proc = subprocess.run(
        [str(execprobe()), "setid", "65534", "65534", "execve", "/bin/sh", "sh", str(script)],
        env={**node.env(), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    result = Result(proc.returncode, parse(proc.stdout), proc.stdout)
    assert result.code == 1, proc.stdout + proc.stderr
    assert_fix(result, "btf", "root")
    assert "cannot be read" in result.line("btf")


# --- interface ------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_documents_exit_codes_and_overrides(flag: str) -> None:
    proc = subprocess.run(["sh", str(SCRIPT), flag], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0
    assert "Exit status" in proc.stdout
    documented = {
        line.split()[0] for line in proc.stdout.splitlines() if line.startswith("  ") and line.split()
    }
    assert {"0", "1", "2", "64"} <= documented
    assert {
        "CHECK_BTF_RELEASE",
        "CHECK_BTF_PROC_CONFIG",
        "CHECK_BTF_BOOT_DIR",
        "CHECK_BTF_VMLINUX",
    } <= documented


def test_unknown_argument_is_a_usage_error() -> None:
    proc = subprocess.run(
        ["sh", str(SCRIPT), "--bogus"], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 64
    assert "--bogus" in proc.stderr


def test_script_is_executable() -> None:
    assert os.access(SCRIPT, os.X_OK)


@pytest.mark.parametrize("shell", [["dash"], ["bash", "--posix"], ["busybox", "sh"]], ids=lambda s: s[0])
def test_runs_under_other_shells(node: Node, shell: list[str]) -> None:
    # The DaemonSet image or a node's debug pod may offer only busybox.
    if shutil.which(shell[0]) is None:
        pytest.skip(f"{shell[0]} not installed")
    env = {**os.environ, **node.with_proc_config(BTF_NOT_SET).env()}
    proc = subprocess.run(
        [*shell, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert parse(proc.stdout)["config"][0] == "FAIL"


def test_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck)")
    proc = subprocess.run(
        ["shellcheck", "-s", "sh", str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout


# --- this machine ---------------------------------------------------------------------------------


def test_this_machine_meets_the_requirements() -> None:
    require(Path("/sys/kernel/btf/vmlinux").is_file(), "needs kernel BTF at /sys/kernel/btf/vmlinux")
    result = run_script(None)
    assert result.code == 0, result.stdout
    assert result.status("kernel") == "OK"
    assert result.status("btf") == "OK"
    if Path("/proc/config.gz").exists():
        assert result.line("config").startswith("OK") and "/proc/config.gz" in result.line("config")
