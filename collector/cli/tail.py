"""`execlog tail`: its flags become TailOptions; SIGTERM and Ctrl-C end it with status 0, a
refused or unreachable collector with status 1."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from types import FrameType
from typing import Any

from collector.tail.follow import TailError, TailOptions, follow
from collector.tail.printers import CompactPrinter, JsonPrinter, Printer

__all__ = ["options", "tail"]


def options(args: argparse.Namespace) -> TailOptions:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(TailOptions):
        value = getattr(args, f.name)
        values[f.name] = tuple(value) if isinstance(value, list) else value
    return TailOptions(**values)


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def tail(args: argparse.Namespace) -> int:
    printer: Printer
    if args.output == "json":
        printer = JsonPrinter(sys.stdout.buffer, sys.stderr)
    else:
        printer = CompactPrinter(sys.stdout, sys.stderr)
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        follow(options(args), printer)
    except TailError as exc:
        print(f"execlog tail: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # stdout was closed (| head): nothing left to do, and nothing to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
