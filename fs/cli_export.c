/* fs/cli_export.c - `ckpt export`: write one checkpoint's model.safetensors, model.pt or
 * checkpoint.pt to a regular file without a mount
 *
 * The bytes are exactly those the mount shows (same renderers, same layout reads). The output
 * is written to a temporary file beside FILE, fsynced and renamed over FILE, and the directory
 * is fsynced: FILE either keeps its old content or holds the whole new one. "-o -" streams to
 * stdout instead; an existing device or FIFO is written into, a symlink's target is replaced.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/message.h"
#include "ckpt/store.h"
#include "fs/cli.h"
#include "fs/layout.h"
#include "fs/render.h"
#include "fs/render_util.h"

#define EXPORT_BUF (8u << 20)

enum export_format { FORMAT_NONE, FORMAT_SAFETENSORS, FORMAT_PT, FORMAT_CHECKPOINT };

static void export_usage(void)
{
	printf("usage: ckpt " CLI_USAGE_EXPORT "\n"
	       "  safetensors  model.safetensors (the model's state_dict)\n"
	       "  pt           model.pt, as torch.save(model.state_dict()) writes it\n"
	       "  checkpoint   checkpoint.pt: model, optimizer, epoch, step, metrics\n"
	       "  -o -         write to stdout\n"
	       "  --map-location  where .pt storages say they live: cpu (default), the recorded\n"
	       "                  device (keep), or one device (cuda:N)\n"
	       "Writes FILE whole (a temporary file beside it, fsynced, renamed over it; a device\n"
	       "or FIFO is written into) and prints nothing.\n"
	       "EPOCH is 4 or epoch-0004, at most 549755813887 (2^39 - 1, the last a store holds).\n"
	       "Exit status: 0; 1 when the store, the epoch or a tensor cannot be read or FILE\n"
	       "cannot be written (FILE is then left as it was); 2 for bad usage (a malformed\n"
	       "EPOCH or one past the last included).\n");
}

/* A write of @p path failed with @p rc; past a file size limit say which, as ckpt-train and
 * ckpt gc do. */
static void report_write_error(const char *path, int rc)
{
	struct rlimit rl;
	if (rc == -EFBIG && getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		cli_error("export: writing '%s' failed: file too large: the file size limit "
		          "(ulimit -f) is %llu bytes",
		          path, (unsigned long long)rl.rlim_cur);
	else
		cli_error("export: writing '%s' failed (%s)", path, strerror(-rc));
}

/* A read of [@p off, @p off + @p len) of the layout failed with @p rc: name the tensor whose
 * stored bytes are damaged (the first in that range that fails its check), as `ckpt cat` and
 * `ckpt verify` do, and where its bytes start in the file. */
static void report_read_error(const view_layout *l, ckpt_snapshot *snap, uint64_t off,
                              size_t len, const char *what, int rc)
{
	for (size_t i = view_layout_find_segment(l, off);
	     i < l->nsegs && l->segs[i].file_offset < off + len; i++) {
		const view_segment *seg = &l->segs[i];
		if (seg->bytes || ckpt_tensor_verify(snap, seg->tensor) == 0)
			continue;
		cli_error("export: %s: tensor '%s' (bytes %" PRIu64 "..%" PRIu64
		          " of the file) fails its stored CRC-32 or is missing (%s)",
		          what, seg->tensor->name, seg->file_offset, seg->file_offset + seg->length,
		          ckpt_last_error());
		return;
	}
	cli_error("export: %s: reading bytes %" PRIu64 "..%" PRIu64 " failed (%s)", what, off,
	          off + len, strerror(-rc));
}

/* Stream the layout to @fd. On error a message naming @what is printed. */
static int copy_layout(view_layout *l, ckpt_snapshot *snap, int fd, const char *what,
                       const char *dest)
{
	char *buf = malloc(EXPORT_BUF);
	if (!buf) {
		cli_error("export: %s: out of memory", what);
		return -ENOMEM;
	}
	int rc = 0;
	for (uint64_t off = 0; off < l->size;) {
		size_t got;
		rc = view_layout_read(l, snap, off, buf, EXPORT_BUF, &got);
		if (rc || got == 0) {
			if (!rc)
				rc = -EIO;
			report_read_error(l, snap, off, EXPORT_BUF, what, rc);
			break;
		}
		rc = cli_write_all(fd, buf, got);
		if (rc) {
			report_write_error(dest, rc);
			break;
		}
		off += got;
	}
	free(buf);
	return rc;
}

/* The temporary file a signal must not leave behind: SIGINT, SIGTERM or SIGHUP during an
 * export unlinks it, then ends the process as the signal would have. */
static const int cleanup_signals[] = {SIGINT, SIGTERM, SIGHUP};
static char *volatile cleanup_path;
static struct sigaction cleanup_old[sizeof(cleanup_signals) / sizeof(cleanup_signals[0])];

static void unlink_and_reraise(int sig)
{
	char *p = cleanup_path;
	if (p)
		unlink(p);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void block_cleanup_signals(sigset_t *old)
{
	sigset_t set;
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(cleanup_signals) / sizeof(cleanup_signals[0]); i++)
		sigaddset(&set, cleanup_signals[i]);
	sigprocmask(SIG_BLOCK, &set, old);
}

/* Called with the signals blocked. A signal ignored by the caller (nohup) stays ignored. */
static void guard_temp_file(char *tmp)
{
	cleanup_path = tmp;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = unlink_and_reraise;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(cleanup_signals) / sizeof(cleanup_signals[0]); i++) {
		sigaction(cleanup_signals[i], NULL, &cleanup_old[i]);
		if (cleanup_old[i].sa_handler != SIG_IGN)
			sigaction(cleanup_signals[i], &sa, NULL);
	}
}

static void unguard_temp_file(void)
{
	sigset_t old;
	block_cleanup_signals(&old);
	if (cleanup_path) {
		for (size_t i = 0; i < sizeof(cleanup_signals) / sizeof(cleanup_signals[0]); i++)
			sigaction(cleanup_signals[i], &cleanup_old[i], NULL);
		cleanup_path = NULL;
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
}

/* Write the layout to @path atomically: temp file in the same directory, fsync, rename. */
static int write_file_atomically(view_layout *l, ckpt_snapshot *snap, const char *what,
                                 const char *path)
{
	char *dcopy = strdup(path), *bcopy = strdup(path), *tmp = NULL;
	int rc = 0, fd = -1, dfd = -1;
	if (!dcopy || !bcopy) {
		cli_error("export: out of memory");
		rc = -ENOMEM;
		goto out;
	}
	const char *dir = dirname(dcopy), *base = basename(bcopy);
	if (asprintf(&tmp, "%s/.%s.tmp.XXXXXX", dir, base) < 0) {
		tmp = NULL;
		cli_error("export: out of memory");
		rc = -ENOMEM;
		goto out;
	}
	sigset_t oldmask;
	block_cleanup_signals(&oldmask);
	fd = mkstemp(tmp);
	if (fd < 0) {
		rc = -errno;
		sigprocmask(SIG_SETMASK, &oldmask, NULL);
		cli_error("export: cannot create a file in '%s' for '%s' (%s)", dir, path,
		          strerror(-rc));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	guard_temp_file(tmp);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	/* a new file gets 0666 less the umask, as open(2) would give it; a file being replaced
	 * keeps its permission bits, as when cp or torch.save overwrite it */
	mode_t mask = umask(0);
	umask(mask);
	mode_t mode = 0666 & ~mask;
	struct stat old_st;
	if (stat(path, &old_st) == 0 && S_ISREG(old_st.st_mode))
		mode = old_st.st_mode & 07777;
	if (fchmod(fd, mode) != 0) {
		rc = -errno;
		cli_error("export: chmod of '%s' failed (%s)", tmp, strerror(-rc));
		goto out;
	}
	rc = copy_layout(l, snap, fd, what, path);
	if (rc)
		goto out;
	if (fsync(fd) != 0) {
		rc = -errno;
		cli_error("export: fsync of '%s' failed (%s)", path, strerror(-rc));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = -errno;
		report_write_error(path, rc);
		goto out;
	}
	fd = -1;
	block_cleanup_signals(&oldmask);
	if (rename(tmp, path) != 0) {
		rc = -errno;
		sigprocmask(SIG_SETMASK, &oldmask, NULL);
		cli_error("export: cannot rename into '%s' (%s)", path, strerror(-rc));
		goto out;
	}
	unguard_temp_file();
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	free(tmp);
	tmp = NULL; /* renamed: nothing to clean up */
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (dfd < 0 || fsync(dfd) != 0) {
		rc = -errno;
		cli_error("export: fsync of directory '%s' failed (%s)", dir, strerror(-rc));
	}
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (tmp) {
		unlink(tmp);
		unguard_temp_file();
		free(tmp);
	}
	free(dcopy);
	free(bcopy);
	return rc;
}

/* Where a chain of symlinks starting at @p path ends, as a path (malloc'd into *out): the first
 * name that is not a symlink, existing or not, so that a dangling link gets its target created,
 * as `cp` and a shell's `>` do. A relative link target is taken from the link's directory.
 * @return 0, -ELOOP (more than 40 links), -ENOMEM, or the errno of lstat/readlink. */
static int link_target(char **out, const char *path)
{
	char *cur = strdup(path);
	if (!cur)
		return -ENOMEM;
	for (int hops = 0; hops <= 40; hops++) {
		struct stat st;
		if (lstat(cur, &st) != 0) {
			if (errno == ENOENT) {
				*out = cur;
				return 0;
			}
			int rc = -errno;
			free(cur);
			return rc;
		}
		if (!S_ISLNK(st.st_mode)) {
			*out = cur;
			return 0;
		}
		char target[PATH_MAX];
		ssize_t n = readlink(cur, target, sizeof(target) - 1);
		if (n < 0) {
			int rc = -errno;
			free(cur);
			return rc;
		}
		target[n] = '\0';
		char *next;
		const char *slash = strrchr(cur, '/');
		if (target[0] == '/' || !slash)
			next = strdup(target);
		else if (asprintf(&next, "%.*s/%s", (int)(slash - cur), cur, target) < 0)
			next = NULL;
		free(cur);
		if (!next)
			return -ENOMEM;
		cur = next;
	}
	free(cur);
	return -ELOOP;
}

/* Write the layout to @path as cp and torch.save would: an existing device or FIFO
 * (/dev/null, a named pipe) is written into, never renamed over (that would replace the device
 * node); a symlink keeps pointing where it did and its target is replaced atomically; a
 * directory is refused. Anything else goes through write_file_atomically(). */
/* @p path names a standard stream that was closed (-o /dev/stdout >&-): it holds /dev/null
 * now, and writing there would throw the export away and report success. */
static bool names_closed_stream(const char *path)
{
	struct stat out_st, st;
	if (stat(path, &out_st) != 0)
		return false;
	for (int fd = 0; fd <= 2; fd++)
		if (ckpt_std_fd_was_closed(fd) && fstat(fd, &st) == 0 && st.st_dev == out_st.st_dev &&
		    st.st_ino == out_st.st_ino && S_ISCHR(st.st_mode))
			return true;
	return false;
}

static int export_to_path(view_layout *l, ckpt_snapshot *snap, const char *what,
                          const char *path, const char *store_path)
{
	struct stat st;
	if (cli_refuse_store_file("export", store_path, path, path))
		return -EEXIST;
	if (names_closed_stream(path)) {
		report_write_error(path, -EBADF);
		return -EBADF;
	}
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		cli_error("export: '%s' is a directory (give a file name)", path);
		return -EISDIR;
	}
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0) {
			int rc = -errno;
			cli_error("export: cannot open '%s' for writing (%s)", path, strerror(-rc));
			return rc;
		}
		int rc = copy_layout(l, snap, fd, what, path);
		if (close(fd) != 0 && !rc) {
			rc = -errno;
			report_write_error(path, rc);
		}
		return rc;
	}
	if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
		char *real;
		int rc = link_target(&real, path);
		if (rc) {
			cli_error("export: cannot follow the symlink '%s' (%s)", path, strerror(-rc));
			return rc;
		}
		if (cli_refuse_store_file("export", store_path, real, path)) {
			free(real);
			return -EEXIST;
		}
		rc = write_file_atomically(l, snap, what, real);
		free(real);
		return rc;
	}
	return write_file_atomically(l, snap, what, path);
}

int cli_export(int argc, char **argv)
{
	static const struct option options[] = {
	    {"format", required_argument, NULL, 'f'},
	    {"output", required_argument, NULL, 'o'},
	    {"map-location", required_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	enum export_format format = FORMAT_NONE;
	const char *output = NULL;
	view_render_options opts;
	memset(&opts, 0, sizeof(opts));
	int c;
	opterr = 0; /* unknown options are reported below, as one error line */
	while ((c = getopt_long(argc, argv, ":f:o:m:h", options, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (strcmp(optarg, "safetensors") == 0) {
				format = FORMAT_SAFETENSORS;
			} else if (strcmp(optarg, "pt") == 0) {
				format = FORMAT_PT;
			} else if (strcmp(optarg, "checkpoint") == 0) {
				format = FORMAT_CHECKPOINT;
			} else {
				cli_error("export: unknown --format '%s' (use safetensors, pt or "
				          "checkpoint)",
				          optarg);
				return 2;
			}
			break;
		case 'o':
			output = optarg;
			break;
		case 'm':
			if (render_parse_map_location(&opts, optarg) != 0) {
				cli_error("export: bad --map-location '%s' (use cpu, keep, cuda or cuda:N, N 0-127)",
				          optarg);
				return 2;
			}
			break;
		case 'h': export_usage(); return 0;
		default: return cli_bad_option(c, argv, options, CLI_USAGE_EXPORT);
		}
	}
	if (cli_check_arg_count(argv, argc - optind, 2, 2, CLI_USAGE_EXPORT))
		return 2;
	if (format == FORMAT_NONE) {
		cli_error("export: --format is missing (safetensors, pt or checkpoint; usage: "
		          "ckpt " CLI_USAGE_EXPORT ")");
		return 2;
	}
	if (!output || !output[0]) {
		cli_error("export: %s (give a file, or - for stdout; usage: ckpt " CLI_USAGE_EXPORT
		          ")",
		          output ? "-o is an empty file name" : "-o FILE is missing");
		return 2;
	}
	const char *store_path = cli_trim_store_path(argv[optind]), *spec = argv[optind + 1];
	if (strcmp(output, "-") != 0 && cli_refuse_store_file("export", store_path, output, output))
		return 1;
	const char *what = format == FORMAT_SAFETENSORS ? "model.safetensors" :
	                   format == FORMAT_PT          ? "model.pt" :
	                                                  "checkpoint.pt";

	int status = 1, rc;
	ckpt_store *store = NULL;
	ckpt_snapshot *snap = NULL;
	view_layout layout;
	view_layout_init(&layout);
	rc = ckpt_store_open(&store, store_path, CKPT_OPEN_READONLY);
	if (rc) {
		cli_error("cannot open store '%s' (%s)", store_path,
		          ckpt_last_error()[0] ? ckpt_last_error() : ckpt_strerror(rc));
		goto out;
	}
	rc = ckpt_snapshot_open(&snap, store);
	if (rc) {
		cli_error("export: cannot read store '%s' (%s)", store_path,
		          ckpt_last_error()[0] ? ckpt_last_error() : ckpt_strerror(rc));
		goto out;
	}
	uint64_t epoch;
	if ((status = cli_find_epoch(&epoch, snap, "export", store_path, spec)))
		goto out;
	status = 1;
	const ckpt_checkpoint *ck;
	rc = ckpt_snapshot_checkpoint(&ck, snap, epoch);
	if (rc) {
		cli_error("export: epoch %" PRIu64 " of '%s' (%s)", epoch, store_path,
		          ckpt_last_error()[0] ? ckpt_last_error() : ckpt_strerror(rc));
		goto out;
	}
	if (format == FORMAT_SAFETENSORS)
		rc = render_safetensors(&layout, store, ck);
	else if (format == FORMAT_PT)
		rc = render_model_pt(&layout, store, ck, &opts);
	else
		rc = render_checkpoint_pt(&layout, store, ck, &opts);
	if (rc) {
		cli_error("export: cannot render %s of '%s' (%s)", what, store_path,
		          render_last_error()[0] ? render_last_error() : ckpt_strerror(rc));
		goto out;
	}
	char label[64];
	snprintf(label, sizeof(label), "epoch %" PRIu64 " %s", epoch, what);
	if (strcmp(output, "-") == 0 && cli_refuse_store_file("export", store_path, "/proc/self/fd/1", "stdout"))
		rc = -EEXIST; /* -o - >> STORE/data.mdb */
	else if (strcmp(output, "-") == 0)
		rc = copy_layout(&layout, snap, STDOUT_FILENO, label, "stdout");
	else
		rc = export_to_path(&layout, snap, label, output, store_path);
	if (!rc)
		status = 0;
out:
	view_layout_free(&layout);
	ckpt_snapshot_close(snap);
	ckpt_store_close(store);
	return status;
}
