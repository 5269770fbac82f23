/* tests/bench/fuse_ceiling.c - the FUSE ceiling: a minimal low-level server serving one file
 * from memory with the settings ckptfs uses (no splice, keep_cache, long timeouts, zero-copy
 * replies, readahead raised after mounting), so the benchmark can say how close ckptfs gets.
 *
 * usage: fuse_ceiling MOUNTPOINT SIZE_BYTES [-f] [-o opts]   serve MOUNTPOINT/data
 *        fuse_ceiling --memcpy SIZE_BYTES                     print memcpy GB/s of SIZE
 * Built by tests/bench/bench_mount.sh into build/bench/.
 */
#define FUSE_USE_VERSION 312
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char *data;
static size_t data_size;
static char mount_path[4096];

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fill_stat(struct stat *st, fuse_ino_t ino)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == 1) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)data_size;
		st->st_blocks = (blkcnt_t)((data_size + 511) / 512);
	}
}

static void tune_readahead(const char *mnt);

/* after INIT (whose reply caps readahead at the kernel's offer), as ckptfs does */
static void *readahead_thread(void *arg)
{
	struct timespec pause = {0, 100 * 1000 * 1000};
	nanosleep(&pause, NULL);
	tune_readahead(mount_path);
	return NULL;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	pthread_t tid;
	if (mount_path[0] && pthread_create(&tid, NULL, readahead_thread, NULL) == 0)
		pthread_detach(tid);
	conn->want &=
	    ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (parent != 1 || strcmp(name, "data") != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = 2;
	e.attr_timeout = e.entry_timeout = 300;
	fill_stat(&e.attr, 2);
	fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	fill_stat(&st, ino);
	fuse_reply_attr(req, &st, 300);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	if ((size_t)off >= data_size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > data_size - (size_t)off)
		size = data_size - (size_t)off;
	fuse_reply_buf(req, data + off, size);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
	char buf[512];
	size_t used = 0;
	struct stat st;
	const char *names[] = {".", "..", "data"};
	for (off_t i = off; i < 3; i++) {
		fill_stat(&st, i == 2 ? 2 : 1);
		size_t n =
		    fuse_add_direntry(req, buf + used, sizeof(buf) - used, names[i], &st, i + 1);
		if (n > sizeof(buf) - used || n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .getattr = op_getattr,
    .open = op_open,
    .read = op_read,
    .readdir = op_readdir,
};

static void tune_readahead(const char *mnt)
{
	/* the same 1 MiB readahead ckptfs sets, through the mount's bdi */
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096], majmin[64] = "";
	while (f && fgets(line, sizeof(line), f)) {
		char mm[64], point[2048];
		if (sscanf(line, "%*s %*s %63s %*s %2047s", mm, point) == 2 &&
		    strcmp(point, mnt) == 0)
			snprintf(majmin, sizeof(majmin), "%s", mm);
	}
	if (f)
		fclose(f);
	char path[128];
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", majmin);
	int fd = majmin[0] ? open(path, O_WRONLY) : -1;
	if (fd >= 0) {
		if (write(fd, "1024", 4) != 4)
			perror(path);
		close(fd);
	}
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--memcpy") == 0) {
		size_t n = strtoull(argv[2], NULL, 10);
		char *a = malloc(n), *b = malloc(n);
		if (!a || !b)
			return 1;
		memset(a, 1, n);
		memset(b, 2, n); /* fault both in first */
		double t0 = now();
		memcpy(b, a, n);
		double t = now() - t0;
		printf("%.3f\n", (double)n / t / 1e9);
		return b[n / 2] == 1 ? 0 : 1;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: fuse_ceiling MOUNTPOINT SIZE_BYTES [-f] [-o opts]\n");
		return 2;
	}
	data_size = strtoull(argv[2], NULL, 10);
	data = malloc(data_size ? data_size : 1);
	if (!data)
		return 1;
	for (size_t i = 0; i < data_size; i++)
		data[i] = (char)(i * 131);
	/* argv without SIZE for libfuse */
	char *fargv[16];
	int fargc = 0;
	fargv[fargc++] = argv[0];
	for (int i = 1; i < argc && fargc < 15; i++)
		if (i != 2)
			fargv[fargc++] = argv[i];
	struct fuse_args args = FUSE_ARGS_INIT(fargc, fargv);
	struct fuse_cmdline_opts opts;
	if (fuse_parse_cmdline(&args, &opts) != 0 || !opts.mountpoint)
		return 2;
	struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!se || fuse_set_signal_handlers(se) != 0 ||
	    fuse_session_mount(se, opts.mountpoint) != 0)
		return 1;
	if (!realpath(opts.mountpoint, mount_path))
		mount_path[0] = '\0';
	fuse_daemonize(opts.foreground);
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	int rc = fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	fuse_session_unmount(se);
	fuse_remove_signal_handlers(se);
	fuse_session_destroy(se);
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	free(data);
	return rc < 0 ? 1 : 0;
}
