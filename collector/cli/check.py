"""`execlog check`: print one line per requirement, with its fix; exit 1 when one fails."""

from __future__ import annotations

import sys
from typing import TextIO

from collector.config import Config
from collector.engine.check import check_node

__all__ = ["check"]


def check(config: Config, out: TextIO = sys.stdout) -> int:
    findings = check_node(config)
    for finding in findings:
        print(finding.line(), file=out)
    failed = [f for f in findings if not f.ok and f.fatal]
    print(
        "this node can run execlog"
        if not failed
        else f"this node cannot run execlog: {len(failed)} problem(s)",
        file=out,
    )
    return 1 if failed else 0
