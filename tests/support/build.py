"""Builds the C helpers that tests and benchmarks run, on demand and only when their source changed.

Several pytest workers or a test and a benchmark may ask at the same moment, so each build writes a
private temporary file and renames it into place: a reader sees the old binary or the new one,
never a half-written one, and a concurrent exec never meets ETXTBSY.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["BIN_DIR", "EXECPROBE_SOURCE", "BuildError", "build", "execprobe", "find_compiler"]

_HERE = Path(__file__).resolve().parent
EXECPROBE_SOURCE = _HERE / "execprobe.c"
BIN_DIR = _HERE / "bin"  # git-ignored

_FLAGS = ("-std=c11", "-O2", "-Wall", "-Wextra", "-pthread")


class BuildError(RuntimeError):
    """No C compiler, or the compiler rejected the source."""


def find_compiler() -> str:
    """The C compiler to use: $CC if set (it must exist), else the first of cc, gcc, clang on PATH."""
    cc = os.environ.get("CC")
    candidates = [cc] if cc else ["cc", "gcc", "clang"]
    for name in candidates:
        found = shutil.which(name)
        if found is not None:
            return found
    looked = f"CC={cc!r}" if cc else "cc, gcc or clang on PATH"
    raise BuildError(
        f"no C compiler found (looked for {looked}); install one, e.g. `apt-get install gcc`, "
        "or set CC to a C compiler"
    )


def build(source: Path, output: Path, extra_flags: tuple[str, ...] = ()) -> Path:
    """Compile one C file into `output` unless `output` is already newer than `source`."""
    try:
        if output.stat().st_mtime_ns > source.stat().st_mtime_ns:
            return output
    except FileNotFoundError:
        pass
    if not source.is_file():
        raise BuildError(f"C source {source} does not exist")
    cc = find_compiler()
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        cmd = [cc, *_FLAGS, *extra_flags, "-o", str(tmp), str(source)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BuildError(
                f"compiling {source} failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stderr.strip()}"
            )
        tmp.chmod(0o755)  # mkstemp makes it 0600; like any compiler output it should be runnable by all
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return output


def execprobe() -> Path:
    """Path of the execprobe binary, compiled first if missing or older than execprobe.c."""
    return build(EXECPROBE_SOURCE, BIN_DIR / "execprobe")
