"""The collector's configuration: one frozen object from flags, environment, YAML and defaults.

Every setting is declared once in `OPTIONS`. From that one declaration come its command-line flag
(``--argv-cap``), its environment variable (``EXECLOG_ARGV_CAP``) and its YAML key (``argv_cap``).
Precedence is flag > environment > YAML file > default. A bad value is reported with the place
it came from, so a typo in a ConfigMap is as easy to find as one on the command line. Unknown YAML
keys are errors: a security tool should not ignore a setting it does not understand.
"""

from collector.config.load import add_flags, build_config
from collector.config.options import OPTIONS, YAML_ONLY, Option
from collector.config.sections import (
    CaptureConfig,
    Config,
    GrpcConfig,
    KubernetesConfig,
    MetricsConfig,
    OutputConfig,
    PolicyConfig,
)
from collector.config.values import ENV_PREFIX, ConfigError, parse_size

__all__ = [
    "ENV_PREFIX",
    "OPTIONS",
    "YAML_ONLY",
    "CaptureConfig",
    "Config",
    "ConfigError",
    "GrpcConfig",
    "KubernetesConfig",
    "MetricsConfig",
    "Option",
    "OutputConfig",
    "PolicyConfig",
    "add_flags",
    "build_config",
    "parse_size",
]
