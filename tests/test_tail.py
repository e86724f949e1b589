"""`execlog tail` as a user runs it, against a real server in this process: TLS and mTLS flags,
one-line errors, and what a compact line shows."""

from __future__ import annotations

import io
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.hub import SUBSCRIBER_TOO_SLOW, Gap, Hub, Item
from collector.k8s import ProcessRecord, Workload
from collector.listen import parse_listen
from collector.outlets.grpc import Broker, GrpcService, TlsFiles
from tests.support.records import event
from tests.support.require import REPO
from tests.support.tls import CertificateAuthority

EXECLOG = [sys.executable, "-m", "collector"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority.create(root / "ca", "execlog-ca")
    return {
        "ca": ca.cert_file,
        "server": ca.issue_server_cert(root / "server", "collector"),
        "client": ca.issue_client_cert(root / "client", "me"),
    }


@pytest.fixture
def hub_served(pki: dict[str, Any]) -> Iterator[tuple[Hub, GrpcService]]:
    server = pki["server"]
    hub = Hub()
    service = GrpcService(
        Broker(hub.stream_id, "node-1"),
        parse_listen("127.0.0.1:0"),
        TlsFiles(server.cert_file, server.key_file, pki["ca"]),
    )
    hub.add_outlet(service)
    service.start()
    yield hub, service
    hub.close(2)


def run_tail(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EXECLOG, "tail", *flags], capture_output=True, text=True, cwd=REPO, timeout=60, check=False
    )


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_tail_with_mtls_shows_execs_live(tmp_path: Path, pki: dict[str, Any], hub_served: Any) -> None:
    hub, service = hub_served
    client = pki["client"]
    out, err = tmp_path / "out", tmp_path / "err"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            [*EXECLOG, "tail", service.address, "--tls-ca", str(pki["ca"]),
             "--tls-cert", str(client.cert_file), "--tls-key", str(client.key_file)],
            stdout=o, stderr=e, cwd=REPO,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while "following" not in err.read_text():
                assert time.monotonic() < deadline and proc.poll() is None, err.read_text()
                time.sleep(0.05)
            ev = event(["ls", "-la", "/secret"], filename=b"/usr/bin/ls")
            hub.publish([ProcessRecord(ev, None)])
            while "ls -la /secret" not in out.read_text():
                assert time.monotonic() < deadline and proc.poll() is None, err.read_text()
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(20)
    assert code == 0
    assert out.read_text().split()[1:] == ["node-1", "uid=1001", "pid=1234", "ls", "-la", "/secret"]


def test_tail_without_a_client_certificate_is_one_clear_line(pki: dict[str, Any], hub_served: Any) -> None:
    _, service = hub_served
    result = run_tail(service.address, "--tls-ca", str(pki["ca"]))
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith(f"execlog tail: cannot connect to {service.address}: ")
    assert line.endswith("wants a client certificate signed by its --grpc-client-ca)")


def test_tail_to_nothing_and_bad_flags_are_one_clear_line() -> None:
    sock_dir = Path(tempfile.mkdtemp(prefix="xl-tail-"))
    try:
        result = run_tail(f"unix://{sock_dir}/none.sock")
    finally:
        shutil.rmtree(sock_dir)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith(f"execlog tail: cannot connect to unix://{sock_dir}/none.sock: ")
    assert "No such file or directory" in line
    assert run_tail().returncode == 1
    assert (
        one_line(run_tail().stderr)
        == "execlog tail: give the collector's address: execlog tail host:port or unix:///path"
    )
    assert one_line(run_tail("127.0.0.1:1", "--label", "nokey").stderr) == (
        "execlog tail: --label 'nokey': expected KEY=VALUE"
    )


def test_a_bad_selector_is_refused_by_the_collector_in_one_line(pki: dict[str, Any], hub_served: Any) -> None:
    _, service = hub_served
    client = pki["client"]
    result = run_tail(
        service.address, "--selector", "app in (", "--tls-ca", str(pki["ca"]),
        "--tls-cert", str(client.cert_file), "--tls-key", str(client.key_file),
    )  # fmt: skip
    assert result.returncode == 1
    assert one_line(result.stderr).startswith(
        f"execlog tail: {service.address} refused: allow[0]: label selector"
    )


def test_compact_lines_escape_control_characters_and_show_the_pod() -> None:
    from collector.tail.printers import CompactPrinter

    out, err = io.StringIO(), io.StringIO()
    printer = CompactPrinter(out, err)
    workload = Workload("node-1", "coder", "ws-jessie", "u", "dev", "c", labels={"username": "jessie"})
    ev = event(["printf", "\x1b[2J\rgotcha\n"], filename=b"/usr/bin/printf")
    printer.record("s", "node-1", Item(1, ProcessRecord(ev, workload)))
    printer.record("s", "node-1", Gap(3, SUBSCRIBER_TOO_SLOW, 0, 10, 12))
    line = out.getvalue()
    assert line.count("\n") == 1 and "\x1b" not in line and "\r" not in line
    assert (
        line.split(" ", 1)[1] == "coder/ws-jessie/dev user=jessie pid=1234 printf \\x1b[2J\\x0dgotcha\\x0a\n"
    )
    assert (
        err.getvalue() == "execlog tail: gap: 3 records lost (subscriber_too_slow, seq 10-12 of stream s)\n"
    )


def test_tail_help_explains_filters_and_exit_status() -> None:
    result = run_tail("--help")
    assert result.returncode == 0
    for text in ("--namespace", "--deny-label", "--tls-ca", "--replay", "reconnects", "Exit status"):
        assert text in result.stdout
