"""Can this node run the collector? One finding per requirement, with its fix (`execlog check`)."""

from __future__ import annotations

from collector.bpf import requirements as req
from collector.bpf.hierarchy import HierarchyError, resolve_hierarchy
from collector.bpf.libbpf import LibbpfError, libbpf
from collector.bpf.program import ExecProgram
from collector.config import Config
from collector.engine.collector import program_options

__all__ = ["HOOK_NAMES", "check_node"]

HOOK_NAMES = {
    "tp_btf": "tp_btf/sched_process_exec",
    "tracepoint": "tracepoint/sched/sched_process_exec",
    "prepare_exec": "tp_btf/sched_prepare_exec",
    "fentry": "fentry/begin_new_exec",
    "syscalls": "tracepoint/syscalls/sys_enter_execve(at)",
}


def check_node(config: Config) -> list[req.Finding]:
    """Every requirement, checked in order; the program is loaded and detached when they hold."""
    capture = config.capture
    findings = [req.kernel(), req.btf(capture.btf_path), req.privileges()]
    can_load = all(f.ok for f in findings)
    if findings[2].ok:
        try:
            findings.append(req.ring_buffer(libbpf()))
        except LibbpfError as exc:
            findings.append(req.Finding("ring buffer", False, str(exc), "install libbpf1"))
    findings.append(req.tracefs(capture.proc_root))

    try:
        hierarchy = resolve_hierarchy(capture.cgroup_hierarchy, capture.cgroup_root, capture.proc_root)
        findings.append(req.Finding("cgroups", True, f"attributing execs to {hierarchy.describe()}"))
    except HierarchyError as exc:
        hierarchy = None
        findings.append(req.Finding("cgroups", False, str(exc), "see --cgroup-hierarchy"))

    if not (can_load and hierarchy is not None and all(f.ok or not f.fatal for f in findings)):
        findings.append(req.Finding("program", False, "not loaded: fix the lines above first"))
    else:
        try:
            with ExecProgram(program_options(config, hierarchy, None)) as program:
                plan = program.attach_plan
            findings.append(
                req.Finding(
                    "program",
                    True,
                    f"loaded and attached on {HOOK_NAMES[plan.exec_hook]} with the caller's comm from "
                    f"{HOOK_NAMES[plan.comm_hook]}, then detached",
                )
            )
            for exec_hook, comm_hook, why in plan.rejected:
                findings.append(
                    req.Finding(
                        "fallback",
                        False,
                        f"{HOOK_NAMES[exec_hook]} with {HOOK_NAMES[comm_hook]} did not load: {why}",
                        fatal=False,
                    )
                )
        except LibbpfError as exc:
            fix = req.load_error_fix(exc)
            findings.append(
                req.Finding("program", False, f"cannot load: {exc}", fix or "see the libbpf log above")
            )

    return findings
