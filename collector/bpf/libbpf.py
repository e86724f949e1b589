"""A thin ctypes binding of the libbpf 1.x functions execlog uses, and nothing else.

Every function is declared once through `_declare` with its restype and argtypes. Failures never
travel upward as error codes: `LibbpfError` names the step (open, load, attach, poll, ...), the
errno text, and the last warnings libbpf printed while the step ran, which is where libbpf puts
the verifier's complaint or the missing BTF path. libbpf's own log goes to the Python logger
``execlog.libbpf``.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import errno as errno_mod
import functools
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "BTF_KIND_DATASEC",
    "BTF_KIND_VAR",
    "Libbpf",
    "LibbpfError",
    "RingSampleFn",
    "libbpf",
]

log = logging.getLogger("execlog.libbpf")

BTF_KIND_VAR = 14
BTF_KIND_DATASEC = 15
BPF_MAP_TYPE_RINGBUF = 27
BPF_PROG_TYPE_TRACING = 26

_LIBBPF_WARN, _LIBBPF_INFO, _LIBBPF_DEBUG = 0, 1, 2
_LEVELS = {_LIBBPF_WARN: logging.WARNING, _LIBBPF_INFO: logging.INFO, _LIBBPF_DEBUG: logging.DEBUG}

# int (*)(enum libbpf_print_level, const char *fmt, va_list ap): va_list arrives as a pointer on
# the ABIs we run on (x86_64, aarch64), and goes on to vsnprintf unchanged.
_PrintFn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
RingSampleFn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)

_p = ctypes.c_void_p


class LibbpfError(OSError):
    """A libbpf call failed; `step` says which part of the program's life it was."""

    def __init__(self, step: str, err: int, detail: str, libbpf_log: list[str]) -> None:
        self.step = step
        self.libbpf_log = libbpf_log
        text = f"{step}: {detail or os.strerror(err)}"
        # libbpf's last warning usually names the real cause (a missing BTF file, a verifier
        # rejection, a tracepoint that does not exist), so it belongs in the one-line message.
        tail = [line for line in libbpf_log if line][-2:]
        if tail:
            text += " (libbpf: " + " | ".join(tail) + ")"
        super().__init__(err, text)

    def __str__(self) -> str:
        return str(self.args[1])


class BpfObjectOpenOpts(ctypes.Structure):
    """Mirror of `struct bpf_object_open_opts` from libbpf 1.1; `sz` keeps it compatible."""

    _fields_ = (
        ("sz", ctypes.c_size_t),
        ("object_name", ctypes.c_char_p),
        ("relaxed_maps", ctypes.c_bool),
        ("pin_root_path", ctypes.c_char_p),
        ("_removed_attach_prog_fd", ctypes.c_uint32),
        ("kconfig", ctypes.c_char_p),
        ("btf_custom_path", ctypes.c_char_p),
        ("kernel_log_buf", ctypes.c_char_p),
        ("kernel_log_size", ctypes.c_size_t),
        ("kernel_log_level", ctypes.c_uint32),
    )


class BtfType(ctypes.Structure):
    _fields_ = (("name_off", ctypes.c_uint32), ("info", ctypes.c_uint32), ("size_or_type", ctypes.c_uint32))


class BtfVarSecinfo(ctypes.Structure):
    _fields_ = (("type", ctypes.c_uint32), ("offset", ctypes.c_uint32), ("size", ctypes.c_uint32))


class Libbpf:
    """The loaded library. One per process (see `libbpf()`): libbpf's print hook is global."""

    def __init__(self, path: str | None = None) -> None:
        name = path or ctypes.util.find_library("bpf") or "libbpf.so.1"
        try:
            self._lib = ctypes.CDLL(name, use_errno=True)
        except OSError as exc:
            raise LibbpfError(
                "open libbpf", errno_mod.ENOENT, f"cannot load {name}: {exc}; install libbpf1 (>= 1.0)", []
            ) from exc
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.vsnprintf.restype = ctypes.c_int
        self._libc.vsnprintf.argtypes = (ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, _p)
        self._recent: collections.deque[tuple[int, str]] = collections.deque(maxlen=64)
        self._serial = 0
        self._lock = threading.Lock()
        self._quiet = threading.local()
        self._declare_all()
        # Kept on the instance so ctypes does not free the trampoline while libbpf holds it.
        self._print_cb = _PrintFn(self._on_print)
        self.libbpf_set_print(self._print_cb)

    def _declare(self, name: str, restype: Any, *argtypes: Any) -> None:
        fn = getattr(self._lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
        setattr(self, name, fn)

    def _declare_all(self) -> None:
        i, u32, sz = ctypes.c_int, ctypes.c_uint32, ctypes.c_size_t
        d = self._declare
        d("libbpf_set_print", _p, _PrintFn)
        d("libbpf_strerror", i, i, ctypes.c_char_p, sz)
        d("libbpf_num_possible_cpus", i)
        d("libbpf_probe_bpf_map_type", i, i, _p)
        d("libbpf_probe_bpf_prog_type", i, i, _p)
        d("bpf_object__open_file", _p, ctypes.c_char_p, ctypes.POINTER(BpfObjectOpenOpts))
        d("bpf_object__load", i, _p)
        d("bpf_object__close", None, _p)
        d("bpf_object__btf", _p, _p)
        d("bpf_object__find_program_by_name", _p, _p, ctypes.c_char_p)
        d("bpf_object__find_map_by_name", _p, _p, ctypes.c_char_p)
        d("bpf_program__set_autoload", i, _p, ctypes.c_bool)
        d("bpf_program__attach", _p, _p)
        d("bpf_program__fd", i, _p)
        d("bpf_link__destroy", i, _p)
        d("bpf_map__fd", i, _p)
        d("bpf_map__set_max_entries", i, _p, u32)
        d("bpf_map__initial_value", _p, _p, ctypes.POINTER(sz))
        d("bpf_map_lookup_elem", i, i, _p, _p)
        d("bpf_map_update_elem", i, i, _p, _p, ctypes.c_uint64)
        d("bpf_map_delete_elem", i, i, _p)
        d("btf__find_by_name_kind", ctypes.c_int32, _p, ctypes.c_char_p, u32)
        d("btf__type_by_id", ctypes.POINTER(BtfType), _p, u32)
        d("btf__name_by_offset", ctypes.c_char_p, _p, u32)
        d("ring_buffer__new", _p, i, RingSampleFn, _p, _p)
        d("ring_buffer__poll", i, _p, i)
        d("ring_buffer__consume", i, _p)
        d("ring_buffer__free", None, _p)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names _declare_all did not set: say so instead of a bare AttributeError.
        raise AttributeError(f"libbpf function {name!r} is not declared in collector.bpf.libbpf")

    def _on_print(self, level: int, fmt: bytes | None, ap: int | None) -> int:
        try:
            # Sized for verifier logs, which libbpf prints as one message; the va_list can be
            # formatted only once, so there is no second try with a larger buffer.
            buf = ctypes.create_string_buffer(1 << 20)
            self._libc.vsnprintf(buf, len(buf), fmt, ap)
            text = buf.value.decode("utf-8", "backslashreplace").rstrip().removeprefix("libbpf: ")
            with self._lock:
                self._serial += 1
                self._recent.append((self._serial, text))
            py_level = _LEVELS.get(level, logging.DEBUG)
            if getattr(self._quiet, "depth", 0):
                py_level = min(py_level, logging.DEBUG)
            log.log(py_level, "%s", text)
        except Exception:  # an exception must never unwind into libbpf's C frames
            log.exception("libbpf print callback failed")
        return 0

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Demote libbpf's warnings to debug on this thread, for attempts that may fail by design.

        Their text still reaches the LibbpfError of a failing step."""
        depth = getattr(self._quiet, "depth", 0)
        self._quiet.depth = depth + 1
        try:
            yield
        finally:
            self._quiet.depth = depth

    @contextmanager
    def step(self, name: str) -> Iterator[StepContext]:
        """Run libbpf calls for one step; `fail()` inside raises with the step's libbpf log."""
        with self._lock:
            start = self._serial
        yield StepContext(self, name, start)

    def messages_since(self, serial: int) -> list[str]:
        with self._lock:
            return [text for s, text in self._recent if s > serial]

    def strerror(self, err: int) -> str:
        buf = ctypes.create_string_buffer(256)
        if self.libbpf_strerror(err, buf, len(buf)) == 0:
            return buf.value.decode(errors="replace")
        return os.strerror(err)


class StepContext:
    __slots__ = ("_lib", "_start", "name")

    def __init__(self, lib: Libbpf, name: str, start: int) -> None:
        self._lib, self.name, self._start = lib, name, start

    def error(self, err: int, detail: str = "") -> LibbpfError:
        err = abs(err) or errno_mod.EINVAL
        return LibbpfError(
            self.name, err, detail or self._lib.strerror(err), self._lib.messages_since(self._start)
        )

    def check_ptr(self, ptr: int | None, what: str = "") -> int:
        """libbpf 1.x returns NULL with errno set for pointer results."""
        if not ptr:
            raise self.error(ctypes.get_errno(), what)
        return ptr

    def check_int(self, ret: int, what: str = "") -> int:
        """libbpf 1.x returns -errno for int results."""
        if ret < 0:
            err = -ret
            raise self.error(err, f"{what}: {self._lib.strerror(err)}" if what else "")
        return ret


@functools.cache
def libbpf() -> Libbpf:
    return Libbpf()
