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
	struct execlog_exec hdr;
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

/* A power of two; the slot is the thread id modulo this. */
#define COMM_SLOTS 16384

/*
 * The caller's comm, stashed just before the exec replaces it. A plain array slot per thread id
 * costs a few loads and stores, where a hash map update cost ~0.9 us per exec. `task` (the
 * task_struct address, which the exec'ing thread keeps through de_thread()) tells a slot's owner:
 * two threads whose ids collide and exec at the same instant lose the stashed comm (the record
 * then says EXECLOG_F_COMM_AFTER_EXEC); neither can get the other's.
 */
struct comm_slot {
	__u64 task;
	char comm[EXECLOG_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, COMM_SLOTS);
	__type(key, __u32);
	__type(value, struct comm_slot);
} caller_comm SEC(".maps");

/* The cgroup ids whose subtrees are recorded (0 = unused slot): one array lookup per exec and a
 * few compares, where a hash lookup per ancestor cost ~0.1 us each. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct execlog_cgroup_filter);
} cgroup_filter SEC(".maps");

static __always_inline void stash_comm(void)
{
	__u32 key = (__u32)bpf_get_current_pid_tgid() & (COMM_SLOTS - 1);
	struct comm_slot *slot = bpf_map_lookup_elem(&caller_comm, &key);

	if (!slot)
		return;
	slot->task = 0; /* invalid while the comm is half written */
	bpf_get_current_comm(slot->comm, sizeof(slot->comm));
	slot->task = bpf_get_current_task();
}

/* Copies the stashed comm of the exec'ing thread (its id before the exec) and frees the slot. */
static __always_inline bool take_comm(char *dst, __u32 old_tid)
{
	__u32 key = old_tid & (COMM_SLOTS - 1);
	struct comm_slot *slot = bpf_map_lookup_elem(&caller_comm, &key);
	__u64 task = bpf_get_current_task();

	if (!slot || slot->task != task)
		return false;
	__builtin_memcpy(dst, slot->comm, EXECLOG_COMM_LEN);
	if (slot->task != task) /* overwritten while we copied */
		return false;
	slot->task = 0;
	return true;
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

/*
 * Everything below reads kernel structures by direct, BTF-typed loads: both exec hooks start
 * from a BTF pointer to the task (the tp_btf argument, or bpf_get_current_task_btf()), and the
 * verifier turns each load into a fault-safe one. That costs a load, where bpf_probe_read_kernel()
 * costs a helper call; the record has some forty fields' worth of pointer chasing.
 */

/*
 * The chain of kernfs nodes from a task's cgroup up towards the root: chain[0] is the cgroup,
 * chain[1] its parent, and so on; NULL past the root. One walk per kernfs_node flavour, each its
 * own subprogram: libbpf poisons the field relocation this kernel lacks, and clang would hoist a
 * relocated offset out of an inlined loop and past the bpf_core_field_exists() check guarding it.
 * A call is never hoisted, and the verifier does not enter the branch this kernel does not take.
 */
#define CHAIN_LEN (EXECLOG_ANCESTORS_MAX + 2)

static __noinline int walk_v615(struct kernfs_node___v615 *kn, struct kernfs_node **chain)
{
	for (int i = 0; i < CHAIN_LEN; i++) {
		chain[i] = (struct kernfs_node *)kn;
		kn = kn ? (struct kernfs_node___v615 *)kn->__parent : NULL;
	}
	return 0;
}

static __noinline int walk_old(struct kernfs_node *kn, struct kernfs_node **chain)
{
	for (int i = 0; i < CHAIN_LEN; i++) {
		chain[i] = kn;
		kn = kn ? kn->parent : NULL;
	}
	return 0;
}

static __always_inline void cgroup_chain(struct kernfs_node *kn, struct kernfs_node **chain)
{
	if (bpf_core_field_exists(struct kernfs_node___v615, __parent))
		walk_v615((struct kernfs_node___v615 *)kn, chain);
	else
		walk_old(kn, chain);
}

/* subsys[] indexed by constants only, so the pointer stays typed; cgroup_subsys_idx is a
 * load-time constant, so the verifier keeps just the one branch that applies. */
#define SUBSYS_CASE(n)                                                                             \
	case n:                                                                                     \
		css = cgroups->subsys[n];                                                           \
		break

static __always_inline struct kernfs_node *task_cgroup_kn(struct task_struct *task)
{
	struct css_set *cgroups = task->cgroups;
	struct cgroup_subsys_state *css = NULL;

	switch (cgroup_subsys_idx) {
		SUBSYS_CASE(0);
		SUBSYS_CASE(1);
		SUBSYS_CASE(2);
		SUBSYS_CASE(3);
		SUBSYS_CASE(4);
		SUBSYS_CASE(5);
		SUBSYS_CASE(6);
		SUBSYS_CASE(7);
		SUBSYS_CASE(8);
		SUBSYS_CASE(9);
		SUBSYS_CASE(10);
		SUBSYS_CASE(11);
		SUBSYS_CASE(12);
		SUBSYS_CASE(13);
		SUBSYS_CASE(14);
		SUBSYS_CASE(15);
	default:
		return cgroups->dfl_cgrp->kn;
	}
	if (!css)
		return NULL;
	return css->cgroup->kn;
}

static __always_inline bool cgroup_selected(struct kernfs_node **chain)
{
	__u32 zero = 0;
	struct execlog_cgroup_filter *f = bpf_map_lookup_elem(&cgroup_filter, &zero);
	__u64 id;

	if (!f)
		return false;
	for (int i = 0; i < CHAIN_LEN; i++) {
		if (!chain[i])
			return false;
		id = chain[i]->id;
		for (int j = 0; j < EXECLOG_FILTER_MAX; j++) {
			__u64 want = f->ids[j];

			if (!want) /* the used slots come first */
				break;
			if (want == id)
				return true;
		}
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

static __always_inline void read_name(char *dst, struct kernfs_node *kn, __u16 *flags, __u16 cut_flag)
{
	long n = kn ? bpf_probe_read_kernel_str(dst, EXECLOG_CGROUP_NAME_LEN, kn->name) : -1;

	if (n < 0)
		dst[0] = '\0';
	else if (n == EXECLOG_CGROUP_NAME_LEN)
		*flags |= cut_flag;
}

static __always_inline void fill_cgroup(struct execlog_exec *e, struct kernfs_node **chain)
{
	struct kernfs_node *kn = chain[0];

	e->cgroup_id = kn ? kn->id : 0;
	read_name(e->cgroup_name, kn, &e->hdr.flags, EXECLOG_F_CGROUP_NAME_TRUNCATED);
	read_name(e->parent_cgroup_name, chain[1], &e->hdr.flags, EXECLOG_F_PARENT_CGROUP_NAME_TRUNCATED);
	for (int i = 0; i < EXECLOG_ANCESTORS_MAX; i++) {
		kn = chain[i + 1];
		e->ancestor_ids[i] = kn ? kn->id : 0;
	}
	if (chain[CHAIN_LEN - 1])
		e->hdr.flags |= EXECLOG_F_ANCESTORS_TRUNCATED;
}

static __always_inline __u32 pid_ns_inum(struct task_struct *task)
{
	struct pid *pid = task->thread_pid;
	unsigned int level = pid->level;
	struct pid_namespace *ns = NULL;

	/* numbers[level] has a variable index: read it as plain memory. */
	bpf_probe_read_kernel(&ns, sizeof(ns),
			      (void *)((__u64)pid + bpf_core_field_offset(struct pid, numbers) +
				       (level & 63) * bpf_core_type_size(struct upid) +
				       bpf_core_field_offset(struct upid, ns)));
	return BPF_CORE_READ(ns, ns.inum);
}

/*
 * argc < 0: unknown here; read it from the top of the new stack, where the ELF loader put it
 * (mm->start_stack points at argc).
 */
static __always_inline int record_exec(struct task_struct *task, const char *filename, int argc, __u32 old_tid)
{
	struct kernfs_node *chain[CHAIN_LEN];
	struct mm_struct *mm = task->mm;
	const struct cred *cred = task->cred;
	struct execlog_exec *e;
	struct scratch *s;
	__u32 cpu = bpf_get_smp_processor_id();
	unsigned long arg_start, arg_end;
	__u64 argv_size;
	__u32 fname_len, n;
	__u64 size, flags;
	long ret;

	cgroup_chain(task_cgroup_kn(task), chain);
	if (filter_by_cgroup && !cgroup_selected(chain))
		return 0;

	s = bpf_map_lookup_elem(&scratch, &cpu);
	if (!s)
		return 0;
	e = &s->hdr;

	e->hdr.kind = EXECLOG_KIND_EXEC;
	e->hdr.flags = 0;
	e->hdr.pid = task->tgid;
	e->hdr.boot_ns = bpf_ktime_get_boot_ns();
	e->_reserved = 0;
	e->ppid = task->real_parent->tgid;
	e->uid = cred->uid.val;
	e->gid = cred->gid.val;
	e->euid = cred->euid.val;
	e->egid = cred->egid.val;
	e->mnt_ns = task->nsproxy->mnt_ns->ns.inum;
	e->pid_ns = pid_ns_inum(task);

	if (!take_comm(e->comm, old_tid)) {
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		e->hdr.flags |= EXECLOG_F_COMM_AFTER_EXEC;
	}

	fill_cgroup(e, chain);

	ret = bpf_probe_read_kernel_str(s->data, EXECLOG_FILENAME_MAX, filename);
	fname_len = ret > 0 ? ret - 1 : 0;
	fname_len &= EXECLOG_FILENAME_MAX - 1;
	e->filename_len = fname_len;

	arg_start = mm->arg_start;
	arg_end = mm->arg_end;
	argv_size = arg_end > arg_start ? arg_end - arg_start : 0;
	e->argv_size = argv_size > 0xffffffff ? 0xffffffff : argv_size;
	n = argv_size > argv_cap ? argv_cap : argv_size;
	if (n > EXECLOG_ARGV_CAP_MAX)
		n = EXECLOG_ARGV_CAP_MAX;
	if (n < argv_size)
		e->hdr.flags |= EXECLOG_F_ARGV_TRUNCATED;
	if (bpf_probe_read_user(s->data + fname_len, n, (const void *)arg_start)) {
		n = 0;
		e->hdr.flags |= EXECLOG_F_ARGV_UNREADABLE;
	}
	e->argv_len = n;

	if (argc < 0) {
		long top = 0;

		if (bpf_probe_read_user(&top, sizeof(top), (const void *)mm->start_stack) || top < 0 ||
		    top > 0x7fffffff) {
			top = 0;
			e->hdr.flags |= EXECLOG_F_ARGC_UNKNOWN;
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
	count(ret != 0, e->hdr.flags & EXECLOG_F_COMM_AFTER_EXEC);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(exec_btf, struct task_struct *task, int old_pid, struct linux_binprm *bprm)
{
	return record_exec(task, bprm->filename, bprm->argc, old_pid);
}

/* The fallback where tp_btf cannot attach; bpf_get_current_task_btf() needs Linux 5.11. */
SEC("tracepoint/sched/sched_process_exec")
int exec_tracepoint(struct trace_event_raw_sched_process_exec *ctx)
{
	__u32 loc = ctx->__data_loc_filename;

	return record_exec(bpf_get_current_task_btf(), (const char *)ctx + (loc & 0xffff), -1, ctx->old_pid);
}
