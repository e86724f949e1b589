"""Settings: flag > environment > YAML file > default, and errors that name their source."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from collector.config import ConfigError, add_flags, build_config, parse_size
from tests.support.require import REPO


def args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_flags(parser)
    return parser.parse_args(list(argv))


def test_defaults() -> None:
    config = build_config(args(), environ={})
    assert config.capture.argv_cap == 32768
    assert config.capture.ring_size == 4 << 20
    assert config.capture.exec_hook == "auto"
    assert config.capture.bpf_object == REPO / "bpf" / "exec.bpf.o"  # what `make install` builds
    assert config.output.node_name  # the host name
    assert config.sources["argv_cap"] == "default"


def test_precedence_flag_env_file_default(tmp_path: Path) -> None:
    cfg = tmp_path / "execlog.yaml"
    cfg.write_text("argv_cap: 1KiB\nring_size: 64KiB\ndrain_interval_ms: 20\n")
    env = {"EXECLOG_CONFIG": str(cfg), "EXECLOG_ARGV_CAP": "2KiB", "EXECLOG_RING_SIZE": "128KiB"}
    config = build_config(args("--argv-cap", "4096"), environ=env)
    assert config.capture.argv_cap == 4096  # flag beats env and file
    assert config.capture.ring_size == 128 << 10  # env beats file
    assert config.capture.drain_interval_ms == 20  # file beats default
    assert config.output.json_queue == 65536  # default
    assert config.sources["argv_cap"] == "flag --argv-cap"
    assert config.sources["ring_size"] == "env EXECLOG_RING_SIZE"
    assert config.config_file == cfg


def test_node_name_from_downward_api_env() -> None:
    assert build_config(args(), environ={"NODE_NAME": "node-7"}).output.node_name == "node-7"


def test_config_is_frozen() -> None:
    config = build_config(args(), environ={})
    with pytest.raises(AttributeError):
        config.capture.argv_cap = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--argv-cap", "lots"], {}, "flag --argv-cap: not a size"),
        ([], {"EXECLOG_ARGV_CAP": "1MiB"}, "env EXECLOG_ARGV_CAP: argv cap must be between"),
        (["--ring-size", "5000"], {}, "flag --ring-size: ring size must be a power of two"),
        (["--exec-hook", "kprobe"], {}, "flag --exec-hook: 'kprobe' is not one of auto, tp_btf, tracepoint"),
        (
            ["--cgroup-hierarchy", "v3"],
            {},
            "flag --cgroup-hierarchy: 'v3' is not auto, v2 or v1:<controller>",
        ),
        (["--drain-interval-ms", "x"], {}, "flag --drain-interval-ms: invalid literal"),
    ],
)
def test_bad_values_name_their_source(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_config(args(*argv), environ=env)


def test_yaml_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("argv_kap: 10\n")
    with pytest.raises(ConfigError, match="unknown settings argv_kap"):
        build_config(args("--config", str(cfg)), environ={})
    cfg.write_text("argv_cap: [1, 2]\n")
    with pytest.raises(ConfigError, match="key argv_cap: expected SIZE, got list"):
        build_config(args("--config", str(cfg)), environ={})
    cfg.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        build_config(args("--config", str(cfg)), environ={})
    cfg.write_text("argv_cap: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        build_config(args("--config", str(cfg)), environ={})
    with pytest.raises(ConfigError, match="No such file"):
        build_config(args("--config", str(tmp_path / "missing.yaml")), environ={})


def test_yaml_numbers_are_taken_as_numbers(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("argv_cap: 65536\ndrain_interval_ms: 10\n")
    config = build_config(args("--config", str(cfg)), environ={})
    assert (config.capture.argv_cap, config.capture.drain_interval_ms) == (65536, 10)


@pytest.mark.parametrize(
    ("text", "value"), [("32768", 32768), ("32KiB", 32768), ("8MiB", 8 << 20), ("1g", 1 << 30), ("4k", 4096)]
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


# The docs page whose settings table documents each config section's settings.
SETTINGS_PAGES = {
    "capture": "operations.md",
    "output": "operations.md",
    "metrics": "operations.md",
    "kubernetes": "kubernetes.md",
    "grpc": "grpc.md",
    "policy": "policy.md",
}


def documented_settings(page: str) -> set[str]:
    """The settings named in the first column of the page's tables: `--flag`, `--flag ARG`, `key`."""
    names: set[str] = set()
    for line in (REPO / "docs" / page).read_text().splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([-\w]+)(?:`| )", line.split("|")[1]))
    return names


def test_every_setting_is_in_the_settings_table_of_its_docs_page() -> None:
    from collector.config import OPTIONS, YAML_ONLY

    settings = [(opt.flag, opt.section) for opt in OPTIONS]
    settings += [(key, section) for key, (section, _) in YAML_ONLY.items()]
    assert {section for _, section in settings} <= set(SETTINGS_PAGES)
    missing = [
        f"{name} in docs/{SETTINGS_PAGES[section]}"
        for name, section in settings
        if name not in documented_settings(SETTINGS_PAGES[section])
    ]
    assert missing == []


def test_settings_are_read_from_the_first_column_of_a_table_row() -> None:
    assert "--argv-cap" in documented_settings("operations.md")
    assert "--kubelet-url" in documented_settings("kubernetes.md")
    assert "labels" in documented_settings("kubernetes.md")
    assert "--grpc-tls-key" in documented_settings("grpc.md")  # second in its row
    assert "--rate-limit" in documented_settings("policy.md")
    assert "--kubelet-url" not in documented_settings("policy.md")
    assert "--rate" not in documented_settings("policy.md")  # a prefix is not a setting
