"""`fields.labels`: output names filled from a pod's labels and annotations.

The mapping is YAML only (the `labels` key of the config file), one entry per output name::

    labels:
      username: {label: com.coder.username}
      user_email: {annotation: com.coder.user.email}

The default reproduces the reference record from the metadata Coder puts on workspace pods. The
e-mail is an annotation because label values cannot hold ``@``. An output name whose label or
annotation a pod lacks is left out of that pod's records.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from collector.k8s.selector import is_label_key

__all__ = ["DEFAULT_LABELS", "LabelRule", "map_labels", "parse_label_mapping"]

Source = Literal["label", "annotation"]
_SOURCES: Final = ("label", "annotation")
# Output names become JSON keys queried as paths (log_processed.fields.labels.username): no dots.
_OUTPUT_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class LabelRule:
    output: str  # the key under fields.labels
    source: Source
    key: str  # the pod's label or annotation key


DEFAULT_LABELS: Final = (
    LabelRule("username", "label", "com.coder.username"),
    LabelRule("workspace_name", "label", "com.coder.workspace.name"),
    LabelRule("workspace_id", "label", "com.coder.workspace.id"),
    LabelRule("user_id", "label", "com.coder.user.id"),
    LabelRule("organization_id", "label", "com.coder.organization.id"),
    LabelRule("user_email", "annotation", "com.coder.user.email"),
)


def parse_label_mapping(raw: object) -> tuple[LabelRule, ...]:
    """Validate the YAML value of `labels`; ValueError names the entry at fault and the fix."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ValueError(
            f"expected a mapping of output name to {{label: KEY}} or {{annotation: KEY}}, "
            f"got {type(raw).__name__}"
        )
    rules = []
    for output, spec in raw.items():
        if not isinstance(output, str) or not _OUTPUT_NAME.fullmatch(output):
            raise ValueError(
                f"output name {output!r} must be letters, digits and _ (not starting with a digit), "
                "at most 63 characters"
            )
        if not isinstance(spec, Mapping) or len(spec) != 1 or next(iter(spec)) not in _SOURCES:
            raise ValueError(f"{output}: expected {{label: KEY}} or {{annotation: KEY}}, got {spec!r}")
        source, key = next(iter(spec.items()))
        if not isinstance(key, str) or not is_label_key(key):
            raise ValueError(f"{output}: {key!r} is not a valid {source} key ([prefix/]name)")
        rules.append(LabelRule(output, source, key))
    return tuple(rules)


def map_labels(
    rules: tuple[LabelRule, ...], labels: Mapping[str, str], annotations: Mapping[str, str]
) -> dict[str, str]:
    """The output labels of one pod."""
    out: dict[str, str] = {}
    for rule in rules:
        value = (labels if rule.source == "label" else annotations).get(rule.key)
        if value is not None:
            out[rule.output] = value
    return out
