/*
 * execprobe: performs one exec of a chosen kind, so tests and benchmarks can check that the
 * collector saw it. Every mode execs for real; nothing is simulated.
 *
 * Build: cc -std=c11 -O2 -Wall -Wextra -Werror -pthread -o execprobe execprobe.c
 * (tests/support/build.py does this on demand). Run `execprobe -h` for the modes.
 *
 * Exit status: that of the exec'd program on success; 127 when the exec (or the open of PATH
 * it needs) fails; 2 on a usage error; 1 when a set-up step fails (prctl, set*id, fork,
 * pthread_create) or, in storm mode, when any spawn failed or any child exited non-zero.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum {
    EXIT_SETUP = 1,
    EXIT_USAGE = 2,
    EXIT_EXEC = 127,
};

/* fork mode reports the child's pid here when a test passes it open (e.g. a pipe). */
#define PID_FD 3

static const char usage_text[] =
    "usage: execprobe MODE ...\n"
    "\n"
    "exec modes (ARG... is the complete argv, argv[0] included; none gives an empty argv):\n"
    "  execve   PATH [ARG...]   execve(PATH, argv, environ)\n"
    "  execveat PATH [ARG...]   open(PATH, O_PATH), execveat(fd, \"\", argv, environ, AT_EMPTY_PATH)\n"
    "  fexecve  PATH [ARG...]   open(PATH, O_RDONLY), fexecve(fd, argv, environ)\n"
    "  thread   PATH [ARG...]   execve from a second thread (not the thread-group leader)\n"
    "  fork     PATH [ARG...]   fork; the child execve's; the parent exits with the child's status\n"
    "                           (128+signal if killed) and writes the child's pid to fd 3 if open\n"
    "wrappers (MODE is any mode, wrappers included):\n"
    "  comm  NAME MODE ...      prctl(PR_SET_NAME, NAME), then MODE\n"
    "  setid UID GID MODE ...   setgroups(0), setgid(GID), setuid(UID), then MODE\n"
    "exec storm:\n"
    "  storm COUNT PATH TAG [PARALLEL [RATE]]\n"
    "                           posix_spawn `PATH TAG-<i>` for i in 0..COUNT-1, PARALLEL (default 1)\n"
    "                           at a time, children's stdout/stderr to /dev/null; with RATE > 0 (execs\n"
    "                           per second, default 0: as fast as possible) spawn i starts no earlier\n"
    "                           than i/RATE seconds after the first; prints one JSON line\n"
    "                           {\"count\", \"failed\" (spawns that failed), \"nonzero\" (children that\n"
    "                           exited non-zero or by a signal), \"seconds\", \"rate\" (execs/s)}\n"
    "\n"
    "exit: the exec'd program's status; 127 exec failed; 2 usage; 1 set-up failed, or storm had\n"
    "failures\n";

/* A named problem gets one line and a pointer to -h; the full text is for no or unknown mode. */
static int usage(const char *problem) {
    if (problem != NULL)
        fprintf(stderr, "execprobe: %s (see execprobe -h)\n", problem);
    else
        fputs(usage_text, stderr);
    return EXIT_USAGE;
}

static int exec_failed(const char *what, const char *path, int err) {
    fprintf(stderr, "execprobe: %s %s: %s\n", what, path, strerror(err));
    return EXIT_EXEC;
}

/* Strict decimal: "12x", "", "-1" and values above max are usage errors, not silent zeros. */
static int parse_ulong(const char *text, unsigned long max, unsigned long *out) {
    char *end = NULL;
    if (text[0] < '0' || text[0] > '9')
        return -1;
    errno = 0;
    unsigned long value = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || value > max)
        return -1;
    *out = value;
    return 0;
}

/* Each exec helper returns only when the exec failed, with the exit status to use. */

static int do_execve(const char *path, char **argv) {
    execve(path, argv, environ);
    return exec_failed("execve", path, errno);
}

static int do_execveat(const char *path, char **argv) {
    /* O_CLOEXEC: the fd must not leak into the new image; note that this makes #! scripts fail
     * with ENOENT (the interpreter cannot open /dev/fd/N), as for any fd-based exec. */
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return exec_failed("open", path, errno);
    /* Through syscall(): glibc only gained an execveat() wrapper in 2.34. */
    syscall(SYS_execveat, fd, "", argv, environ, AT_EMPTY_PATH);
    int err = errno;
    close(fd);
    return exec_failed("execveat", path, err);
}

static int do_fexecve(const char *path, char **argv) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return exec_failed("open", path, errno);
    fexecve(fd, argv, environ);
    int err = errno;
    close(fd);
    return exec_failed("fexecve", path, err);
}

struct thread_exec {
    const char *path;
    char **argv;
};

static void *thread_main(void *arg) {
    const struct thread_exec *te = arg;
    int status = do_execve(te->path, te->argv);
    /* exit() from any thread ends the whole thread group, so a failed exec still ends in 127. */
    exit(status);
    return NULL;
}

static int do_thread(const char *path, char **argv) {
    struct thread_exec te = {.path = path, .argv = argv};
    pthread_t thread;
    int err = pthread_create(&thread, NULL, thread_main, &te);
    if (err != 0) {
        fprintf(stderr, "execprobe: pthread_create: %s\n", strerror(err));
        return EXIT_SETUP;
    }
    /* A successful exec in the other thread kills this one (de_thread), so the join only returns
     * if something is badly wrong: the thread exits the process itself when the exec fails. */
    pthread_join(thread, NULL);
    fputs("execprobe: exec thread returned without exec or exit\n", stderr);
    return EXIT_SETUP;
}

static int do_fork(const char *path, char **argv) {
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "execprobe: fork: %s\n", strerror(errno));
        return EXIT_SETUP;
    }
    if (child == 0) {
        /* The child must not hold the pid pipe open, or a reader waits for the exec'd program. */
        close(PID_FD);
        _exit(do_execve(path, argv));
    }
    if (fcntl(PID_FD, F_GETFD) != -1) {
        dprintf(PID_FD, "%ld\n", (long)child);
        close(PID_FD);
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "execprobe: waitpid: %s\n", strerror(errno));
            return EXIT_SETUP;
        }
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return EXIT_SETUP;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleep until the CLOCK_MONOTONIC time `when` (seconds); an absolute deadline, so the pace does
 * not drift with the time each spawn takes. A paced storm's exec rate is then RATE as long as the
 * machine can keep up, and its `rate` falls short of RATE when it cannot. */
static void pace(double when) {
    struct timespec ts;
    ts.tv_sec = (time_t)when;
    ts.tv_nsec = (long)((when - (double)ts.tv_sec) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static int do_storm(int argc, char **argv) {
    /* argv: storm COUNT PATH TAG [PARALLEL [RATE]] */
    if (argc < 4 || argc > 6)
        return usage("storm needs COUNT PATH TAG [PARALLEL [RATE]]");
    unsigned long count = 0;
    unsigned long parallel = 1;
    unsigned long rate_target = 0;
    if (parse_ulong(argv[1], LONG_MAX, &count) != 0)
        return usage("storm: COUNT must be a non-negative integer");
    if (argc >= 5 && (parse_ulong(argv[4], 1UL << 20, &parallel) != 0 || parallel == 0))
        return usage("storm: PARALLEL must be a positive integer");
    if (argc == 6 && parse_ulong(argv[5], 100000000UL, &rate_target) != 0)
        return usage("storm: RATE must be a non-negative integer (execs per second, 0: unpaced)");
    char *path = argv[2];
    const char *tag = argv[3];

    size_t tag_size = strlen(tag) + 32; /* "-" and up to 20 digits, with room to spare */
    char *tag_arg = malloc(tag_size);
    if (tag_arg == NULL) {
        fputs("execprobe: out of memory\n", stderr);
        return EXIT_SETUP;
    }

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);

    unsigned long failed = 0;
    unsigned long nonzero = 0;
    unsigned long in_flight = 0;
    int first_error = 0;
    double start = now_seconds();
    for (unsigned long i = 0; i < count || in_flight > 0;) {
        if (i < count && in_flight < parallel) {
            if (rate_target > 0)
                pace(start + (double)i / (double)rate_target);
            snprintf(tag_arg, tag_size, "%s-%lu", tag, i);
            char *child_argv[] = {path, tag_arg, NULL};
            pid_t pid;
            /* glibc's posix_spawn reports a failed exec as its return value, so `failed` counts
             * exactly the execs that did not happen. */
            int err = posix_spawn(&pid, path, &actions, NULL, child_argv, environ);
            if (err != 0) {
                if (failed++ == 0)
                    first_error = err;
            } else {
                in_flight++;
            }
            i++;
            continue;
        }
        int status = 0;
        pid_t done = waitpid(-1, &status, 0);
        if (done < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "execprobe: waitpid: %s\n", strerror(errno));
            break;
        }
        in_flight--;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            nonzero++;
    }
    double seconds = now_seconds() - start;
    posix_spawn_file_actions_destroy(&actions);
    free(tag_arg);

    unsigned long done_execs = count - failed;
    double rate = seconds > 0 ? (double)done_execs / seconds : 0.0;
    printf("{\"count\": %lu, \"failed\": %lu, \"nonzero\": %lu, \"seconds\": %.6f, \"rate\": %.1f}\n", count,
           failed, nonzero, seconds, rate);
    fflush(stdout);
    if (failed > 0)
        fprintf(stderr, "execprobe: storm: %lu of %lu spawns of %s failed, first: %s\n", failed, count, path,
                strerror(first_error));
    return (failed == 0 && nonzero == 0 && in_flight == 0) ? 0 : EXIT_SETUP;
}

static int run(int argc, char **argv);

static int do_comm(int argc, char **argv) {
    /* argv: comm NAME MODE ... */
    if (argc < 3)
        return usage("comm needs NAME MODE ...");
    if (prctl(PR_SET_NAME, argv[1], 0, 0, 0) != 0) {
        fprintf(stderr, "execprobe: prctl(PR_SET_NAME, %s): %s\n", argv[1], strerror(errno));
        return EXIT_SETUP;
    }
    return run(argc - 2, argv + 2);
}

static int do_setid(int argc, char **argv) {
    /* argv: setid UID GID MODE ... */
    if (argc < 4)
        return usage("setid needs UID GID MODE ...");
    unsigned long uid = 0;
    unsigned long gid = 0;
    /* (uid_t)-1 means "unchanged" to the kernel, so it is not a valid target. */
    if (parse_ulong(argv[1], (uid_t)-2, &uid) != 0)
        return usage("setid: UID must be a numeric user id");
    if (parse_ulong(argv[2], (gid_t)-2, &gid) != 0)
        return usage("setid: GID must be a numeric group id");
    /* Groups first, then gid, then uid: after setuid we would no longer be allowed the others. */
    if (setgroups(0, NULL) != 0) {
        fprintf(stderr, "execprobe: setgroups(0): %s\n", strerror(errno));
        return EXIT_SETUP;
    }
    if (setgid((gid_t)gid) != 0) {
        fprintf(stderr, "execprobe: setgid(%lu): %s\n", gid, strerror(errno));
        return EXIT_SETUP;
    }
    if (setuid((uid_t)uid) != 0) {
        fprintf(stderr, "execprobe: setuid(%lu): %s\n", uid, strerror(errno));
        return EXIT_SETUP;
    }
    return run(argc - 3, argv + 3);
}

/* argv[0] is the mode; argv is NULL-terminated, so &argv[2] is the exec'd argv as given. */
static int run(int argc, char **argv) {
    const char *mode = argv[0];
    if (strcmp(mode, "comm") == 0)
        return do_comm(argc, argv);
    if (strcmp(mode, "setid") == 0)
        return do_setid(argc, argv);
    if (strcmp(mode, "storm") == 0)
        return do_storm(argc, argv);

    static const struct {
        const char *name;
        int (*exec)(const char *path, char **argv);
    } modes[] = {
        {"execve", do_execve}, {"execveat", do_execveat}, {"fexecve", do_fexecve},
        {"thread", do_thread}, {"fork", do_fork},
    };
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (strcmp(mode, modes[i].name) != 0)
            continue;
        if (argc < 2)
            return usage("missing PATH");
        return modes[i].exec(argv[1], &argv[2]);
    }
    fprintf(stderr, "execprobe: unknown mode '%s'\n", mode);
    return usage(NULL);
}

int main(int argc, char **argv) {
    if (argc < 2)
        return usage(NULL);
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    return run(argc - 1, argv + 1);
}
