"""The collector's configuration: one frozen object from flags, environment, YAML and defaults.

Every setting is declared once in `OPTIONS`. From that one declaration come its command-line flag
(``--argv-cap``), its environment variable (``EXECLOG_ARGV_CAP``) and its YAML key (``argv_cap``).
Precedence is flag > environment > YAML file > default. A bad value is reported with the place
it came from, so a typo in a ConfigMap is as easy to find as one on the command line. Unknown YAML
keys are errors: a security tool should not ignore a setting it does not understand.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from collector.policy.exclude import Exclusion
from collector.policy.spec import (
    RedactionRule,
    SpecError,
    parse_disabled_rules,
    parse_exclusions,
    parse_redaction_rules,
)

__all__ = [
    "OPTIONS",
    "CaptureConfig",
    "Config",
    "ConfigError",
    "Option",
    "OutputConfig",
    "PolicyConfig",
    "add_flags",
    "build_config",
    "parse_size",
]

ENV_PREFIX = "EXECLOG_"


class ConfigError(ValueError):
    """A setting is malformed; the message names the setting and where it came from."""


def parse_size(text: str) -> int:
    """Bytes from '32768', '32KiB', '8MiB', '1GiB' (binary units; k/M/G accepted as the same)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]i?[bB]?|[bB])?\s*", text)
    if not m:
        raise ValueError(f"not a size: {text!r} (examples: 32768, 32KiB, 8MiB)")
    unit = (m.group(2) or "").lower()[:1]
    return int(m.group(1)) << {"": 0, "b": 0, "k": 10, "m": 20, "g": 30}[unit]


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r} (use true or false)")


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text

    return parse


def parse_hierarchy(text: str) -> str:
    if text in ("auto", "v2") or re.fullmatch(r"v1:[a-z_]+", text):
        return text
    raise ValueError(f"{text!r} is not auto, v2 or v1:<controller> (e.g. v1:memory)")


def _default_bpf_object() -> Path:
    # An editable install finds the object its `make install` built; an image sets the env var.
    return Path(__file__).resolve().parents[1] / "bpf" / "exec.bpf.o"


@dataclass(frozen=True, slots=True)
class Option:
    key: str  # YAML key and attribute name
    section: str  # the config section (dataclass) it belongs to
    parse: Callable[[str], Any]
    default: Any
    help: str
    metavar: str | None = None
    is_flag: bool = False  # a switch without a value on the command line

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.key.upper()


OPTIONS: tuple[Option, ...] = (
    # capture: the kernel program and the ring buffer
    Option(
        "bpf_object",
        "capture",
        Path,
        None,
        "compiled BPF program (default: bpf/exec.bpf.o beside the collector package)",
        "PATH",
    ),
    Option(
        "btf_path",
        "capture",
        Path,
        None,
        "kernel BTF for CO-RE relocations (default: the kernel's own /sys/kernel/btf/vmlinux)",
        "PATH",
    ),
    Option(
        "argv_cap",
        "capture",
        parse_size,
        32768,
        "argv bytes kept per exec, at most 128KiB; longer argv is cut and marked truncated, "
        "with its true argc and byte length",
        "SIZE",
    ),
    Option(
        "ring_size",
        "capture",
        parse_size,
        8 << 20,
        "kernel ring buffer size, a power of two (events that find it full are counted as lost)",
        "SIZE",
    ),
    Option(
        "drain_interval_ms",
        "capture",
        int,
        50,
        "how often the ring is drained when it is less than a quarter full (milliseconds)",
        "MS",
    ),
    Option(
        "exec_hook",
        "capture",
        parse_choice("auto", "tp_btf", "tracepoint"),
        "auto",
        "kernel hook for execs: tp_btf (typed, no tracefs), tracepoint (classic, needs tracefs), "
        "or auto (tp_btf, else tracepoint)",
        "HOOK",
    ),
    Option(
        "comm_hook",
        "capture",
        parse_choice("auto", "prepare_exec", "fentry", "syscalls"),
        "auto",
        "hook that keeps the caller's comm from before the exec: prepare_exec (6.10+), fentry, "
        "syscalls, or auto (the first that works)",
        "HOOK",
    ),
    Option(
        "cgroup_hierarchy",
        "capture",
        parse_hierarchy,
        "auto",
        "cgroup hierarchy whose cgroup each exec is attributed to: v2, v1:<controller>, or auto "
        "(v2 on a unified host, v1:memory on a legacy or hybrid one, as the kubelet does)",
        "WHICH",
    ),
    Option(
        "cgroup_root",
        "capture",
        Path,
        Path("/sys/fs/cgroup"),
        "where the cgroup file systems are mounted",
        "PATH",
    ),
    Option("proc_root", "capture", Path, Path("/proc"), "the host's /proc", "PATH"),
    # output
    Option(
        "json_queue",
        "output",
        int,
        65536,
        "records held for stdout while it is slow; beyond that they are counted and reported in a gap record",
        "N",
    ),
    Option(
        "node_name",
        "output",
        str,
        None,
        "name of this node in the records (default: $NODE_NAME, else the host name)",
        "NAME",
    ),
    Option(
        "log_level", "output", parse_choice("debug", "info", "warning", "error"), "info", "stderr log level"
    ),
    # policy: redaction, rate limiting and exclusions. Rules themselves are YAML-only (YAML_ONLY).
    Option(
        "redact",
        "policy",
        parse_bool,
        True,
        "mask secrets in argv (built-in rules and redaction_rules from the config file) before any outlet",
        "BOOL",
    ),
    Option(
        "rate_limit",
        "policy",
        float,
        0.0,
        "execs per second logged per workload (a pod; a cgroup when standalone); execs over it are "
        "counted in exec_suppressed summaries instead; 0 turns the limit off",
        "N",
    ),
    Option(
        "rate_limit_burst",
        "policy",
        int,
        None,
        "execs a workload may log at once before the rate applies (default: the rate, at least 1)",
        "N",
    ),
    Option(
        "rate_limit_summary_s",
        "policy",
        float,
        5.0,
        "while a workload is limited, an exec_suppressed summary at least this often (seconds)",
        "S",
    ),
)

# Structured policy settings, in the YAML file only: key -> parser (raises SpecError).
YAML_ONLY: dict[str, Callable[[Any], Any]] = {
    "redaction_rules": parse_redaction_rules,
    "disabled_redaction_rules": parse_disabled_rules,
    "exclusions": parse_exclusions,
}


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    bpf_object: Path
    btf_path: Path | None
    argv_cap: int
    ring_size: int
    drain_interval_ms: int
    exec_hook: str
    comm_hook: str
    cgroup_hierarchy: str
    cgroup_root: Path
    proc_root: Path


@dataclass(frozen=True, slots=True)
class OutputConfig:
    json_queue: int
    node_name: str
    log_level: str


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    redact: bool = True
    rate_limit: float = 0.0  # execs/s per workload; 0: no limit
    rate_limit_burst: int | None = None  # None: the rate, at least 1
    rate_limit_summary_s: float = 5.0
    redaction_rules: tuple[RedactionRule, ...] = ()  # YAML only
    disabled_redaction_rules: tuple[str, ...] = ()  # YAML only: built-in rule names
    exclusions: tuple[Exclusion, ...] = ()  # YAML only


@dataclass(frozen=True, slots=True)
class Config:
    capture: CaptureConfig
    output: OutputConfig
    policy: PolicyConfig = PolicyConfig()
    config_file: Path | None = None
    # Where each value came from (key -> "flag --x", "env EXECLOG_X", "file f.yaml", "default").
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)


_SECTIONS: dict[str, type] = {"capture": CaptureConfig, "output": OutputConfig, "policy": PolicyConfig}


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add one flag per option. Defaults stay None so that an unset flag can be told apart."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help=f"YAML file with settings (keys as the flags, with _ for -); env {ENV_PREFIX}CONFIG",
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for opt in OPTIONS:
        group = groups.setdefault(opt.section, parser.add_argument_group(f"{opt.section} settings"))
        default = "" if opt.default is None else f" (default: {opt.default})"
        help_text = f"{opt.help}{default}; env {opt.env}"
        if opt.is_flag:
            group.add_argument(
                opt.flag, dest=opt.key, action="store_const", const="true", default=None, help=help_text
            )
        else:
            group.add_argument(opt.flag, dest=opt.key, default=None, metavar=opt.metavar, help=help_text)


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of settings, got {type(data).__name__}")
    known = {opt.key for opt in OPTIONS} | set(YAML_ONLY)
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown settings {', '.join(unknown)}")
    return data


def build_config(args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Merge flags, environment and the YAML file over the defaults, then validate."""
    environ = os.environ if environ is None else environ
    flags = vars(args) if args is not None else {}
    config_path = flags.get("config") or environ.get(ENV_PREFIX + "CONFIG")
    from_file = _load_yaml(Path(config_path)) if config_path else {}

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for opt in OPTIONS:
        raw: Any
        if flags.get(opt.key) is not None:
            raw, where = flags[opt.key], f"flag {opt.flag}"
        elif opt.env in environ:
            raw, where = environ[opt.env], f"env {opt.env}"
        elif opt.key in from_file:
            raw, where = from_file[opt.key], f"config file {config_path}, key {opt.key}"
        else:
            values[opt.key], sources[opt.key] = opt.default, "default"
            continue
        try:
            values[opt.key] = opt.parse(raw) if isinstance(raw, str) else _from_yaml(opt, raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        sources[opt.key] = where

    if values["bpf_object"] is None:
        values["bpf_object"] = _default_bpf_object()
    if not values["node_name"]:
        values["node_name"] = environ.get("NODE_NAME") or socket.gethostname()
    _validate(values, sources)
    sections = {
        name: cls(**{opt.key: values[opt.key] for opt in OPTIONS if opt.section == name})
        for name, cls in _SECTIONS.items()
    }
    sections["policy"] = dataclasses.replace(
        sections["policy"], **_structured(from_file, config_path, sources)
    )
    return Config(
        **sections,
        config_file=Path(config_path) if config_path else None,
        sources=sources,
    )


def _structured(from_file: Mapping[str, Any], path: str | None, sources: dict[str, str]) -> dict[str, Any]:
    """Parse the YAML-only settings; an error names the file, the key and the item."""
    parsed: dict[str, Any] = {}
    for key, parse in YAML_ONLY.items():
        if key not in from_file:
            sources[key] = "default"
            continue
        try:
            parsed[key] = parse([] if from_file[key] is None else from_file[key])  # `key:` alone is empty
        except SpecError as exc:
            raise ConfigError(f"config file {path}, key {key}{exc.where}: {exc}") from exc
        sources[key] = f"config file {path}, key {key}"
    return parsed


def _from_yaml(opt: Option, raw: Any) -> Any:
    """YAML already typed some values (8, true); take those as they are when they fit."""
    if isinstance(raw, bool):
        if opt.parse is parse_bool:
            return raw
        raise ValueError(f"expected {opt.metavar or 'a value'}, got a boolean")
    if isinstance(raw, int | float) and opt.parse in (int, float, parse_size):
        return opt.parse(str(raw))
    raise ValueError(f"expected {opt.metavar or 'a string'}, got {type(raw).__name__}")


def _validate(values: dict[str, Any], sources: Mapping[str, str]) -> None:
    def fail(key: str, message: str) -> None:
        raise ConfigError(f"{sources[key]}: {message}")

    if not 0 < values["argv_cap"] <= 1 << 17:
        fail("argv_cap", f"argv cap must be between 1 byte and 128KiB, got {values['argv_cap']}")
    ring = values["ring_size"]
    if ring < 4096 or ring & (ring - 1):
        fail("ring_size", f"ring size must be a power of two of at least 4KiB, got {ring}")
    if not 1 <= values["drain_interval_ms"] <= 10_000:
        fail("drain_interval_ms", "drain interval must be between 1 and 10000 ms")
    if values["json_queue"] < 1:
        fail("json_queue", "the stdout queue must hold at least one record")
    if not 0 <= values["rate_limit"] <= 1e6:  # also rejects nan
        fail(
            "rate_limit",
            f"the rate limit must be between 0 (off) and 1000000 execs/s, got {values['rate_limit']}",
        )
    if values["rate_limit"] and values["rate_limit"] < 0.001:
        fail("rate_limit", "the rate limit must be at least 0.001 execs/s (or 0 for off)")
    if values["rate_limit_burst"] is not None and not 1 <= values["rate_limit_burst"] <= 10**9:
        fail("rate_limit_burst", f"the burst must be at least 1, got {values['rate_limit_burst']}")
    if not 0.1 <= values["rate_limit_summary_s"] <= 3600:
        fail("rate_limit_summary_s", "the summary interval must be between 0.1 and 3600 s")
