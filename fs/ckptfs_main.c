/* fs/ckptfs_main.c - `ckptfs STORE MOUNTPOINT [-f] [-d] [-s] [-o opts]`: mount a store
 *
 * Everything a user can get wrong (store, mountpoint, /dev/fuse, options) is checked and
 * reported in one line before the process daemonizes, and nothing is left mounted on error.
 * The LMDB environment is opened again after daemonizing (LMDB environments must not cross a
 * fork). mount.fuse3 calls us as `ckptfs STORE MNT -o opts`, so the source comes first.
 * The mount is always read-only, nosuid and nodev (added after the user's options, so that
 * mount(8)'s "-o rw,dev,suid" loses); fsname=STORE and subtype=ckptfs unless -o names others.
 * Starts on one mountpoint take turns (a flock on the mountpoint directory from before the
 * already-mounted check until the mount is up, or gone again), so that of several started at
 * once exactly one mounts and the others are refused as a later start is.
 *
 * Started as root, ckptfs keeps root's privileges for its life: on SIGTERM it unmounts itself,
 * and a mount made by root can only be unmounted by root (after a drop to another uid the
 * daemon would exit and leave a dead mount behind); it also raises the mount's readahead in
 * /sys after INIT (answered before daemonizing, so the mount is ready when ckptfs returns),
 * which needs root (an explicit -o readahead_kb that cannot be set gets a note). What it serves
 * cannot be written whoever asks (read-only mount, EROFS for every changing call). To run it
 * without root, mount as the user: fusermount3 does the privileged part.
 *
 * Exit status: 0; 2 for a usage error (missing or extra arguments, an unknown option, a bad
 * option value: said before anything else is looked at); 1 for everything else (the store,
 * the mountpoint, /dev/fuse, writing --help).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "ckpt/message.h"
#include "ckpt/store.h"
#include "ckpt/view.h"
#include "fs/cli.h"
#include "fs/fuse_ops.h"

/* statfs's f_type of a FUSE file system (linux/magic.h) */
#define FUSE_SUPER_MAGIC 0x65735546

typedef struct cli_options {
	char *store;
	char *map_location;
	unsigned max_read;
	unsigned readahead_kb;
	unsigned snapshot_idle;
	bool allow_other; /* allow_other or allow_root given */
	bool readahead_given;             /* -o readahead_kb= said: a note if it cannot be set */
	bool fsname_given, subtype_given; /* the user's win over ours */
	bool auto_unmount; /* its fusermount3 stays: stderr is not caught for it while mounting */
	bool mountpoint_seen;
	/* a MOUNTPOINT that stat refused: said after every option is judged (usage errors first) */
	char *bad_mountpoint;
	int bad_mountpoint_errno;
	int failed; /* option_proc said why in one line: the exit status (1 or 2), else 0 */
} cli_options;

/* the kernel reads at least a page per request: a smaller max_read would silently be 4096 */
#define MIN_MAX_READ 4096u
/* -o fsname= and subtype=: the kernel copies each in less than a page (with "fuse." before
 * the subtype) */
#define FUSE_NAME_MAX 4000u

enum {
	KEY_MAX_READ = 100,
	KEY_READAHEAD_KB,
	KEY_SNAPSHOT_IDLE,
	KEY_ALLOW_OTHER,
	KEY_FSNAME,
	KEY_SUBTYPE,
	KEY_AUTO_UNMOUNT,
	KEY_BLOCK_DEVICE, /* fuseblk's options: the kernel refuses the mount */
	KEY_SELINUX,      /* refused by the kernel where SELinux is off */
};

/* The numeric options are parsed here, not with "%u": sscanf's %u takes "-1" as 4294967295. */
static const struct fuse_opt option_spec[] = {
    {"map_location=%s", offsetof(cli_options, map_location), 0},
    FUSE_OPT_KEY("max_read=", KEY_MAX_READ),
    FUSE_OPT_KEY("readahead_kb=", KEY_READAHEAD_KB),
    FUSE_OPT_KEY("snapshot_idle=", KEY_SNAPSHOT_IDLE),
    FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
    FUSE_OPT_KEY("allow_root", KEY_ALLOW_OTHER),
    FUSE_OPT_KEY("fsname=", KEY_FSNAME),
    FUSE_OPT_KEY("subtype=", KEY_SUBTYPE),
    FUSE_OPT_KEY("auto_unmount", KEY_AUTO_UNMOUNT),
    FUSE_OPT_KEY("blksize=", KEY_BLOCK_DEVICE),
    FUSE_OPT_KEY("blkdev", KEY_BLOCK_DEVICE),
    FUSE_OPT_KEY("context=", KEY_SELINUX),
    FUSE_OPT_KEY("fscontext=", KEY_SELINUX),
    FUSE_OPT_KEY("defcontext=", KEY_SELINUX),
    FUSE_OPT_KEY("rootcontext=", KEY_SELINUX),
    FUSE_OPT_END,
};

static bool log_to_syslog;
static bool fuse_said_error;     /* libfuse printed an error line (fuse_log_line) */
/* While set, libfuse's error lines are kept in fuse_held instead of printed, so that a failed
 * mount says everything in one line of ours (fuse_log_line's lock guards them). */
static bool fuse_hold_errors;
static char fuse_held[512];
/* While stderr is caught for fusermount3 (stderr_catch_begin), the real one: libfuse's debug
 * and notice lines go there, not into the reason of a failed mount. -1 otherwise. */
static int fuse_real_stderr = -1;
static bool fuse_said_no_memory; /* ... and it was about an allocation, not the command line */

/* Daemon start-up. The parent of the fork waits for the daemon's word: "0" once it serves, or
 * "1" and the first error it said, after it has unmounted again. So an error after the fork (the
 * store, threads refused under ulimit -v) is still one line on stderr and exit 1, never exit 0
 * with nothing mounted. */
static pthread_mutex_t ready_lock = PTHREAD_MUTEX_INITIALIZER;
static int ready_fd = -1;        /* the daemon's end of the pipe until it has reported */
static char startup_error[1024]; /* the first error said while ready_fd is open */

/* Starts on one mountpoint take turns (mount_lock_take): the mountpoint directory, opened and
 * locked (flock) before the already-mounted check, until this start's mount is known to be up
 * or given up. -1 when not held. */
static int mount_lock_fd = -1;
/* how long a start waits for the one before it (its mount and its daemon's report take well
 * under a second); then it goes on unlocked, as without the lock */
#define MOUNT_LOCK_WAIT_MS 30000

static void say(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int priority, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (priority <= LOG_ERR) {
		pthread_mutex_lock(&ready_lock);
		if (ready_fd >= 0 && !startup_error[0]) {
			va_list copy;
			va_copy(copy, ap);
			vsnprintf(startup_error, sizeof(startup_error), fmt, copy);
			va_end(copy);
		}
		pthread_mutex_unlock(&ready_lock);
	}
	if (log_to_syslog) {
		vsyslog(priority, fmt, ap);
	} else {
		ckpt_vprint_line(stderr,
		                 priority <= LOG_ERR      ? "ckptfs: error: "
		                 : priority == LOG_NOTICE ? "ckptfs: note: "
		                                          : "ckptfs: ",
		                 fmt, ap);
	}
	va_end(ap);
}

/* Take the mountpoint lock on the directory @p mountpoint, waiting for a ckptfs started on it
 * just before, so that this start's already-mounted check sees that one's mount. Unlocked (as
 * without the lock) if the directory cannot be opened for reading (a user's mountpoint that
 * the user may search but not read; its errors are check_mountpoint's to say) or after
 * MOUNT_LOCK_WAIT_MS. A start that comes after the mount opens and locks the mounted directory
 * instead, and its check refuses. */
static void mount_lock_take(const char *mountpoint)
{
	int fd = open(mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	for (unsigned waited_ms = 0; waited_ms < MOUNT_LOCK_WAIT_MS; waited_ms += 10) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			mount_lock_fd = fd;
			return;
		}
		if (errno != EWOULDBLOCK && errno != EINTR)
			break;
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
	close(fd);
}

/* Let the next start on the mountpoint make its check: this one's mount is up (or gone again).
 * Closing the directory also keeps it from being busy while mounted. */
static void mount_lock_release(void)
{
	if (mount_lock_fd >= 0) {
		close(mount_lock_fd);
		mount_lock_fd = -1;
	}
}

/* Fork; the parent waits for the daemon's report and exits with it (never returns). The
 * daemon (the child) gets a new session and "/" as its directory. @return 0 in the daemon. */
static int daemon_start(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid > 0) {
		close(p[1]);
		char buf[1100];
		size_t n = 0;
		for (;;) {
			ssize_t r = read(p[0], buf + n, sizeof(buf) - 1 - n);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0 || (n += (size_t)r) == sizeof(buf) - 1)
				break;
		}
		buf[n] = '\0';
		if (n > 0 && buf[0] == '0')
			_exit(0);
		ckpt_print_line(stderr, "ckptfs: error: ", "%s",
		                n > 1 ? buf + 1 : "the daemon ended while starting (see the system log)");
		_exit(1);
	}
	close(p[0]);
	ready_fd = p[1];
	/* the parent keeps the mountpoint locked until it exits with the daemon's report; the
	 * daemon's copy of the descriptor would hold the lock (and the directory) for its life */
	mount_lock_release();
	if (setsid() < 0 || chdir("/") != 0)
		return -errno;
	return 0;
}

/* Report the daemon's start-up to the waiting parent, once: @p ok, or the first error said. */
static void daemon_report(bool ok)
{
	pthread_mutex_lock(&ready_lock);
	if (ready_fd >= 0) {
		char msg[1100];
		int n = ok ? snprintf(msg, sizeof(msg), "0")
		           : snprintf(msg, sizeof(msg), "1%s",
		                      startup_error[0] ? startup_error
		                                       : "the daemon could not start serving");
		if (n > 0 && write(ready_fd, msg, (size_t)n) < 0) {
			/* the parent is gone: nobody to tell */
		}
		close(ready_fd);
		ready_fd = -1;
		if (ok) {
			int null = open("/dev/null", O_RDWR | O_CLOEXEC);
			if (null >= 0) {
				(void)dup2(null, STDIN_FILENO);
				(void)dup2(null, STDOUT_FILENO);
				(void)dup2(null, STDERR_FILENO);
				if (null > STDERR_FILENO)
					close(null);
			}
		}
	}
	pthread_mutex_unlock(&ready_lock);
}

/* The session loop fails at once if it cannot start (its first thread, under ulimit -v): the
 * daemon reports ready when the loop has run a moment. */
static void *ready_notifier(void *arg)
{
	(void)arg;
	nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
	daemon_report(true);
	return NULL;
}

/* libfuse's own errors ("fuse: unknown option(s): ...", printed in pieces) as one line of
 * ours; its debug output (-d) goes to stderr as usual. */
static void fuse_log_line(enum fuse_log_level level, const char *fmt, va_list ap)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static char pending[1024];
	static size_t used;
	if (level > FUSE_LOG_ERR) {
		if (log_to_syslog)
			vsyslog(LOG_DEBUG, fmt, ap);
		else if (fuse_real_stderr >= 0)
			vdprintf(fuse_real_stderr, fmt, ap);
		else
			vfprintf(stderr, fmt, ap);
		return;
	}
	pthread_mutex_lock(&lock);
	vsnprintf(pending + used, sizeof(pending) - used, fmt, ap);
	used = strlen(pending);
	if (used > 0 && (pending[used - 1] == '\n' || used + 1 >= sizeof(pending))) {
		while (used > 0 && pending[used - 1] == '\n')
			pending[--used] = '\0';
		if (used > 0 && fuse_hold_errors) {
			size_t h = strlen(fuse_held);
			snprintf(fuse_held + h, sizeof(fuse_held) - h, "%s%s", h ? "; " : "", pending);
		} else if (used > 0) {
			say(LOG_ERR, "%s", pending);
			fuse_said_error = true;
			/* libfuse's allocation failures say "failed to allocate"/"create" */
			fuse_said_no_memory = fuse_said_no_memory || strstr(pending, "failed to");
		}
		used = 0;
		pending[0] = '\0';
	}
	pthread_mutex_unlock(&lock);
}

static void view_log(void *ctx, const char *line)
{
	(void)ctx;
	say(LOG_ERR, "%s", line);
}

/* @p path as one shell word for a command in a message (ckpt_shell_word); free() it.
 * @return NULL without memory. */
static char *shell_word_of(const char *path)
{
	size_t len = 4 * strlen(path) + 4;
	char *buf = malloc(len);
	if (!buf)
		return NULL;
	const char *word = ckpt_shell_word(buf, len, path);
	if (word != buf)
		snprintf(buf, len, "%s", word);
	return buf;
}

/* Whether @p mountpoint (as given: it cannot be resolved when the mount shuts us out) is a
 * FUSE mount in /proc/self/mountinfo. */
static bool foreign_fuse_mount(const char *mountpoint)
{
	char path[2 * PATH_MAX + 2], cwd[PATH_MAX];
	int len;
	if (mountpoint[0] == '/')
		len = snprintf(path, sizeof(path), "%s", mountpoint);
	else if (getcwd(cwd, sizeof(cwd)))
		len = snprintf(path, sizeof(path), "%s/%s", strcmp(cwd, "/") ? cwd : "", mountpoint);
	else
		return false;
	if (len < 0 || (size_t)len >= sizeof(path))
		return false;
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		path[--n] = '\0';
	char majmin[64], fstype[64];
	return ckptfs_find_mount(path, majmin, sizeof(majmin), fstype, sizeof(fstype)) &&
	       (strcmp(fstype, "fuse") == 0 || strncmp(fstype, "fuse.", 5) == 0);
}

/* Whose path is too long when realpath(@p path) fails with ENAMETOOLONG, for a message: the
 * current directory's when @p path is relative and getcwd refuses it. The kernel and libfuse
 * take the mountpoint, and the daemon (in "/") the store, by absolute path. */
static const char *too_long_whose(const char *path)
{
	char cwd[PATH_MAX];
	bool cwd_too_long = path[0] != '/' && !getcwd(cwd, sizeof(cwd)) &&
	                    (errno == ENAMETOOLONG || errno == ERANGE);
	return cwd_too_long ? "the current directory's path" : "its absolute path";
}

static void say_mountpoint_error(const char *mountpoint, int err)
{
	if (err == ENAMETOOLONG && *mountpoint) {
		say(LOG_ERR,
		    "mountpoint %s: %s (%s is longer than %d bytes, and the kernel needs the "
		    "mountpoint's absolute path; give a shorter path)",
		    mountpoint, strerror(err), too_long_whose(mountpoint), PATH_MAX);
	} else if (err == ENOTCONN) {
		char *word = shell_word_of(mountpoint);
		say(LOG_ERR, "mountpoint %s: %s (a dead mount is still there: fusermount3 -u %s)",
		    mountpoint, strerror(err), word ? word : mountpoint);
		free(word);
	} else if (!*mountpoint) {
		say(LOG_ERR, "mountpoint '' (the path is empty)");
	} else if (err == EACCES && foreign_fuse_mount(mountpoint)) {
		/* another user's FUSE mount, whose root the kernel keeps even root out of */
		char *word = shell_word_of(mountpoint);
		say(LOG_ERR,
		    "mountpoint %s: %s (it is another user's FUSE mount; that user or root can "
		    "unmount it: fusermount3 -u %s)",
		    mountpoint, strerror(err), word ? word : mountpoint);
		free(word);
	} else {
		say(LOG_ERR, "mountpoint %s: %s", mountpoint, strerror(err));
	}
}

/* "name=N" with N a decimal in 0..UINT_MAX, nothing else. */
static int parse_unsigned_opt(unsigned *out, const char *arg)
{
	const char *v = strchr(arg, '=');
	if (!v || v[1] < '0' || v[1] > '9')
		return -1;
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v + 1, &end, 10);
	if (errno || *end || x > UINT_MAX)
		return -1;
	*out = (unsigned)x;
	return 0;
}

static int option_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	cli_options *o = data;
	/* an empty element (-o ro,,ro, -o ro,): ignored, as mount(8) ignores it; libfuse would
	 * refuse it as "unknown option(s): `-o '" */
	if (key == FUSE_OPT_KEY_OPT && !*arg)
		return 0;
	unsigned *field = key == KEY_MAX_READ        ? &o->max_read
	                  : key == KEY_READAHEAD_KB  ? &o->readahead_kb
	                  : key == KEY_SNAPSHOT_IDLE ? &o->snapshot_idle
	                                             : NULL;
	if (key == KEY_FSNAME || key == KEY_SUBTYPE) {
		/* the kernel takes the source and the type as strings shorter than a page, and
		 * neither empty: refused there as "Invalid argument", which names nothing */
		const char *value = strchr(arg, '=') + 1; /* the spec's "fsname=" matched */
		if (!*value || strlen(value) > FUSE_NAME_MAX) {
			say(LOG_ERR, "-o %.*s: %s (1 to %u bytes)", (int)(value - arg - 1), arg,
			    *value ? "too long" : "needs a name", FUSE_NAME_MAX);
			o->failed = 2;
			return -1;
		}
	}
	if (key == KEY_ALLOW_OTHER || key == KEY_FSNAME || key == KEY_SUBTYPE ||
	    key == KEY_AUTO_UNMOUNT) {
		o->allow_other = o->allow_other || key == KEY_ALLOW_OTHER;
		o->auto_unmount = o->auto_unmount || key == KEY_AUTO_UNMOUNT;
		o->fsname_given = o->fsname_given || key == KEY_FSNAME;
		o->subtype_given = o->subtype_given || key == KEY_SUBTYPE;
		return 1; /* libfuse's option */
	}
	if (key == KEY_BLOCK_DEVICE) {
		say(LOG_ERR,
		    "-o %s: an option of block-device (fuseblk) mounts, which the kernel "
		    "refuses for ckptfs (its source is a store directory)",
		    arg);
		o->failed = 2;
		return -1;
	}
	/* SELinux is on where selinuxfs is mounted (libselinux's test) */
	if (key == KEY_SELINUX && access("/sys/fs/selinux/enforce", F_OK) != 0) {
		say(LOG_ERR,
		    "-o %s: an SELinux option, and SELinux is not enabled here (the kernel "
		    "would refuse the mount)",
		    arg);
		o->failed = 2;
		return -1;
	}
	if (key == KEY_SELINUX)
		return 1;
	if (field) {
		if (parse_unsigned_opt(field, arg) != 0) {
			say(LOG_ERR, "-o %s: expected a whole number from 0 to %u", arg, UINT_MAX);
			o->failed = 2;
			return -1;
		}
		if (key == KEY_MAX_READ && *field < MIN_MAX_READ) {
			say(LOG_ERR, "-o %s: expected at least %u (the kernel reads whole pages)",
			    arg, MIN_MAX_READ);
			o->failed = 2;
			return -1;
		}
		o->readahead_given = o->readahead_given || key == KEY_READAHEAD_KB;
		return key == KEY_MAX_READ ? 1 : 0; /* libfuse needs max_read too */
	}
	if (key == FUSE_OPT_KEY_NONOPT && !o->store) {
		o->store = strdup(arg);
		if (!o->store) {
			say(LOG_ERR, "out of memory");
			o->failed = 1;
			return -1;
		}
		return 0;
	}
	if (key == FUSE_OPT_KEY_NONOPT && !o->mountpoint_seen) {
		/* said here in our words: libfuse's "bad mount point" would end as a usage error */
		o->mountpoint_seen = true;
		struct stat st;
		char resolved[PATH_MAX];
		/* libfuse resolves it too (realpath), and calls a failure a usage error */
		if (stat(arg, &st) != 0 || !realpath(arg, resolved)) {
			o->bad_mountpoint_errno = errno;
			o->bad_mountpoint = strdup(arg);
			/* libfuse gets a path that resolves, so that it goes on judging the options */
			if (!o->bad_mountpoint || fuse_opt_add_arg(outargs, "/") != 0) {
				say(LOG_ERR, "out of memory");
				o->failed = 1;
				return -1;
			}
			return 0;
		}
	}
	return 1;
}

static void usage(FILE *to)
{
	fprintf(
	    to,
	    "usage: ckptfs STORE MOUNTPOINT [options]\n"
	    "Mount a checkpoint store read-only: one directory per epoch, a .npy file per\n"
	    "tensor, model.safetensors, model.pt, checkpoint.pt, metrics, best/latest links.\n\n"
	    "ckptfs options:\n"
	    "    -o map_location=cpu|keep|cuda|cuda:N  where .pt files put storages\n"
	    "                           (default cpu)\n"
	    "    -o readahead_kb=N      kernel readahead set after mounting as root (1024;\n"
	    "                           0 leaves the kernel's)\n"
	    "    -o max_read=N          largest read request in bytes (at least %u)\n"
	    "    -o snapshot_idle=S     release an open file's snapshot after S idle seconds\n"
	    "                           (%d; 0 never) while the store still has its content;\n"
	    "                           if that is deleted later, reading it gives ESTALE\n"
	    "The mount is read-only, nosuid and nodev whatever -o says; with allow_other the\n"
	    "kernel checks permissions (default_permissions): every file is 0444.\n\n",
	    MIN_MAX_READ, CKPTFS_SNAPSHOT_IDLE);
}

static int check_mountpoint(const char *mountpoint, char *resolved)
{
	struct stat st;
	if (stat(mountpoint, &st) != 0) {
		say_mountpoint_error(mountpoint, errno);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		say(LOG_ERR, "mountpoint %s is not a directory", mountpoint);
		return -1;
	}
	if (!realpath(mountpoint, resolved)) {
		say(LOG_ERR, "mountpoint %s: %s", mountpoint, strerror(errno));
		return -1;
	}
	/* a FUSE mount there: ckptfs's (its type fuse.ckptfs, or another with -o subtype=) or
	 * another FUSE file system's; stacking on it is never what was meant */
	char majmin[64], fstype[64];
	if (ckptfs_find_mount(resolved, majmin, sizeof(majmin), fstype, sizeof(fstype)) &&
	    (strcmp(fstype, "fuse") == 0 || strncmp(fstype, "fuse.", 5) == 0)) {
		char *word = shell_word_of(mountpoint);
		if (strcmp(fstype, "fuse.ckptfs") == 0)
			say(LOG_ERR, "%s is already a ckptfs mount (unmount it with fusermount3 -u %s)",
			    mountpoint, word ? word : mountpoint);
		else
			say(LOG_ERR,
			    "%s is already a FUSE mount (%s; unmount it with fusermount3 -u %s)",
			    mountpoint, fstype, word ? word : mountpoint);
		free(word);
		return -1;
	}
	/* a directory inside a ckptfs mount (an epoch's): a mount there would keep that mount
	 * busy, so that fusermount3 -u of it fails, and its epoch can vanish under it */
	char holder[PATH_MAX];
	struct statfs sfs;
	if (statfs(resolved, &sfs) == 0 && sfs.f_type == FUSE_SUPER_MAGIC &&
	    ckptfs_find_mount_holding(resolved, st.st_dev, holder, sizeof(holder), fstype,
	                              sizeof(fstype)) &&
	    strcmp(fstype, "fuse.ckptfs") == 0) {
		say(LOG_ERR, "mountpoint %s is inside the ckptfs mount %s; mount it elsewhere",
		    mountpoint, holder);
		return -1;
	}
	return 0;
}

/* What fusermount3 (which libfuse runs to mount for a user other than root) writes to our
 * stderr is caught while mounting, so that a refused mount is one line of ours with its reason.
 * A memfd, not a pipe: nobody reads it while the child writes (a full pipe would block it), and
 * a fusermount3 kept for auto_unmount holds it as long as the mount lives.
 * @return the saved stderr to hand to stderr_catch_end(), or -1 if nothing is caught. */
static int stderr_catch_begin(void)
{
	int saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	if (saved < 0)
		return -1;
	int mem = memfd_create("ckptfs-stderr", MFD_CLOEXEC);
	if (mem < 0 || dup2(mem, STDERR_FILENO) < 0) { /* dup2 leaves fd 2 inheritable */
		if (mem >= 0)
			close(mem);
		close(saved);
		return -1;
	}
	close(mem);
	return saved;
}

/* Put back the stderr stderr_catch_begin() saved. @return what was written meanwhile, as a
 * string (up to its first NUL byte; "" if nothing), or NULL without memory; free() it. */
static char *stderr_catch_end(int saved)
{
	size_t len = 0, cap = 256;
	char *text = malloc(cap);
	for (;;) {
		if (text && len + 1 == cap) {
			char *bigger = realloc(text, cap * 2);
			if (!bigger)
				break;
			text = bigger;
			cap *= 2;
		}
		if (!text)
			break;
		ssize_t r = pread(STDERR_FILENO, text + len, cap - 1 - len, (off_t)len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	if (text)
		text[len] = '\0';
	(void)dup2(saved, STDERR_FILENO);
	close(saved);
	return text;
}

/* The reason a mount failed, in one line: what fusermount3 said (@p child), then libfuse's own
 * lines (@p held), "; " between lines. @return a malloc'd string, or NULL without memory. */
static char *mount_failure_reason(const char *child, const char *held)
{
	size_t cap = (child ? strlen(child) * 2 : 0) + strlen(held) + 32;
	char *why = malloc(cap);
	if (!why)
		return NULL;
	size_t n = 0;
	for (const char *p = child; p && *p;) {
		size_t line = strcspn(p, "\n");
		if (line > 0)
			n += (size_t)snprintf(why + n, cap - n, "%s%.*s", n ? "; " : "", (int)line,
			                      p);
		p += line + (p[line] == '\n');
	}
	if (*held)
		n += (size_t)snprintf(why + n, cap - n, "%s%s", n ? "; " : "", held);
	if (n == 0)
		snprintf(why, cap, "libfuse gave no reason");
	return why;
}

/* @p path equals @p dir or lies below it (both resolved by realpath). */
static bool path_within(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	if (n == 1 && dir[0] == '/')
		return true;
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Strip a /etc/fuse.conf line as fusermount3's strip_line() does: cut at '#', drop white space
 * (isspace) at both ends. @return the word left, inside @p line. */
static char *fuse_conf_word(char *line)
{
	line[strcspn(line, "#")] = '\0';
	size_t n = strlen(line);
	while (n > 0 && isspace((unsigned char)line[n - 1]))
		line[--n] = '\0';
	while (isspace((unsigned char)*line))
		line++;
	return line;
}

/* Whether /etc/fuse.conf (@p f) says user_allow_other as fusermount3 reads it (read_conf() of
 * libfuse 3's util/fusermount.c), so that the two never disagree: lines go through fgets() into
 * 256 bytes, a longer line is skipped whole, a last line without its newline is not read.
 * @p unread_last is set when that last line would have said it. */
static bool fuse_conf_allows_other(FILE *f, bool *unread_last)
{
	char line[256];
	bool line_start = true, allowed = false;
	*unread_last = false;
	while (fgets(line, sizeof(line), f)) {
		size_t n = strlen(line);
		bool whole = n > 0 && line[n - 1] == '\n';
		if (line_start && whole)
			allowed = allowed || strcmp(fuse_conf_word(line), "user_allow_other") == 0;
		else if (line_start && feof(f))
			*unread_last = strcmp(fuse_conf_word(line), "user_allow_other") == 0;
		line_start = whole; /* the rest of a long line ends with the chunk that ends it */
	}
	return allowed;
}

/* fusermount3 mounts for a user other than root with allow_other or allow_root only when
 * /etc/fuse.conf says user_allow_other; said here, as one line, before it prints its own. */
static int check_allow_other(bool allow_other)
{
	if (!allow_other || getuid() == 0)
		return 0;
	bool unread_last = false;
	FILE *f = fopen("/etc/fuse.conf", "re");
	bool allowed = f && fuse_conf_allows_other(f, &unread_last);
	if (f)
		fclose(f);
	if (!allowed)
		say(LOG_ERR,
		    "-o allow_other and allow_root need the line user_allow_other in "
		    "/etc/fuse.conf when a user other than root mounts%s",
		    unread_last
		        ? " (there it is the last line and lacks its newline, so fusermount3 "
		          "does not read it)"
		        : "");
	return allowed ? 0 : -1;
}

static int check_fuse_device(void)
{
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		say(LOG_ERR, "cannot open /dev/fuse (%s): FUSE is not available here%s",
		    strerror(errno),
		    errno == EACCES || errno == EPERM ? " to this user"
		                                      : " (load the fuse module)");
		return -1;
	}
	close(fd);
	return 0;
}

/* Open the store at @p path; an error is the line the ckpt commands say, naming the store as
 * the user wrote it (@p given): "cannot open store 'GIVEN' (libckpt's reason)", where the
 * reason names the path opened once. */
static int open_store(ckpt_store **out, const char *path, const char *given)
{
	int rc = ckpt_store_open(out, path, CKPT_OPEN_READONLY);
	if (rc)
		say(LOG_ERR, "cannot open store '%s' (%s)", given,
		    *ckpt_last_error() ? ckpt_last_error() : ckpt_strerror(rc));
	return rc;
}

/* Flush standard output (--help, --version): a write error is exit 1 with one line. */
static int finish_stdout(void)
{
	int err = fflush(stdout) != 0 ? errno : ferror(stdout) ? EIO : 0;
	if (!err)
		return 0;
	say(LOG_ERR, "cannot write to standard output (%s)", strerror(err));
	return 1;
}

/* What every mount gets whatever the command line says, after it so that these win: read-only,
 * nosuid, nodev (mount(8) hands mount.fuse3 "rw,dev,suid"); with allow_other the kernel checks
 * file modes (default_permissions), since ckptfs itself checks none. The subtype "ckptfs" and
 * the store as fsname unless the user chose them. @return 0 or -1 (out of memory). */
static int add_forced_options(struct fuse_args *args, const char *store_path, const cli_options *o)
{
	if (fuse_opt_add_arg(args, "-oro,nosuid,nodev") != 0 ||
	    (!o->subtype_given && fuse_opt_add_arg(args, "-osubtype=ckptfs") != 0) ||
	    (o->allow_other && fuse_opt_add_arg(args, "-odefault_permissions") != 0))
		return -1;
	if (o->fsname_given)
		return 0;
	char *fsname = NULL;
	if (fuse_opt_add_opt_escaped(&fsname, store_path) != 0)
		return -1;
	size_t optlen = strlen(fsname) + 16;
	char *fsopt = malloc(optlen);
	if (!fsopt) {
		free(fsname);
		return -1;
	}
	snprintf(fsopt, optlen, "-ofsname=%s", fsname);
	free(fsname);
	int rc = fuse_opt_add_arg(args, fsopt);
	free(fsopt);
	return rc;
}

/* The FUSE session of @p args: libfuse judges its options here (unknown ones, bad values) and
 * says why through fuse_log_line(). @return 0, 2 for a bad command line, 1 without memory. */
static int new_session(struct fuse_session **se, struct fuse_args *args, ckptfs_ctx *ctx)
{
	*se = fuse_session_new(args, ckptfs_ops(), sizeof(*ckptfs_ops()), ctx);
	if (*se)
		return 0;
	if (!fuse_said_error)
		say(LOG_ERR, "bad command line (try 'ckptfs --help')");
	return fuse_said_no_memory ? 1 : 2;
}

int main(int argc, char **argv)
{
	/* a closed stderr must not become the store's data.mdb, which an error line then writes */
	int fds_rc = ckpt_std_fds_open();
	if (fds_rc != 0) {
		ckpt_print_line(stderr, "ckptfs: error: ", "a standard stream is closed and /dev/null "
		                "cannot be opened (%s)", strerror(-fds_rc));
		return 1;
	}
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	cli_options o = {.readahead_kb = 1024, .snapshot_idle = CKPTFS_SNAPSHOT_IDLE};
	struct fuse_cmdline_opts copts;
	memset(&copts, 0, sizeof(copts));
	struct fuse_session *se = NULL;
	ckpt_store *store = NULL;
	ckpt_view *view = NULL;
	ckptfs_ctx ctx = {.uid = getuid(), .gid = getgid()};
	char store_path[PATH_MAX], mountpoint[PATH_MAX];
	int status = 1;
	bool mounted = false, handlers = false;

	fuse_set_log_func(fuse_log_line);
	if (fuse_opt_parse(&args, &o, option_spec, option_proc) != 0) {
		if (!o.failed && !fuse_said_error) /* else that line said it */
			say(LOG_ERR, "bad command line (try 'ckptfs --help')");
		status = o.failed ? o.failed : 2;
		goto out;
	}
	if (fuse_parse_cmdline(&args, &copts) != 0) {
		status = 2;
		goto out;
	}
	if (copts.show_help) {
		usage(stdout);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		status = finish_stdout();
		goto out;
	}
	if (copts.show_version) {
		printf("ckptfs %s (store schema %d), libfuse %s\n", CKPT_VERSION,
		       CKPT_SCHEMA_VERSION, fuse_pkgversion());
		status = finish_stdout();
		goto out;
	}
	if (!o.store || !copts.mountpoint) {
		/* an unknown option (--version=1, -hx) is what is wrong first: libfuse judges */
		if (args.argc > 1) {
			if ((status = new_session(&se, &args, &ctx)))
				goto out;
			fuse_session_destroy(se);
			se = NULL;
		}
		say(LOG_ERR, "expected STORE and MOUNTPOINT (usage: ckptfs STORE MOUNTPOINT "
		             "[-f] [-d] [-o opts]; try --help)");
		status = 2;
		goto out;
	}
	if (o.map_location && ckpt_view_check_map_location(o.map_location) != 0) {
		say(LOG_ERR, "-o %s", ckpt_view_last_error());
		status = 2;
		goto out;
	}
	/* opened and named as the ckpt commands do: 'run' for "run///" */
	cli_trim_store_path(o.store);
	/* said below, after libfuse has judged its options: usage errors come first */
	bool store_found = realpath(o.store, store_path) != NULL;
	int store_errno = errno;
	if (add_forced_options(&args, store_found ? store_path : o.store, &o) != 0) {
		say(LOG_ERR, "out of memory");
		goto out;
	}
	/* libfuse checks its options (unknown ones, bad values) here; nothing is opened yet */
	if ((status = new_session(&se, &args, &ctx)))
		goto out;
	status = 1;
	if (o.bad_mountpoint) {
		say_mountpoint_error(o.bad_mountpoint, o.bad_mountpoint_errno);
		goto out;
	}
	/* validate the store now, as given (libckpt's reason names it as the ckpt commands do);
	 * reopen it by its absolute path after daemonizing */
	if (open_store(&store, o.store, o.store) != 0)
		goto out;
	ckpt_store_close(store);
	store = NULL;
	/* it opened as given (relative to a current directory of a path too long to name), but
	 * the daemon, in "/", could not open it */
	if (!store_found && store_errno == ENAMETOOLONG) {
		say(LOG_ERR,
		    "cannot open store '%s' (%s: %s is longer than %d bytes, and ckptfs needs the "
		    "store's absolute path; give a shorter path)",
		    o.store, strerror(store_errno), too_long_whose(o.store), PATH_MAX);
		goto out;
	}
	if (!store_found) {
		say(LOG_ERR, "cannot open store '%s' (%s)", o.store, strerror(store_errno));
		goto out;
	}
	mount_lock_take(copts.mountpoint);
	if (check_mountpoint(copts.mountpoint, mountpoint) != 0 ||
	    check_allow_other(o.allow_other) != 0 || check_fuse_device() != 0)
		goto out;
	if (path_within(store_path, mountpoint)) {
		/* the daemon opens the store after mounting: through its own mount, a deadlock */
		say(LOG_ERR,
		    "mountpoint %s would hide the store %s under the mount; mount it elsewhere",
		    copts.mountpoint, store_path);
		goto out;
	}

	ctx.max_read = o.max_read;
	if (fuse_set_signal_handlers(se) != 0) {
		say(LOG_ERR, "cannot install signal handlers");
		goto out;
	}
	handlers = true;
	fuse_hold_errors = true; /* single-threaded until the session loop: no lock needed */
	/* with auto_unmount, the fusermount3 that waits to unmount keeps the stderr it was given:
	 * not a memfd nobody reads */
	int saved_stderr = o.auto_unmount ? -1 : stderr_catch_begin();
	fuse_real_stderr = saved_stderr;
	int mrc = fuse_session_mount(se, mountpoint);
	fuse_real_stderr = -1;
	char *child_said = saved_stderr >= 0 ? stderr_catch_end(saved_stderr) : NULL;
	fuse_hold_errors = false;
	if (mrc != 0) {
		char *why = mount_failure_reason(child_said, fuse_held);
		say(LOG_ERR, "cannot mount %s on %s (%s)", store_path, mountpoint,
		    why ? why : "out of memory");
		free(why);
		free(child_said);
		goto out;
	}
	if (child_said && *child_said) /* a note of fusermount3's: passed on as it was */
		fputs(child_said, stderr);
	free(child_said);
	if (fuse_held[0])
		say(LOG_WARNING, "%s", fuse_held);
	mounted = true;
	int irc = ckptfs_session_init(se, &ctx);
	if (irc != 0) {
		say(LOG_ERR, "cannot initialize the mount of %s on %s (%s)", store_path, mountpoint,
		    strerror(-irc));
		goto out;
	}
	char ra_path[128];
	int rarc = ckptfs_set_readahead(mountpoint, o.readahead_kb, ra_path, sizeof(ra_path));
	if (rarc != 0 && o.readahead_given) /* the default just leaves reads smaller */
		say(LOG_NOTICE,
		    "-o readahead_kb=%u is not applied: %s %s (%s%s); reads keep the "
		    "kernel's readahead",
		    o.readahead_kb, rarc == -ENOENT ? "no mount found in" : "cannot write", ra_path,
		    strerror(-rarc), rarc == -EACCES ? ": only root may" : "");
	if (!copts.foreground) {
		int drc = daemon_start();
		if (drc != 0) { /* still the process the caller waits for: said on stderr */
			say(LOG_ERR, "cannot daemonize (%s)", strerror(-drc));
			goto out;
		}
		openlog("ckptfs", LOG_PID, LOG_DAEMON);
		log_to_syslog = true;
	}
	if (open_store(&store, store_path, o.store) != 0)
		goto out;
	ckpt_view_options vopts = {.map_location = o.map_location, .log = view_log};
	if (ckpt_view_new(&view, store, &vopts) != 0) {
		say(LOG_ERR, "%s", ckpt_view_last_error());
		goto out;
	}
	ctx.view = view;
	ctx.store_path = store_path;
	if (ckptfs_watcher_start(se, view) != 0)
		say(LOG_WARNING,
		    "cannot start the watcher thread; deleted epochs linger in the cache");
	if (ckptfs_reaper_start(o.snapshot_idle) != 0)
		say(LOG_WARNING, "cannot start the idle-snapshot thread; open files keep theirs");

	int rc;
	pthread_t notifier;
	if (copts.foreground) {
		mount_lock_release(); /* the mount serves from here */
	} else {
		int trc = pthread_create(&notifier, NULL, ready_notifier, NULL);
		if (trc != 0) {
			/* the session loop's threads would be refused the same way */
			say(LOG_ERR, "cannot start a thread (%s)%s", strerror(trc),
			    trc == EAGAIN ? ": not enough memory or address space (ulimit -v?)" : "");
			goto out;
		}
		pthread_detach(notifier);
	}
	if (copts.singlethread) {
		rc = fuse_session_loop(se);
	} else {
		struct fuse_loop_config *cfg = fuse_loop_cfg_create();
		if (!cfg) {
			say(LOG_ERR, "out of memory");
			goto out;
		}
		fuse_loop_cfg_set_clone_fd(cfg, (unsigned)copts.clone_fd);
		if (copts.max_idle_threads <= 100000) /* UINT_MAX: not given */
			fuse_loop_cfg_set_idle_threads(cfg, copts.max_idle_threads);
		if (copts.max_threads > 0 && copts.max_threads <= 100000)
			fuse_loop_cfg_set_max_threads(cfg, copts.max_threads);
		rc = fuse_session_loop_mt(se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	/* a signal ends the loop with 0 or the signal number: a clean exit either way */
	status = rc < 0 ? 1 : 0;
out:
	ckptfs_watcher_stop();
	ckptfs_reaper_stop();
	ckptfs_close_all_files();
	if (mounted)
		fuse_session_unmount(se);
	mount_lock_release(); /* the next start may mount instead */
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (se)
		fuse_session_destroy(se);
	ckpt_view_free(view);
	ckpt_store_close(store);
	/* a daemon that never served: unmounted above, now tell the waiting parent why */
	daemon_report(false);
	free(copts.mountpoint);
	free(o.store);
	free(o.map_location);
	free(o.bad_mountpoint);
	fuse_opt_free_args(&args);
	return status;
}
