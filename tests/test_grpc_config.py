"""The gRPC and metrics settings: addresses, TLS, and no plain-text stream off this node."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from collector.config import ConfigError, add_flags, build_config
from collector.listen import parse_listen
from tests.support.require import REPO


def args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_flags(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(
    ("text", "local", "target"),
    [
        ("unix:///run/execlog/grpc.sock", True, "unix:///run/execlog/grpc.sock"),
        ("unix:/tmp/x.sock", True, "unix:///tmp/x.sock"),
        ("127.0.0.1:7000", True, "127.0.0.1:7000"),
        ("127.9.9.9:0", True, "127.9.9.9:0"),
        ("localhost:7000", True, "localhost:7000"),
        ("[::1]:7000", True, "[::1]:7000"),
        ("0.0.0.0:7000", False, "0.0.0.0:7000"),
        ("[::]:7000", False, "[::]:7000"),
        ("10.1.2.3:7000", False, "10.1.2.3:7000"),
        ("node-1.example:7000", False, "node-1.example:7000"),
    ],
)
def test_listen_addresses(text: str, local: bool, target: str) -> None:
    address = parse_listen(text)
    assert address.local is local
    assert address.target() == target


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("7000", "is not host:port"),
        (":7000", "is not host:port"),
        ("127.0.0.1:http", "the port must be a number"),
        ("127.0.0.1:70000", "the port must be a number"),
        ("::1:7000", "in brackets"),
        ("unix://relative.sock", "absolute path"),
    ],
)
def test_bad_listen_addresses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_listen(text)


def test_defaults_serve_nothing() -> None:
    config = build_config(args(), environ={})
    assert config.grpc.grpc_listen is None
    assert config.metrics.metrics_listen is None
    assert (config.grpc.grpc_replay, config.grpc.grpc_subscriber_queue) == (100_000, 10_000)


def test_a_plain_text_stream_off_this_node_is_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        build_config(args("--grpc-listen", "0.0.0.0:7000"), environ={})
    message = str(refused.value)
    assert message.startswith("flag --grpc-listen: 0.0.0.0:7000 is not a loopback address or a unix socket")
    assert "--grpc-tls-cert" in message and "--grpc-insecure" in message


def test_tls_or_an_explicit_insecure_allows_any_address(tmp_path: Path) -> None:
    insecure = build_config(args("--grpc-listen", "0.0.0.0:7000", "--grpc-insecure"), environ={})
    assert insecure.grpc.grpc_insecure is True
    tls = build_config(
        args("--grpc-listen", "0.0.0.0:7000"),
        environ={"EXECLOG_GRPC_TLS_CERT": "/c.crt", "EXECLOG_GRPC_TLS_KEY": "/c.key"},
    )
    assert tls.grpc.grpc_tls_cert == Path("/c.crt")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("grpc_listen: '[::]:7443'\ngrpc_insecure: true\nmetrics_listen: 0.0.0.0:9100\n")
    from_file = build_config(args("--config", str(cfg)), environ={})
    assert from_file.grpc.grpc_listen is not None and from_file.grpc.grpc_listen.port == 7443
    assert from_file.metrics.metrics_listen is not None and from_file.metrics.metrics_listen.port == 9100


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--grpc-listen", "unix:///x.sock", "--grpc-tls-cert", "/c"],
            "needs both --grpc-tls-cert and --grpc-tls-key",
        ),
        (
            ["--grpc-listen", "unix:///x.sock", "--grpc-client-ca", "/ca"],
            "client certificates (mTLS) need TLS",
        ),
        (
            ["--grpc-tls-cert", "/c", "--grpc-tls-key", "/k"],
            "flag --grpc-tls-cert: it is set but --grpc-listen is not",
        ),
        (["--grpc-listen", "unix:///x.sock", "--grpc-subscriber-queue", "0"], "at least one record"),
        (["--grpc-listen", "unix:///x.sock", "--grpc-replay", "-1"], "fewer than 0"),
        (["--metrics-listen", "unix:///m.sock"], "TCP only"),
        (["--grpc-listen", "somewhere"], "is not host:port"),
    ],
)
def test_inconsistent_settings_name_their_flag(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_config(args(*argv), environ={})


def test_the_cli_refuses_a_plain_text_stream_off_this_node_with_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "collector", "run", "--grpc-listen", "0.0.0.0:7000"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(
        "execlog: bad setting: flag --grpc-listen: 0.0.0.0:7000 is not a loopback"
    )
