"""The exec program's life: open, configure, load, attach, read the ring, close.

Two choices are made at load time, newest kernel feature first, and reported by `attach_plan`:

- the exec hook: ``tp_btf/sched_process_exec`` (typed arguments, no tracefs, 5.5+) or the
  classic ``tracepoint/sched/sched_process_exec`` (needs tracefs);
- the hook that stashes the caller's comm before the exec replaces it:
  ``tp_btf/sched_prepare_exec`` (6.10+), ``fentry/begin_new_exec`` (BPF trampolines), or the
  ``sys_enter_execve``/``sys_enter_execveat`` tracepoints, which cost every syscall on the node a
  slower path and are therefore last.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import mmap
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from collector.bpf.libbpf import (
    BTF_KIND_DATASEC,
    BTF_KIND_VAR,
    BpfObjectOpenOpts,
    BtfVarSecinfo,
    Libbpf,
    LibbpfError,
    RingSampleFn,
    libbpf,
)

__all__ = [
    "COMM_HOOKS",
    "EXEC_HOOKS",
    "AttachPlan",
    "ExecProgram",
    "KernelCounters",
    "ProgramOptions",
    "privileged",
]

log = logging.getLogger("execlog.bpf")

# Name of the hook -> BPF program names in exec.bpf.c, in order of preference.
EXEC_HOOKS: Final = {"tp_btf": ("exec_btf",), "tracepoint": ("exec_tracepoint",)}
COMM_HOOKS: Final = {
    "prepare_exec": ("stash_comm_prepare_exec",),
    "fentry": ("stash_comm_begin_new_exec",),
    "syscalls": ("stash_comm_execve", "stash_comm_execveat"),
}
ARGV_CAP_MAX: Final = 1 << 17  # EXECLOG_ARGV_CAP_MAX in bpf/exec.h
FILTER_MAX: Final = 8  # EXECLOG_FILTER_MAX in bpf/exec.h
_STATS = struct.Struct("<QQQ")  # struct execlog_stats


def privileged() -> bool:
    """True when this process may load and attach tracing programs (CAP_BPF+CAP_PERFMON, or
    CAP_SYS_ADMIN on kernels that predate them)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            eff = next(int(line.split()[1], 16) for line in status if line.startswith("CapEff:"))
    except (OSError, StopIteration, ValueError):
        return False
    cap_sys_admin, cap_perfmon, cap_bpf = 1 << 21, 1 << 38, 1 << 39
    return bool(eff & cap_sys_admin) or eff & (cap_bpf | cap_perfmon) == cap_bpf | cap_perfmon


@dataclass(frozen=True, slots=True)
class ProgramOptions:
    object_path: Path
    argv_cap: int = 32768
    ring_size: int = 4 << 20
    # -1 tracks cgroup v2; otherwise the ssid of the v1 controller whose hierarchy is tracked.
    cgroup_subsys_idx: int = -1
    # When set, only tasks under one of these cgroup ids (inode numbers) are recorded.
    cgroup_filter: frozenset[int] | None = None
    # Wake the reader at once only when this fraction of the ring waits; else it drains on a timer.
    wakeup_fraction: float = 0.25
    exec_hooks: Sequence[str] = ("tp_btf", "tracepoint")
    comm_hooks: Sequence[str] = ("prepare_exec", "fentry", "syscalls")
    btf_path: Path | None = None  # custom BTF for CO-RE; None = the kernel's own

    def __post_init__(self) -> None:
        if not 0 < self.argv_cap <= ARGV_CAP_MAX:
            raise ValueError(f"argv cap must be between 1 and {ARGV_CAP_MAX} bytes, got {self.argv_cap}")
        if self.ring_size < 4096 or self.ring_size & (self.ring_size - 1):
            raise ValueError(f"ring size must be a power of two of at least 4096 bytes, got {self.ring_size}")
        if not 0 < self.wakeup_fraction <= 1:
            raise ValueError(f"wakeup fraction must be in (0, 1], got {self.wakeup_fraction}")
        unknown = [h for h in self.exec_hooks if h not in EXEC_HOOKS]
        unknown += [h for h in self.comm_hooks if h not in COMM_HOOKS]
        if unknown or not self.exec_hooks or not self.comm_hooks:
            raise ValueError(
                f"unknown or empty hook choice {unknown}; exec hooks are {sorted(EXEC_HOOKS)}, "
                f"comm hooks are {sorted(COMM_HOOKS)}"
            )


@dataclass(frozen=True, slots=True)
class AttachPlan:
    exec_hook: str
    comm_hook: str
    # Combinations tried before this one, with the reason each failed.
    rejected: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class KernelCounters:
    seen: int = 0
    lost: int = 0
    comm_missing: int = 0


@dataclass(slots=True)
class _Loaded:
    obj: int
    links: list[int] = field(default_factory=list)


class ExecProgram:
    """The loaded and attached exec program. Use as a context manager, or call close()."""

    def __init__(self, options: ProgramOptions, lib: Libbpf | None = None) -> None:
        self.options = options
        self._lib = lib or libbpf()
        self._loaded: _Loaded | None = None
        self._ring: int | None = None
        self._batch: list[bytes] = []
        self._sample_cb = RingSampleFn(self._on_sample)  # referenced for as long as the ring lives
        self._ncpus = 0
        self._stats_fd = -1
        self._filter_fd = -1
        self._filter_ids: set[int] = set()
        self._positions: tuple[mmap.mmap, mmap.mmap] | None = None
        self.attach_plan = self._load_and_attach()

    # -- life ---------------------------------------------------------------------------------

    def _load_and_attach(self) -> AttachPlan:
        if not self.options.object_path.is_file():
            raise LibbpfError(
                "open",
                errno.ENOENT,
                f"BPF object {self.options.object_path} not found; build it with `make install`",
                [],
            )
        rejected: list[tuple[str, str, str]] = []
        last: LibbpfError | None = None
        combinations = [(e, c) for e in self.options.exec_hooks for c in self.options.comm_hooks]
        for n, (exec_hook, comm_hook) in enumerate(combinations, 1):
            # Failures of all but the last resort are expected on older kernels: keep libbpf's
            # warnings about them out of the log; they stay in `rejected` for `execlog check`.
            quiet = self._lib.quiet() if n < len(combinations) else contextlib.nullcontext()
            try:
                with quiet:
                    self._try(exec_hook, comm_hook)
            except LibbpfError as exc:
                self._close_object()
                if exc.step == "open" or (exc.errno in (errno.EPERM, errno.EACCES) and not privileged()):
                    raise  # no other combination can fix a bad object or missing privileges
                rejected.append((exec_hook, comm_hook, str(exc)))
                log.debug("hooks %s+%s rejected: %s", exec_hook, comm_hook, exc)
                last = exc
                continue
            self._open_ring()
            log.info("exec program attached: exec hook %s, comm hook %s", exec_hook, comm_hook)
            return AttachPlan(exec_hook, comm_hook, tuple(rejected))
        assert last is not None
        raise last

    def _try(self, exec_hook: str, comm_hook: str) -> None:
        lib, opts = self._lib, self.options
        with lib.step("open") as step:
            open_opts = BpfObjectOpenOpts(sz=ctypes.sizeof(BpfObjectOpenOpts))
            if opts.btf_path is not None:
                if not opts.btf_path.is_file():
                    raise step.error(errno.ENOENT, f"BTF file {opts.btf_path} not found")
                open_opts.btf_custom_path = str(opts.btf_path).encode()
            obj = step.check_ptr(
                lib.bpf_object__open_file(str(opts.object_path).encode(), ctypes.byref(open_opts)),
                f"cannot open {opts.object_path}",
            )
        self._loaded = _Loaded(obj)

        with lib.step("configure") as step:
            wanted = set(EXEC_HOOKS[exec_hook]) | set(COMM_HOOKS[comm_hook])
            every = {name for names in (*EXEC_HOOKS.values(), *COMM_HOOKS.values()) for name in names}
            for name in every:
                prog = step.check_ptr(lib.bpf_object__find_program_by_name(obj, name.encode()), name)
                step.check_int(lib.bpf_program__set_autoload(prog, name in wanted), name)
            self._ncpus = step.check_int(lib.libbpf_num_possible_cpus(), "possible CPUs")
            step.check_int(lib.bpf_map__set_max_entries(self._map("events"), opts.ring_size), "ring size")
            step.check_int(lib.bpf_map__set_max_entries(self._map("scratch"), self._ncpus), "scratch")
            self._set_rodata(
                {
                    "argv_cap": struct.pack("<I", opts.argv_cap),
                    "cgroup_subsys_idx": struct.pack("<i", opts.cgroup_subsys_idx),
                    "filter_by_cgroup": struct.pack("<?", opts.cgroup_filter is not None),
                    "wakeup_bytes": struct.pack("<Q", max(1, int(opts.ring_size * opts.wakeup_fraction))),
                }
            )

        with lib.step("load") as step:
            step.check_int(lib.bpf_object__load(obj), f"cannot load {opts.object_path.name} into the kernel")
        self._stats_fd = lib.bpf_map__fd(self._map("stats"))
        self._filter_fd = lib.bpf_map__fd(self._map("cgroup_filter"))
        self._filter_ids = set()
        if opts.cgroup_filter is not None:
            self.set_cgroup_filter(opts.cgroup_filter)

        with lib.step("attach") as step:
            for name in sorted(wanted):
                prog = lib.bpf_object__find_program_by_name(obj, name.encode())
                link = step.check_ptr(lib.bpf_program__attach(prog), f"cannot attach {name}")
                self._loaded.links.append(link)

    def _map(self, name: str) -> int:
        assert self._loaded is not None
        ptr: int | None = self._lib.bpf_object__find_map_by_name(self._loaded.obj, name.encode())
        if not ptr:
            raise LibbpfError("configure", errno.ENOENT, f"map {name!r} missing from the BPF object", [])
        return ptr

    def _set_rodata(self, values: dict[str, bytes]) -> None:
        """Write `const volatile` globals: find each in .rodata's BTF section, then poke its bytes."""
        assert self._loaded is not None
        lib = self._lib
        with lib.step("configure") as step:
            rodata = self._map(".rodata")
            size = ctypes.c_size_t()
            base = step.check_ptr(lib.bpf_map__initial_value(rodata, ctypes.byref(size)), ".rodata")
            btf = step.check_ptr(lib.bpf_object__btf(self._loaded.obj), "object BTF")
            sec_id = lib.btf__find_by_name_kind(btf, b".rodata", BTF_KIND_DATASEC)
            if sec_id < 0:
                raise step.error(-sec_id, ".rodata section missing from BTF")
            sec = lib.btf__type_by_id(btf, sec_id)
            vlen = sec.contents.info & 0xFFFF
            infos = ctypes.cast(
                ctypes.addressof(sec.contents) + ctypes.sizeof(sec.contents),
                ctypes.POINTER(BtfVarSecinfo * vlen),
            ).contents
            offsets: dict[str, tuple[int, int]] = {}
            for info in infos:
                var = lib.btf__type_by_id(btf, info.type)
                if (var.contents.info >> 24) & 0x1F == BTF_KIND_VAR:
                    name = lib.btf__name_by_offset(btf, var.contents.name_off).decode()
                    offsets[name] = (info.offset, info.size)
            for name, raw in values.items():
                if name not in offsets:
                    raise step.error(errno.ENOENT, f"setting {name!r} missing from the BPF object")
                offset, width = offsets[name]
                if width != len(raw) or offset + width > size.value:
                    raise step.error(errno.EINVAL, f"setting {name!r} is {width} bytes, not {len(raw)}")
                ctypes.memmove(base + offset, raw, width)

    def _open_ring(self) -> None:
        with self._lib.step("ring buffer") as step:
            fd = self._lib.bpf_map__fd(self._map("events"))
            self._ring = step.check_ptr(self._lib.ring_buffer__new(fd, self._sample_cb, None, None))
            # The consumer and producer positions live at the start of the ring's first two pages;
            # read-only views of them give the fill level without a syscall. libbpf 1.1 has no
            # ring__avail_data_size().
            page = mmap.PAGESIZE
            try:
                self._positions = (
                    mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ, offset=0),
                    mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ, offset=page),
                )
            except OSError as exc:
                raise step.error(exc.errno or errno.EINVAL, f"cannot map the ring positions: {exc}") from exc

    def _close_object(self) -> None:
        loaded, self._loaded = self._loaded, None
        if loaded is None:
            return
        for link in loaded.links:
            self._lib.bpf_link__destroy(link)
        self._lib.bpf_object__close(loaded.obj)

    def close(self) -> None:
        """Detach and free everything; safe to call twice."""
        positions, self._positions = self._positions, None
        for view in positions or ():
            view.close()
        ring, self._ring = self._ring, None
        if ring:
            self._lib.ring_buffer__free(ring)
        self._close_object()

    def __enter__(self) -> ExecProgram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running ------------------------------------------------------------------------------

    def _on_sample(self, _ctx: int | None, data: int | None, size: int) -> int:
        # Copy out at once: the pointer is only valid during the callback.
        self._batch.append(ctypes.string_at(data, size))  # type: ignore[arg-type]
        return 0

    def read(self, timeout_ms: int) -> list[bytes]:
        """Wait up to timeout_ms for a wake-up, then drain every record the ring holds.

        The program asks for a wake-up only once the ring is a fraction full, so most calls end
        by timeout; the drain after the wait is what collects the records.
        """
        if self._ring is None:
            raise LibbpfError("poll", errno.EBADF, "the exec program is closed", [])
        with self._lib.step("poll") as step:
            ret = self._lib.ring_buffer__poll(self._ring, timeout_ms)
            if ret < 0 and ret != -errno.EINTR:
                step.check_int(ret, "ring buffer poll")
            step.check_int(self._lib.ring_buffer__consume(self._ring), "ring buffer consume")
        batch, self._batch = self._batch, []
        return batch

    def ring_fill(self) -> float:
        """How full the kernel ring is, from 0.0 to 1.0 (what the reader has yet to drain)."""
        if self._positions is None:
            return 0.0
        consumer: int = struct.unpack_from("<Q", self._positions[0])[0]
        producer: int = struct.unpack_from("<Q", self._positions[1])[0]
        return min(max(producer - consumer, 0) / self.options.ring_size, 1.0)

    def counters(self) -> KernelCounters:
        """Sum the per-CPU counters of the kernel side."""
        values = ctypes.create_string_buffer(_STATS.size * self._ncpus)
        key = ctypes.c_uint32(0)
        with self._lib.step("read counters") as step:
            step.check_int(self._lib.bpf_map_lookup_elem(self._stats_fd, ctypes.byref(key), values))
        seen = lost = missing = 0
        for s, lo, m in _STATS.iter_unpack(values.raw):
            seen, lost, missing = seen + s, lost + lo, missing + m
        return KernelCounters(seen, lost, missing)

    def set_cgroup_filter(self, cgroup_ids: frozenset[int]) -> None:
        """Replace the set of cgroup ids whose subtrees are recorded (when filtering is on)."""
        lib = self._lib
        with lib.step("cgroup filter") as step:
            if self.options.cgroup_filter is None:
                raise step.error(errno.EINVAL, "the program was loaded without cgroup filtering")
            if len(cgroup_ids) > FILTER_MAX:
                raise step.error(
                    errno.E2BIG, f"{len(cgroup_ids)} cgroups to filter on; the program holds {FILTER_MAX}"
                )
            ids = sorted(cgroup_ids)
            value = ctypes.create_string_buffer(
                struct.pack(f"<{FILTER_MAX}Q", *ids, *(0,) * (FILTER_MAX - len(ids))), 8 * FILTER_MAX
            )
            key = ctypes.c_uint32(0)
            # One update replaces the whole set, so no exec ever sees half of it.
            step.check_int(
                lib.bpf_map_update_elem(self._filter_fd, ctypes.byref(key), value, 0), "set the filter"
            )
            self._filter_ids = set(ids)
