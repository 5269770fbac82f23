/* tests/unit/check_store_ops.c - Check suite for libckpt under operating conditions: readers
 * that die, space that gc frees, file size limits
 *
 * Each test works in a fresh mkdtemp directory that it removes; no_sync stands wherever
 * durability is not under test. A second process on the store is a fork that opens its own
 * handle (one handle per store per process: a second open is refused).
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckpt/holders.h"
#include "ckpt/message.h"
#include "ckpt/store.h"
#include "test_dir.h"

/* one float32 tensor of this many elements per checkpoint: 64 KiB */
#define TENSOR_FLOATS 16384
#define TENSOR_BYTES (TENSOR_FLOATS * sizeof(float))

static char tmpdir[256];
static char storepath[512];

static void setup(void)
{
	test_store_dir_make(tmpdir, sizeof(tmpdir), storepath, sizeof(storepath), "check_store_ops");
}

static void teardown(void)
{
	test_dir_remove(tmpdir);
}

static ckpt_store *make_store(uint32_t keep_last)
{
	return test_store_create(storepath, keep_last);
}

/* commit @p epoch holding one tensor whose bytes differ from every other epoch's (no dedup) */
static int try_commit(ckpt_store *s, uint64_t epoch)
{
	static float w[TENSOR_FLOATS];
	for (size_t i = 0; i < TENSOR_FLOATS; i++)
		w[i] = (float)(epoch * TENSOR_FLOATS + i);
	uint64_t shape[1] = {TENSOR_FLOATS};
	ckpt_writer *wr;
	int rc = ckpt_writer_begin(&wr, s, epoch);
	if (rc)
		return rc;
	rc = ckpt_writer_put_tensor(wr, "w", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 1, shape, "cpu",
	                            w, TENSOR_BYTES);
	if (rc) {
		ckpt_writer_abort(wr);
		return rc;
	}
	return ckpt_writer_commit(wr);
}

static off_t data_file_size(void)
{
	char data[700];
	struct stat st;
	snprintf(data, sizeof(data), "%s/data.mdb", storepath);
	ck_assert_int_eq(stat(data, &st), 0);
	return st.st_size;
}

/* Fork a process that opens the store read-only and @p nsnapshots snapshots of it (as many as
 * it can for 0) and keeps them open until the write end of its pipe, *@p release_fd, closes;
 * returns when they are open. */
static pid_t start_a_reader(unsigned nsnapshots, int *release_fd)
{
	int ready[2], release[2];
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(release), 0);
	pid_t pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		ckpt_store *rs;
		ckpt_snapshot *snap;
		unsigned opened = 0;
		char c = 1;
		close(release[1]);
		if (ckpt_store_open(&rs, storepath, CKPT_OPEN_READONLY))
			_exit(3);
		while ((nsnapshots == 0 || opened < nsnapshots) && ckpt_snapshot_open(&snap, rs) == 0)
			opened++;
		if (!opened || write(ready[1], &c, 1) != 1)
			_exit(4);
		if (read(release[0], &c, 1) < 0)
			_exit(5);
		_exit(0); /* the snapshots and the handle end with the process */
	}
	close(release[0]);
	close(ready[1]);
	char c;
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	close(ready[0]);
	*release_fd = release[1];
	return pid;
}

/* start_a_reader(), then SIGKILL it: its reader slots stay behind in lock.mdb. */
static void kill_a_reader_with_snapshots_open(unsigned nsnapshots)
{
	int release;
	pid_t pid = start_a_reader(nsnapshots, &release);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	close(release);
}

START_TEST(test_a_reader_killed_with_a_snapshot_open_does_not_stop_page_reuse)
{
	ckpt_store *s = make_store(2);
	OK(try_commit(s, 1));
	OK(try_commit(s, 2));
	kill_a_reader_with_snapshots_open(1);
	off_t before = data_file_size();
	for (uint64_t e = 3; e <= 42; e++)
		OK(try_commit(s, e));
	/* keep-last 2: two kept, one being written, one freed by the commit before: a dead reader's
	 * snapshot pinning every freed page made this 40 checkpoints more */
	off_t after = data_file_size();
	ck_assert_msg(after <= before + 6 * (off_t)TENSOR_BYTES,
	              "data.mdb grew from %lld to %lld bytes", (long long)before, (long long)after);
	ckpt_store_close(s);
}
END_TEST

START_TEST(test_reader_slots_of_killed_processes_are_reused)
{
	ckpt_store *s = make_store(0);
	OK(try_commit(s, 1));
	kill_a_reader_with_snapshots_open(0); /* every slot of lock.mdb's table */
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	ckpt_snapshot_close(snap);
	ckpt_store_close(s); /* one handle per store per process */
	ckpt_store *ro;
	OK(ckpt_store_open(&ro, storepath, CKPT_OPEN_READONLY));
	ckpt_store_close(ro);
}
END_TEST

/* LMDB reuses a page freed by transaction T from T+2 on: a commit right after the gc's own
 * transaction found none of the pages gc freed, and on a full disk failed with ENOSPC */
START_TEST(test_pages_freed_by_gc_are_reused_by_the_next_commit)
{
	ckpt_store *s = make_store(0);
	for (uint64_t e = 1; e <= 6; e++)
		OK(try_commit(s, e));
	uint32_t deleted;
	OK(ckpt_store_gc(s, 2, 0, &deleted));
	ck_assert_uint_eq(deleted, 4);
	off_t before = data_file_size();
	OK(try_commit(s, 7));
	off_t after = data_file_size();
	ck_assert_msg(after == before, "data.mdb grew from %lld to %lld bytes after gc freed 4 checkpoints",
	              (long long)before, (long long)after);
	ckpt_store_close(s);
}
END_TEST

static void set_file_size_limit(rlim_t limit)
{
	struct rlimit rl;
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
	rl.rlim_cur = limit;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

static void ck_file_too_large(int rc, rlim_t limit)
{
	char want[128];
	snprintf(want, sizeof(want), "file too large: the file size limit (ulimit -f) is %llu bytes",
	         (unsigned long long)limit);
	ck_assert_msg(rc == -EFBIG && strstr(ckpt_last_error(), want), "%d (%s)", rc,
	              ckpt_last_error());
}

/* under a file size limit smaller than the store (SIGXFSZ ignored: writes past it fail with
 * EFBIG or are cut short), commits and creates said "no space left on device" */
START_TEST(test_writes_past_the_file_size_limit_say_file_too_large)
{
	signal(SIGXFSZ, SIG_IGN);
	struct rlimit unlimited;
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &unlimited), 0);
	ckpt_store *s = make_store(0);
	OK(try_commit(s, 1));
	/* at the end of data.mdb, and inside the pages of the next checkpoint */
	rlim_t limits[2] = {(rlim_t)data_file_size(), (rlim_t)data_file_size() + TENSOR_BYTES / 2};
	for (int i = 0; i < 2; i++) {
		set_file_size_limit(limits[i]);
		ck_file_too_large(try_commit(s, 2), limits[i]);
	}
	set_file_size_limit(unlimited.rlim_cur);
	OK(try_commit(s, 2)); /* nothing of the failed commits is in the way */
	ckpt_store_close(s);

	char other[600];
	snprintf(other, sizeof(other), "%s/other", tmpdir);
	ckpt_run_meta m = {.model = "mlp", .monitor = "val_loss"};
	set_file_size_limit(4096);
	ck_file_too_large(ckpt_store_create(&s, other, &m, NULL), 4096);
	set_file_size_limit(unlimited.rlim_cur);
	ck_assert_int_eq(access(other, F_OK), -1); /* a failed create leaves nothing */
}
END_TEST

/* LMDB's locks belong to the process: a second handle of a store in the same process would
 * reset the reader table, and commits through the first would reuse its snapshot's pages. */
START_TEST(test_a_second_handle_in_one_process_is_refused_and_snapshots_stay_valid)
{
	ckpt_store *s = make_store(1);
	OK(try_commit(s, 1));
	ckpt_snapshot *snap;
	const ckpt_checkpoint *c;
	OK(ckpt_snapshot_open(&snap, s));
	OK(ckpt_snapshot_checkpoint(&c, snap, 1));
	const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(c, 0);
	ck_assert_ptr_nonnull(t);
	unsigned flags[2] = {CKPT_OPEN_READONLY, 0};
	for (size_t i = 0; i < 2; i++) {
		ckpt_store *second = NULL;
		ck_assert_int_eq(ckpt_store_open(&second, storepath, flags[i]), -EBUSY);
		ck_assert_ptr_null(second);
		ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "already open in this process"));
	}
	ckpt_run_meta m = {.model = "mlp", .monitor = "val_loss"};
	ckpt_store *created = NULL;
	ck_assert_int_eq(ckpt_store_create(&created, storepath, &m, NULL), -EBUSY);
	for (uint64_t e = 2; e <= 10; e++)
		OK(try_commit(s, e));
	OK(ckpt_tensor_verify(snap, t));
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	/* closing gives the store back: it opens again */
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	ckpt_store_close(s);
}
END_TEST

/* ckpt gc --keep-last N persists the setting: a handle opened before it applies it at its next
 * commit and reports it */
START_TEST(test_retention_persisted_by_another_process_applies_to_open_writers)
{
	ckpt_store *s = make_store(0);
	for (uint64_t e = 1; e <= 3; e++)
		OK(try_commit(s, e));
	pid_t pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		ckpt_store *gs;
		uint32_t deleted;
		if (ckpt_store_open(&gs, storepath, 0) || ckpt_store_gc(gs, 2, 0, &deleted) ||
		    deleted != 1)
			_exit(3);
		ckpt_store_close(gs);
		_exit(0);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	uint32_t keep_last = 0, keep_top = 7;
	ckpt_store_retention(s, &keep_last, &keep_top);
	ck_assert_uint_eq(keep_last, 2);
	ck_assert_uint_eq(keep_top, 0);
	OK(try_commit(s, 4));
	OK(try_commit(s, 5));
	ckpt_snapshot *snap;
	uint64_t *epochs;
	size_t n;
	OK(ckpt_snapshot_open(&snap, s));
	OK(ckpt_snapshot_list(&epochs, &n, snap));
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(epochs[0], 4);
	ck_assert_uint_eq(epochs[1], 5);
	free(epochs);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}
END_TEST

/* start_a_reader() of one snapshot without lock.mdb: it holds a shared flock on data.mdb. */
static pid_t start_a_lockless_reader(int *release_fd)
{
	char lock[600];
	snprintf(lock, sizeof(lock), "%s/lock.mdb", storepath);
	ck_assert_int_eq(unlink(lock), 0);
	return start_a_reader(1, release_fd);
}

static void end_reader(pid_t pid, int release_fd)
{
	int status;
	close(release_fd);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A reader without lock.mdb is invisible to LMDB: a library writer must not open or commit
 * under it (ckpt-train and ckpt gc are refused likewise), and a refused open leaves no
 * lock.mdb behind. */
START_TEST(test_writers_are_refused_while_a_reader_without_lock_file_reads)
{
	ckpt_store *s = make_store(1);
	OK(try_commit(s, 1));
	int release;
	pid_t reader = start_a_lockless_reader(&release);
	/* this handle's lock.mdb is gone from the directory: the reader cannot be seen by LMDB */
	ck_assert_int_eq(try_commit(s, 2), -EBUSY);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "pid"));
	uint32_t deleted;
	ck_assert_int_eq(ckpt_store_gc(s, 1, 0, &deleted), -EBUSY);
	ckpt_store_close(s);
	ck_assert_int_eq(ckpt_store_open(&s, storepath, 0), -EBUSY);
	char want[64];
	snprintf(want, sizeof(want), "pid %ld", (long)reader);
	ck_assert_msg(strstr(ckpt_last_error(), want) != NULL, "%s", ckpt_last_error());
	char lock[600];
	snprintf(lock, sizeof(lock), "%s/lock.mdb", storepath);
	ck_assert_int_eq(access(lock, F_OK), -1);
	end_reader(reader, release);
	OK(ckpt_store_open(&s, storepath, 0));
	OK(try_commit(s, 2));
	ckpt_store_close(s);
}
END_TEST

/* the mount names an epoch in 39 bits of an inode number: a larger one would vanish there */
START_TEST(test_epochs_above_the_highest_are_refused)
{
	ckpt_store *s = make_store(0);
	ckpt_writer *w = NULL;
	ck_assert_int_eq(ckpt_writer_begin(&w, s, CKPT_MAX_EPOCH + 1), -EINVAL);
	ck_assert_ptr_null(w);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "549755813888"));
	ck_assert_int_eq(ckpt_writer_begin(&w, s, UINT64_MAX), -EINVAL);
	OK(try_commit(s, CKPT_MAX_EPOCH));
	ckpt_store_close(s);
}
END_TEST

/* metrics.json, run.json and the pickles carry these strings: they must be UTF-8 */
START_TEST(test_names_and_run_metadata_that_are_not_utf8_are_refused)
{
	static const char *const bad[] = {"\xff", "a\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80",
	                                  "\xe2\x82"};
	const char *fields[] = {"model", "layers", "optimizer", "hyperparams", "dataset", "monitor"};
	for (size_t f = 0; f < 6; f++) {
		ckpt_run_meta m = {.model = "mlp", .monitor = "val_loss"};
		const char **field[] = {&m.model, &m.layers, &m.optimizer, &m.hyperparams, &m.dataset,
		                        &m.monitor};
		*field[f] = bad[f % 5];
		ckpt_store *s = NULL;
		ck_assert_int_eq(ckpt_store_create(&s, storepath, &m, NULL), -EINVAL);
		char want[64];
		snprintf(want, sizeof(want), "%s is not valid UTF-8", fields[f]);
		ck_assert_msg(strstr(ckpt_last_error(), want) != NULL, "%s", ckpt_last_error());
		ck_assert_int_eq(access(storepath, F_OK), -1);
	}
	ckpt_store *s = make_store(0);
	ckpt_writer *w;
	OK(ckpt_writer_begin(&w, s, 1));
	for (size_t i = 0; i < 5; i++) {
		ck_assert_int_eq(ckpt_writer_set_metric(w, bad[i], 1.0), -EINVAL);
		ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "metric name is not valid UTF-8"));
		ck_assert_int_eq(ckpt_writer_set_extra(w, bad[i], "x", 1), -EINVAL);
		ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "extra key is not valid UTF-8"));
	}
	OK(ckpt_writer_set_metric(w, "\xce\xbb_loss \xf0\x9f\x98\x80", 1.0));
	OK(ckpt_writer_set_extra(w, "\xe2\x82\xac", "x", 1));
	OK(ckpt_writer_commit(w));
	ckpt_store_close(s);
}
END_TEST

/* each refusal says what is wrong with the input, with the epoch */
START_TEST(test_bad_tensor_input_messages_name_the_problem)
{
	ckpt_store *s = make_store(0);
	ckpt_writer *w;
	float x[2] = {1, 2};
	OK(ckpt_writer_begin(&w, s, 7));
	ck_assert_int_eq(ckpt_writer_put_tensor(w, "t", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 1,
	                                        NULL, "cpu", x, sizeof(x)),
	                 -EINVAL);
	ck_assert_msg(strstr(ckpt_last_error(), "no shape") != NULL, "%s", ckpt_last_error());
	const uint64_t huge[3] = {0, 1ull << 63, 1ull << 63};
	ck_assert_int_eq(ckpt_writer_put_tensor(w, "t", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 3,
	                                        huge, "cpu", NULL, 0),
	                 -EINVAL);
	ck_assert_msg(strstr(ckpt_last_error(), "shape overflows") != NULL, "%s",
	              ckpt_last_error());
	ck_assert_int_eq(ckpt_writer_set_extra(w, "k", NULL, 5), -EINVAL);
	ck_assert_msg(strstr(ckpt_last_error(), "epoch 7: extra k: no data") != NULL, "%s",
	              ckpt_last_error());
	const uint64_t two[1] = {2};
	ck_assert_int_eq(ckpt_writer_put_tensor(w, "t", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 1,
	                                        two, "cuda:01", x, sizeof(x)),
	                 -EINVAL);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "without leading zeros"));
	const char *good[] = {"cuda:0", "cuda:10", "cuda:999", "cuda", "cpu", NULL};
	for (size_t i = 0; i < 5; i++)
		OK(ckpt_writer_put_tensor(w, good[i], CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 1, two,
		                          good[i], x, sizeof(x)));
	ckpt_writer_abort(w);
	ckpt_store_close(s);
}
END_TEST

/* a wrong call order must not end the host process: the store closes with its last snapshot */
START_TEST(test_a_store_closed_with_a_snapshot_open_closes_with_the_snapshot)
{
	ckpt_store *s = make_store(0);
	OK(try_commit(s, 1));
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	ckpt_store_close(s); /* it aborted the process (an assert) */
	uint64_t *epochs;
	size_t n;
	OK(ckpt_snapshot_list(&epochs, &n, snap));
	ck_assert_uint_eq(n, 1);
	free(epochs);
	ckpt_snapshot_close(snap); /* closes the store: LeakSanitizer finds nothing left */
	OK(ckpt_store_open(&s, storepath, 0)); /* no handle of it is left open */
	ckpt_store_close(s);
	ckpt_gc_unlock(NULL); /* every release function accepts NULL */
	/* NULL handles and unknown flags: -EINVAL, never a crash or a silently other mode */
	ck_assert_int_eq(ckpt_store_open(NULL, storepath, 0), -EINVAL);
	ck_assert_int_eq(ckpt_store_open(&s, storepath, 0x10), -EINVAL);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "unknown open flags 0x10"));
	ckpt_writer *w;
	ck_assert_int_eq(ckpt_writer_begin(&w, NULL, 1), -EINVAL);
	ck_assert_int_eq(ckpt_writer_commit(NULL), -EINVAL);
	ck_assert_int_eq(ckpt_snapshot_open(&snap, NULL), -EINVAL);
	uint64_t u, *list;
	size_t nlist;
	const ckpt_checkpoint *c;
	const ckpt_tensor_info *t;
	double v;
	ck_assert_int_eq(ckpt_snapshot_latest(&u, NULL), -EINVAL);
	ck_assert_int_eq(ckpt_snapshot_list(&list, &nlist, NULL), -EINVAL);
	ck_assert_int_eq(ckpt_snapshot_checkpoint(&c, NULL, 1), -EINVAL);
	ck_assert_int_eq(ckpt_checkpoint_metric(NULL, "val_loss", &v), -EINVAL);
	ck_assert_int_eq(ckpt_checkpoint_find_tensor(&t, NULL, CKPT_GROUP_MODEL, "w"), -EINVAL);
	ck_assert_int_eq(ckpt_tensor_verify(NULL, NULL), -EINVAL);
	ck_assert_int_eq(ckpt_store_gc(NULL, 1, 0, NULL), -EINVAL);
	ck_assert_int_eq(ckpt_writer_set_metric(NULL, "val_loss", 1.0), -EINVAL);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "w is NULL"));
	ck_assert_ptr_null(ckpt_store_meta(NULL));
	ck_assert_uint_eq(ckpt_checkpoint_tensor_count(NULL), 0);
	ckpt_writer_set_step(NULL, 1);
	ck_assert_int_eq(ckpt_dtype_from_name(NULL, "float32"), -EINVAL);
	ck_assert(!ckpt_utf8_valid(NULL));
	ck_assert_int_eq(ckpt_gc_lock(NULL, storepath, NULL, 0), -EINVAL);
	ck_assert_int_eq(ckpt_writer_lock(storepath, NULL, NULL, 0), -EINVAL);
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	char dest[600];
	snprintf(dest, sizeof(dest), "%s/backup", tmpdir);
	ck_assert_int_eq(ckpt_store_backup(NULL, s, dest, 0x10), -EINVAL);
	ckpt_store_close(s);
}
END_TEST

/* a failed lookup says what was missing, never a message of an earlier error */
START_TEST(test_failed_lookups_set_their_own_message)
{
	ckpt_store *s = make_store(0);
	OK(try_commit(s, 1));
	ckpt_store *other;
	ck_assert_int_eq(ckpt_store_open(&other, "/nonexistent/store", 0), -ENOENT);
	ckpt_snapshot *snap;
	const ckpt_checkpoint *c;
	const ckpt_tensor_info *t;
	OK(ckpt_snapshot_open(&snap, s));
	OK(ckpt_snapshot_checkpoint(&c, snap, 1));
	ck_assert_int_eq(ckpt_checkpoint_find_tensor(&t, c, CKPT_GROUP_OPTIMIZER, "w"), -ENOENT);
	ck_assert_str_eq(ckpt_last_error(), "epoch 1: no optimizer tensor 'w'");
	double v;
	ck_assert_int_eq(ckpt_checkpoint_metric(c, "val_acc", &v), -ENOENT);
	ck_assert_str_eq(ckpt_last_error(), "epoch 1: no metric 'val_acc'");
	ck_assert_int_eq(ckpt_checkpoint_metric_at(c, 5, NULL, &v), -ERANGE);
	ck_assert_str_eq(ckpt_last_error(), "epoch 1: metric 5 of 0");
	const void *data;
	size_t len;
	ck_assert_int_eq(ckpt_checkpoint_extra(c, "rng", &data, &len), -ENOENT);
	ck_assert_str_eq(ckpt_last_error(), "epoch 1: no extra 'rng'");
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	ckpt_dtype d;
	ck_assert_int_eq(ckpt_dtype_from_name(&d, "float"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "'float' is not a dtype name"));
	uint64_t n, big[2] = {UINT64_C(1) << 40, UINT64_C(1) << 40};
	ck_assert_int_eq(ckpt_shape_numel(&n, 2, big), -EOVERFLOW);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "overflows"));
	ck_assert_int_eq(ckpt_shape_numel(&n, 2, NULL), -EINVAL);
}
END_TEST

/* settings no checkpoint could ever satisfy are refused when the store is made */
START_TEST(test_create_refuses_a_monitor_no_metric_can_name_and_keep_top_without_keep_last)
{
	static char mon[301];
	memset(mon, 'm', 300);
	ckpt_run_meta m = {.model = "mlp", .monitor = mon};
	ckpt_store *s;
	ck_assert_int_eq(ckpt_store_create(&s, storepath, &m, NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "at most 255"));
	m.monitor = "val_loss";
	ckpt_store_options o = {.keep_top = 3};
	ck_assert_int_eq(ckpt_store_create(&s, storepath, &m, &o), -EINVAL);
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "no effect with keep_last 0"));
	ck_assert_int_eq(access(storepath, F_OK), -1); /* nothing made */
	o.keep_last = 2;
	OK(ckpt_store_create(&s, storepath, &m, &o));
	uint32_t deleted;
	ck_assert_int_eq(ckpt_store_gc(s, 0, 2, &deleted), -EINVAL); /* nor later */
	ck_assert_ptr_nonnull(strstr(ckpt_last_error(), "no effect with keep_last 0"));
	uint32_t kl, kt;
	ckpt_store_retention(s, &kl, &kt);
	ck_assert_uint_eq(kl, 2);
	ckpt_store_close(s);
}
END_TEST

/* Creates of one path racing in six processes: exactly one makes the store and commits, the
 * others get -EEXIST. Each create took the others' fresh environments for the remnants of a
 * killed create and removed them: several "succeeded" and their epochs were lost. */
/* ckpt_shell_word: a word to paste, whole within 4 * strlen + 4 bytes (a tab or two newlines
 * lost their last bytes there: $'' and $'\x0a'); cut short, never past the buffer. */
START_TEST(test_shell_words_are_whole_within_the_documented_buffer)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"plain/path-1.x", "plain/path-1.x"},
	    {"", "''"},
	    {"a b", "'a b'"},
	    {"it's", "'it'\\''s'"},
	    {"\t", "$'\\x09'"},
	    {"\n\n", "$'\\x0a\\x0a'"},
	    {"a'\x7f\\", "$'a\\'\\x7f\\\\'"},
	    {"''", "''\\'''\\'''"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = 4 * strlen(cases[i].in) + 4;
		char *buf = malloc(len);
		ck_assert_ptr_nonnull(buf);
		ck_assert_str_eq(ckpt_shell_word(buf, len, cases[i].in), cases[i].out);
		free(buf);
	}
	char small[6];
	ck_assert_str_eq(ckpt_shell_word(small, sizeof(small), "\t\t"), "$''");
	ck_assert_str_eq(ckpt_shell_word(small, 0, "a b"), "");
}
END_TEST

START_TEST(test_racing_creates_of_one_store_make_one_and_refuse_the_rest)
{
	for (int round = 0; round < 3; round++) {
		test_dir_remove(tmpdir);
		setup();
		int go[2];
		ck_assert_int_eq(pipe(go), 0);
		pid_t pids[6];
		for (int i = 0; i < 6; i++) {
			pids[i] = fork();
			ck_assert_int_ge(pids[i], 0);
			if (pids[i] == 0) {
				char c;
				close(go[1]);
				if (read(go[0], &c, 1) != 0) /* all start when the pipe closes */
					_exit(9);
				ckpt_run_meta m = {.model = "mlp", .monitor = "val_loss"};
				ckpt_store_options o = {.no_sync = true};
				ckpt_store *cs;
				int rc = ckpt_store_create(&cs, storepath, &m, &o);
				if (rc == -EEXIST)
					_exit(1);
				if (rc || try_commit(cs, (uint64_t)i + 1))
					_exit(2);
				ckpt_store_close(cs);
				_exit(0);
			}
		}
		close(go[0]);
		close(go[1]);
		int made = 0;
		for (int i = 0; i < 6; i++) {
			int status;
			ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
			ck_assert(WIFEXITED(status));
			ck_assert_msg(WEXITSTATUS(status) <= 1, "a racing create failed otherwise: %d",
			              WEXITSTATUS(status));
			made += WEXITSTATUS(status) == 0;
		}
		ck_assert_int_eq(made, 1);
		ckpt_store *s;
		ckpt_snapshot *snap;
		uint64_t *epochs;
		size_t n;
		OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
		OK(ckpt_snapshot_open(&snap, s));
		OK(ckpt_snapshot_list(&epochs, &n, snap));
		ck_assert_uint_eq(n, 1); /* the winner's epoch is there */
		free(epochs);
		ckpt_snapshot_close(snap);
		ckpt_store_close(s);
	}
}
END_TEST

/* A child after fork() that used its parent's handle took a reader slot under the parent's
 * pid, never freed while the parent trained: data.mdb grew by every commit. Its calls are
 * refused with -ECHILD naming the parent; its closes leave the parent's snapshot alone. */
START_TEST(test_a_forked_child_is_refused_the_parents_handle_and_leaves_it_intact)
{
	ckpt_store *s = make_store(1);
	OK(try_commit(s, 1));
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	const ckpt_checkpoint *c;
	OK(ckpt_snapshot_checkpoint(&c, snap, 1));
	const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(c, 0);
	ck_assert_ptr_nonnull(t);
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		char want[128];
		snprintf(want, sizeof(want), "the handle was opened by process %ld; open the store "
		         "again in this process", (long)getppid());
		ckpt_snapshot *mine;
		ckpt_writer *w;
		uint64_t generation;
		/* (a snapshot it got was never closed: its slot stayed, under the parent's pid) */
		bool ok = ckpt_snapshot_open(&mine, s) == -ECHILD && strstr(ckpt_last_error(), want);
		ok = ok && ckpt_writer_begin(&w, s, 2) == -ECHILD && strstr(ckpt_last_error(), want);
		ok = ok && ckpt_store_generation(&generation, s) == -ECHILD;
		ckpt_snapshot_close(snap); /* the parent's read transaction stays the parent's */
		ckpt_store_close(s);
		_exit(ok ? 0 : 1);
	}
	int status;
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child refused nothing");
	/* the parent's snapshot of epoch 1 still reads, though retention deleted it */
	for (uint64_t e = 2; e <= 10; e++)
		OK(try_commit(s, e));
	static float got[TENSOR_FLOATS];
	OK(ckpt_tensor_read(got, snap, t, 0, TENSOR_BYTES));
	for (size_t i = 0; i < TENSOR_FLOATS; i++)
		ck_assert_msg(got[i] == (float)(TENSOR_FLOATS + i), "float %zu of epoch 1 changed", i);
	/* once it is closed, pages are reused (keep_last 1): no slot of the child holds them */
	ckpt_snapshot_close(snap);
	OK(try_commit(s, 11));
	OK(try_commit(s, 12));
	off_t before = data_file_size();
	for (uint64_t e = 13; e <= 60; e++)
		OK(try_commit(s, e));
	ck_assert_msg(data_file_size() <= before + (off_t)(4 * TENSOR_BYTES),
	              "data.mdb grew %lld -> %lld", (long long)before,
	              (long long)data_file_size());
	ckpt_store_close(s);
}
END_TEST

static Suite *store_ops_suite(void)
{
	Suite *su = suite_create("store_ops");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_a_reader_killed_with_a_snapshot_open_does_not_stop_page_reuse);
	tcase_add_test(tc, test_reader_slots_of_killed_processes_are_reused);
	tcase_add_test(tc, test_pages_freed_by_gc_are_reused_by_the_next_commit);
	tcase_add_test(tc, test_writes_past_the_file_size_limit_say_file_too_large);
	tcase_add_test(tc, test_a_second_handle_in_one_process_is_refused_and_snapshots_stay_valid);
	tcase_add_test(tc, test_retention_persisted_by_another_process_applies_to_open_writers);
	tcase_add_test(tc, test_writers_are_refused_while_a_reader_without_lock_file_reads);
	tcase_add_test(tc, test_epochs_above_the_highest_are_refused);
	tcase_add_test(tc, test_names_and_run_metadata_that_are_not_utf8_are_refused);
	tcase_add_test(tc, test_bad_tensor_input_messages_name_the_problem);
	tcase_add_test(tc, test_a_store_closed_with_a_snapshot_open_closes_with_the_snapshot);
	tcase_add_test(tc, test_failed_lookups_set_their_own_message);
	tcase_add_test(tc, test_create_refuses_a_monitor_no_metric_can_name_and_keep_top_without_keep_last);
	tcase_add_test(tc, test_racing_creates_of_one_store_make_one_and_refuse_the_rest);
	tcase_add_test(tc, test_shell_words_are_whole_within_the_documented_buffer);
	tcase_add_test(tc, test_a_forked_child_is_refused_the_parents_handle_and_leaves_it_intact);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(store_ops_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
