// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * execlog's kernel side: one record per successful exec, from sched_process_exec.
 *
 * That tracepoint fires once per exec of any kind, after the new image is in place, so argv is
 * read from the new process's own memory and cannot be swapped by another thread. Its comm is
 * already the new image's, so a second, tiny program stashes the caller's comm just before the
 * point of no return. User space picks one program of each pair at load (autoload), newest
 * first: see collector/bpf/program.py.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "kernel_types.h"
#include "exec.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Load-time settings, written by user space between open and load. */
const volatile __u32 argv_cap = 32768;
/* -1 tracks the cgroup v2 hierarchy, otherwise the index of a v1 controller (its ssid). */
const volatile __s32 cgroup_subsys_idx = -1;
/* Only record tasks whose cgroup or one of its ancestors is in cgroup_filter. */
const volatile bool filter_by_cgroup = false;
/* Wake the reader only when this much data waits; below it, user space drains on a timer. */
const volatile __u64 wakeup_bytes = 1;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

struct scratch {
	struct execlog_event hdr;
	char data[EXECLOG_FILENAME_MAX + EXECLOG_ARGV_CAP_MAX];
};

/* One slot per CPU (max_entries is set to the CPU count at load). Not a per-CPU array, whose
 * values are limited to 32 KiB. The exec tracepoints cannot nest on one CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct execlog_stats);
} stats SEC(".maps");

struct comm {
	char comm[EXECLOG_COMM_LEN];
};

/* Caller's comm, keyed by task_struct address: the exec'ing thread keeps its task_struct
 * through de_thread(), although it takes over the leader's pid. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct comm);
} caller_comm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u64);
	__type(value, __u8);
} cgroup_filter SEC(".maps");

static __always_inline void stash_comm(void)
{
	__u64 key = bpf_get_current_task();
	struct comm c;

	if (bpf_get_current_comm(c.comm, sizeof(c.comm)))
		return;
	bpf_map_update_elem(&caller_comm, &key, &c, BPF_ANY);
}

SEC("tp_btf/sched_prepare_exec")
int BPF_PROG(stash_comm_prepare_exec, struct task_struct *task, struct linux_binprm *bprm)
{
	stash_comm();
	return 0;
}

SEC("fentry/begin_new_exec")
int BPF_PROG(stash_comm_begin_new_exec, struct linux_binprm *bprm)
{
	stash_comm();
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_execve")
int stash_comm_execve(void *ctx)
{
	stash_comm();
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_execveat")
int stash_comm_execveat(void *ctx)
{
	stash_comm();
	return 0;
}

static __always_inline struct kernfs_node *kn_parent(struct kernfs_node *kn)
{
	if (bpf_core_field_exists(struct kernfs_node___v615, __parent)) {
		struct kernfs_node___v615 *k = (void *)kn;

		return BPF_CORE_READ(k, __parent);
	}
	return BPF_CORE_READ(kn, parent);
}

static __always_inline struct kernfs_node *task_cgroup_kn(struct task_struct *task)
{
	struct css_set *cgroups = BPF_CORE_READ(task, cgroups);
	struct cgroup_subsys_state *css = NULL;
	__s32 idx = cgroup_subsys_idx;

	if (idx < 0)
		return BPF_CORE_READ(cgroups, dfl_cgrp, kn);
	bpf_core_read(&css, sizeof(css), &cgroups->subsys[idx & 15]);
	return BPF_CORE_READ(css, cgroup, kn);
}

static __always_inline bool cgroup_selected(struct kernfs_node *kn)
{
	__u64 id;

	for (int i = 0; i <= EXECLOG_ANCESTORS_MAX + 1; i++) {
		if (!kn)
			return false;
		id = BPF_CORE_READ(kn, id);
		if (bpf_map_lookup_elem(&cgroup_filter, &id))
			return true;
		kn = kn_parent(kn);
	}
	return false;
}

static __always_inline void count(bool lost, bool comm_missing)
{
	__u32 zero = 0;
	struct execlog_stats *s = bpf_map_lookup_elem(&stats, &zero);

	if (!s)
		return;
	s->seen++;
	if (lost)
		s->lost++;
	if (comm_missing)
		s->comm_missing++;
}

static __always_inline void fill_cgroup(struct execlog_event *e, struct kernfs_node *kn)
{
	struct kernfs_node *parent = kn_parent(kn);
	long n;

	e->cgroup_id = BPF_CORE_READ(kn, id);
	n = bpf_probe_read_kernel_str(e->cgroup_name, sizeof(e->cgroup_name), BPF_CORE_READ(kn, name));
	if (n < 0)
		e->cgroup_name[0] = '\0';
	else if (n == sizeof(e->cgroup_name))
		e->flags |= EXECLOG_F_CGROUP_NAME_TRUNCATED;

	e->parent_cgroup_name[0] = '\0';
	if (parent) {
		n = bpf_probe_read_kernel_str(e->parent_cgroup_name, sizeof(e->parent_cgroup_name),
					      BPF_CORE_READ(parent, name));
		if (n < 0)
			e->parent_cgroup_name[0] = '\0';
		else if (n == sizeof(e->parent_cgroup_name))
			e->flags |= EXECLOG_F_PARENT_CGROUP_NAME_TRUNCATED;
	}

	for (int i = 0; i < EXECLOG_ANCESTORS_MAX; i++) {
		if (parent) {
			e->ancestor_ids[i] = BPF_CORE_READ(parent, id);
			parent = kn_parent(parent);
		} else {
			e->ancestor_ids[i] = 0;
		}
	}
	if (parent)
		e->flags |= EXECLOG_F_ANCESTORS_TRUNCATED;
}

/*
 * argc < 0: unknown here; read it from the top of the new stack, where the ELF loader put it
 * (mm->start_stack points at argc).
 */
static __always_inline int record_exec(struct task_struct *task, const char *filename, int argc)
{
	struct kernfs_node *kn = task_cgroup_kn(task);
	struct execlog_event *e;
	struct scratch *s;
	struct comm *stashed;
	__u64 task_key = bpf_get_current_task();
	__u32 cpu = bpf_get_smp_processor_id();
	unsigned long arg_start, arg_end;
	__u64 argv_size;
	__u32 fname_len, n;
	__u64 size, flags;
	long ret;

	if (filter_by_cgroup && !cgroup_selected(kn))
		return 0;

	s = bpf_map_lookup_elem(&scratch, &cpu);
	if (!s)
		return 0;
	e = &s->hdr;

	e->boot_ns = bpf_ktime_get_boot_ns();
	e->flags = 0;
	e->pid = BPF_CORE_READ(task, tgid);
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = BPF_CORE_READ(task, cred, uid.val);
	e->gid = BPF_CORE_READ(task, cred, gid.val);
	e->euid = BPF_CORE_READ(task, cred, euid.val);
	e->egid = BPF_CORE_READ(task, cred, egid.val);
	e->mnt_ns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	{
		struct pid *pid = BPF_CORE_READ(task, thread_pid);
		unsigned int level = BPF_CORE_READ(pid, level);
		struct pid_namespace *ns = NULL;

		bpf_core_read(&ns, sizeof(ns), &pid->numbers[level & 63].ns);
		e->pid_ns = BPF_CORE_READ(ns, ns.inum);
	}

	stashed = bpf_map_lookup_elem(&caller_comm, &task_key);
	if (stashed) {
		__builtin_memcpy(e->comm, stashed->comm, sizeof(e->comm));
		bpf_map_delete_elem(&caller_comm, &task_key);
	} else {
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		e->flags |= EXECLOG_F_COMM_AFTER_EXEC;
	}

	fill_cgroup(e, kn);

	ret = bpf_probe_read_kernel_str(s->data, EXECLOG_FILENAME_MAX, filename);
	fname_len = ret > 0 ? ret - 1 : 0;
	fname_len &= EXECLOG_FILENAME_MAX - 1;
	e->filename_len = fname_len;

	arg_start = BPF_CORE_READ(task, mm, arg_start);
	arg_end = BPF_CORE_READ(task, mm, arg_end);
	argv_size = arg_end > arg_start ? arg_end - arg_start : 0;
	e->argv_size = argv_size > 0xffffffff ? 0xffffffff : argv_size;
	n = argv_size > argv_cap ? argv_cap : argv_size;
	if (n > EXECLOG_ARGV_CAP_MAX)
		n = EXECLOG_ARGV_CAP_MAX;
	if (n < argv_size)
		e->flags |= EXECLOG_F_ARGV_TRUNCATED;
	if (bpf_probe_read_user(s->data + fname_len, n, (const void *)arg_start)) {
		n = 0;
		e->flags |= EXECLOG_F_ARGV_UNREADABLE;
	}
	e->argv_len = n;

	if (argc < 0) {
		long top = 0;

		if (bpf_probe_read_user(&top, sizeof(top), (const void *)BPF_CORE_READ(task, mm, start_stack)) ||
		    top < 0 || top > 0x7fffffff) {
			top = 0;
			e->flags |= EXECLOG_F_ARGC_UNKNOWN;
		}
		argc = top;
	}
	e->argc = argc;

	size = sizeof(*e) + fname_len + n;
	if (size > sizeof(*s))
		return 0;
	flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
									     : BPF_RB_NO_WAKEUP;
	ret = bpf_ringbuf_output(&events, s, size, flags);
	count(ret != 0, e->flags & EXECLOG_F_COMM_AFTER_EXEC);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(exec_btf, struct task_struct *task, int old_pid, struct linux_binprm *bprm)
{
	return record_exec(task, BPF_CORE_READ(bprm, filename), BPF_CORE_READ(bprm, argc));
}

SEC("tracepoint/sched/sched_process_exec")
int exec_tracepoint(struct trace_event_raw_sched_process_exec *ctx)
{
	__u32 loc = ctx->__data_loc_filename;

	return record_exec((struct task_struct *)bpf_get_current_task(), (const char *)ctx + (loc & 0xffff),
			   -1);
}
