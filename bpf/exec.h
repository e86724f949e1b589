/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The records that bpf/exec.bpf.c writes into the ring buffer.
 *
 * Every record starts with struct execlog_header, whose `kind` says which struct follows. User
 * space reads the kind and decodes the rest by it. Records vary in length: only used bytes are
 * sent. collector/event/kinds/ declares each layout once for Python, and tests/test_layout.py
 * compares every declaration with the BTF of exec.bpf.o.
 */
#ifndef EXECLOG_EXEC_H
#define EXECLOG_EXEC_H

#define EXECLOG_COMM_LEN 16
#define EXECLOG_CGROUP_NAME_LEN 128
#define EXECLOG_ANCESTORS_MAX 8
#define EXECLOG_FILENAME_MAX 4096
/* Upper bound for the load-time argv cap; a power of two so the verifier can bound reads. */
#define EXECLOG_ARGV_CAP_MAX (1 << 17)

/* Values of execlog_header.kind. A new kind takes the next number; numbers are never reused. */
enum execlog_kind {
	EXECLOG_KIND_EXEC = 1,
};

/* The start of every ring record. */
struct execlog_header {
	__u16 kind;			/* enum execlog_kind */
	__u16 flags;			/* the kind's own flags (enum execlog_flags for an exec) */
	__u32 pid;			/* tgid of the process the record is about */
	__u64 boot_ns;			/* bpf_ktime_get_boot_ns() when it happened */
};

/* Flags of an exec record. */
enum execlog_flags {
	/* argv held more than argv_cap bytes; argv_size and argc are still the true values */
	EXECLOG_F_ARGV_TRUNCATED = 1 << 0,
	/* reading argv from the new process failed; argv_len is 0 */
	EXECLOG_F_ARGV_UNREADABLE = 1 << 1,
	/* the true argc could not be read; user space counts the arguments it has */
	EXECLOG_F_ARGC_UNKNOWN = 1 << 2,
	/* the caller's comm was not stashed before the exec; comm is the new image's */
	EXECLOG_F_COMM_AFTER_EXEC = 1 << 3,
	EXECLOG_F_CGROUP_NAME_TRUNCATED = 1 << 4,
	EXECLOG_F_PARENT_CGROUP_NAME_TRUNCATED = 1 << 5,
	/* the cgroup chain was deeper than EXECLOG_ANCESTORS_MAX above the task's cgroup */
	EXECLOG_F_ANCESTORS_TRUNCATED = 1 << 6,
};

/*
 * One successful exec: this struct, then `filename_len` bytes of filename (no NUL), then
 * `argv_len` bytes of argv exactly as the new process holds them (NUL after each argument).
 * hdr.pid is the tgid after the exec.
 */
struct execlog_exec {
	struct execlog_header hdr;
	__u64 cgroup_id;		/* kernfs id (= inode) of the task's cgroup, tracked hierarchy */
	__u64 ancestor_ids[EXECLOG_ANCESTORS_MAX]; /* parent first, towards the root; 0 = none */
	__u32 ppid;			/* tgid of the real parent */
	__u32 uid;
	__u32 gid;
	__u32 euid;
	__u32 egid;
	__u32 pid_ns;			/* inode of the task's active pid namespace */
	__u32 mnt_ns;			/* inode of the task's mount namespace */
	__u32 argc;			/* true argc */
	__u32 argv_size;		/* true byte length of the argv block */
	__u32 argv_len;			/* argv bytes in this record (<= argv cap) */
	__u32 filename_len;		/* filename bytes in this record, NUL excluded */
	char comm[EXECLOG_COMM_LEN];	/* the caller's comm, before the exec */
	char cgroup_name[EXECLOG_CGROUP_NAME_LEN];
	char parent_cgroup_name[EXECLOG_CGROUP_NAME_LEN];
	__u32 _reserved;		/* 0; keeps the size a multiple of 8 without hidden padding */
};

/* The cgroups whose subtrees are recorded when filtering is on; 0 marks an unused slot. */
#define EXECLOG_FILTER_MAX 8
struct execlog_cgroup_filter {
	__u64 ids[EXECLOG_FILTER_MAX];
};

/* Per-CPU counters; user space sums them over CPUs. */
struct execlog_stats {
	__u64 seen;			/* execs that passed the in-kernel filter */
	__u64 lost;			/* of those, records the ring buffer could not take */
	__u64 comm_missing;		/* records sent with EXECLOG_F_COMM_AFTER_EXEC */
};

#endif
