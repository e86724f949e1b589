"""Building the Config: flags over environment over the YAML file over defaults."""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from collector.config.options import OPTIONS, YAML_ONLY, Option, default_bpf_object
from collector.config.sections import SECTIONS, Config
from collector.config.values import ENV_PREFIX, ConfigError, parse_bool, parse_roots, parse_size
from collector.k8s.selector import EVERYTHING
from collector.policy.spec import SpecError

__all__ = ["add_flags", "build_config"]


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
        shown = ",".join(opt.default) if isinstance(opt.default, tuple) else opt.default
        default = "" if shown is None else f" (default: {shown})"
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
        values["bpf_object"] = default_bpf_object()
    if not values["node_name"]:
        values["node_name"] = environ.get("NODE_NAME") or socket.gethostname()
    if values["pod_selector"] is None:
        values["pod_selector"] = EVERYTHING
    _validate(values, sources)
    sections = {
        name: cls(**{opt.key: values[opt.key] for opt in OPTIONS if opt.section == name})
        for name, cls in SECTIONS.items()
    }
    for section, values_ in _structured(from_file, config_path, sources).items():
        sections[section] = dataclasses.replace(sections[section], **values_)
    return Config(
        **sections,
        config_file=Path(config_path) if config_path else None,
        sources=sources,
    )


def _structured(
    from_file: Mapping[str, Any], path: str | None, sources: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """Parse the YAML-only settings, by section; an error names the file, the key and the item."""
    parsed: dict[str, dict[str, Any]] = {}
    for key, (section, parse) in YAML_ONLY.items():
        if key not in from_file:
            sources[key] = "default"
            continue
        try:
            parsed.setdefault(section, {})[key] = parse(from_file[key])
        except ValueError as exc:
            where = exc.where if isinstance(exc, SpecError) else ""
            raise ConfigError(f"config file {path}, key {key}{where}: {exc}") from exc
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
    if isinstance(raw, list) and opt.parse is parse_roots and all(isinstance(r, str) for r in raw):
        return parse_roots(",".join(raw))
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
    if not 0.5 <= values["kubelet_poll_interval_s"] <= 3600:
        fail("kubelet_poll_interval_s", "the kubelet poll interval must be between 0.5 and 3600 seconds")
    if not 0 <= values["pending_timeout_ms"] <= 600_000:
        fail("pending_timeout_ms", "the pending timeout must be between 0 and 600000 ms")
    if values["pending_max"] < 1:
        fail("pending_max", "the pending queue must hold at least one exec")
    if values["deleted_pod_grace_s"] < 0:
        fail("deleted_pod_grace_s", "the grace period for deleted pods cannot be negative")
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
    _validate_grpc(values, fail)


def _validate_grpc(values: dict[str, Any], fail: Callable[[str, str], None]) -> None:
    if values["grpc_replay"] < 0:
        fail("grpc_replay", "the replay buffer cannot hold fewer than 0 records")
    if values["grpc_subscriber_queue"] < 1:
        fail("grpc_subscriber_queue", "a subscriber's queue must hold at least one record")
    if values["grpc_max_subscribers"] < 1:
        fail("grpc_max_subscribers", "at least one subscriber must be allowed")
    cert, key, listen = values["grpc_tls_cert"], values["grpc_tls_key"], values["grpc_listen"]
    if (cert is None) != (key is None):
        fail(
            "grpc_tls_cert" if cert is not None else "grpc_tls_key",
            "TLS needs both --grpc-tls-cert and --grpc-tls-key",
        )
    if values["grpc_client_ca"] is not None and cert is None:
        fail("grpc_client_ca", "client certificates (mTLS) need TLS: give --grpc-tls-cert and --grpc-tls-key")
    for key_name in ("grpc_tls_cert", "grpc_client_ca", "grpc_health_listen"):
        if values[key_name] is not None and listen is None:
            fail(key_name, "it is set but --grpc-listen is not")
    if listen is not None and not listen.local and cert is None and not values["grpc_insecure"]:
        fail(
            "grpc_listen",
            f"{listen} is not a loopback address or a unix socket, and the stream carries every "
            "command line of the node: give --grpc-tls-cert and --grpc-tls-key (and --grpc-client-ca "
            "to require client certificates), or --grpc-insecure if the network is private",
        )
