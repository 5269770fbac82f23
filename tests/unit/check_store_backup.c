/* tests/unit/check_store_backup.c - Check suite for ckpt_store_backup(): a backup is a whole
 * store of one commit, taken while another process commits, through read-only handles too;
 * bad destinations and failures leave nothing behind and never change the store; damage is
 * named as the store's; a damaged record is copied as it is without CKPT_BACKUP_VERIFY; no
 * DEST/data.mdb exists before the copy has been checked
 *
 * Each test works in a fresh mkdtemp directory that it removes. A second process on the store
 * is a fork that opens its own handle (one handle per store per process).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckpt/store.h"
#include "store/store_int.h"
#include "test_dir.h"

/* one float32 tensor of this many elements per checkpoint: 256 KiB, in 64 KiB chunks */
#define TENSOR_FLOATS 65536
#define TENSOR_BYTES (TENSOR_FLOATS * sizeof(float))

static char tmpdir[256];
static char storepath[512];
static char dest[600];

static void setup(void)
{
	test_store_dir_make(tmpdir, sizeof(tmpdir), storepath, sizeof(storepath),
	                    "check_store_backup");
	snprintf(dest, sizeof(dest), "%s/backup", tmpdir);
}

static void teardown(void)
{
	test_dir_remove(tmpdir);
}

static ckpt_store *make_store(uint32_t keep_last)
{
	return test_store_create(storepath, keep_last);
}

/* the bytes of epoch @p epoch's tensor: unlike every other epoch's */
static void fill(float *w, uint64_t epoch)
{
	for (size_t i = 0; i < TENSOR_FLOATS; i++)
		w[i] = (float)(epoch * TENSOR_FLOATS + i);
}

static int try_commit(ckpt_store *s, uint64_t epoch)
{
	static float w[TENSOR_FLOATS];
	fill(w, epoch);
	uint64_t shape[1] = {TENSOR_FLOATS};
	ckpt_writer *wr;
	int rc = ckpt_writer_begin(&wr, s, epoch);
	if (rc)
		return rc;
	ckpt_writer_set_metric(wr, "val_loss", 1.0 / (double)(epoch + 1));
	rc = ckpt_writer_put_tensor(wr, "w", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 1, shape, "cpu",
	                            w, TENSOR_BYTES);
	if (rc) {
		ckpt_writer_abort(wr);
		return rc;
	}
	return ckpt_writer_commit(wr);
}

/* the directory's entries besides . and .., sorted by readdir order, as "a b c" */
static void list_dir(char *out, size_t cap, const char *dir)
{
	out[0] = '\0';
	DIR *d = opendir(dir);
	ck_assert_msg(d != NULL, "opendir %s: %s", dir, strerror(errno));
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			snprintf(out + strlen(out), cap - strlen(out), "%s%s", out[0] ? " " : "",
			         e->d_name);
	closedir(d);
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* Each checkpoint of the backup at @p dir holds the bytes its epoch was written with, every
 * tensor verifies, and the epochs are @p first..@p last. */
static void check_backup_holds(const char *dir, uint64_t first, uint64_t last)
{
	static float want[TENSOR_FLOATS];
	ckpt_store *b;
	ckpt_snapshot *snap;
	uint64_t *epochs;
	size_t n;
	OK(ckpt_store_open(&b, dir, CKPT_OPEN_READONLY));
	OK(ckpt_snapshot_open(&snap, b));
	OK(ckpt_snapshot_list(&epochs, &n, snap));
	ck_assert_uint_eq(n, last - first + 1);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_eq(epochs[i], first + i);
		const ckpt_checkpoint *c;
		OK(ckpt_snapshot_checkpoint(&c, snap, epochs[i]));
		const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(c, 0);
		ck_assert_ptr_nonnull(t);
		OK(ckpt_tensor_verify(snap, t));
		fill(want, epochs[i]);
		ck_assert_uint_eq(t->crc32, ckpt_crc32(0, want, TENSOR_BYTES));
	}
	free(epochs);
	ckpt_snapshot_close(snap);
	ckpt_store_close(b);
}

START_TEST(test_a_backup_is_a_store_of_its_own_holding_every_checkpoint)
{
	ckpt_store *s = make_store(0);
	for (uint64_t e = 1; e <= 4; e++)
		OK(try_commit(s, e));
	ckpt_store_close(s);
	char data[700], before[700], after[700];
	snprintf(data, sizeof(data), "%s/data.mdb", storepath);
	list_dir(before, sizeof(before), storepath);
	struct stat st0, st1;
	ck_assert_int_eq(stat(data, &st0), 0);

	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	ckpt_store_backup_stats bs;
	OK(ckpt_store_backup(&bs, s, dest, CKPT_BACKUP_VERIFY));
	ckpt_store_close(s);
	ck_assert_uint_eq(bs.checkpoints, 4);
	ck_assert(bs.has_latest);
	ck_assert_uint_eq(bs.latest, 4);
	ck_assert_uint_eq(bs.tensors, 4);
	ck_assert_uint_eq(bs.tensor_bytes, 4 * TENSOR_BYTES);
	char got[700], file[700];
	list_dir(got, sizeof(got), dest);
	ck_assert_str_eq(got, "data.mdb"); /* no lock.mdb: reading it back created none */
	snprintf(file, sizeof(file), "%s/data.mdb", dest);
	ck_assert_int_eq(stat(file, &st1), 0);
	ck_assert_uint_eq(bs.size, (uint64_t)st1.st_size);
	/* the store is as it was */
	list_dir(after, sizeof(after), storepath);
	ck_assert_str_eq(after, before);
	ck_assert_int_eq(stat(data, &st1), 0);
	ck_assert_int_eq(st1.st_size, st0.st_size);
	ck_assert_int_eq(st1.st_mtim.tv_sec, st0.st_mtim.tv_sec);
	ck_assert_int_eq(st1.st_mtim.tv_nsec, st0.st_mtim.tv_nsec);

	check_backup_holds(dest, 1, 4);
	/* and it is written to as a store: the run goes on in it */
	OK(ckpt_store_open(&s, dest, 0));
	OK(try_commit(s, 5));
	uint64_t best;
	ckpt_snapshot *snap;
	OK(ckpt_snapshot_open(&snap, s));
	OK(ckpt_snapshot_best(&best, snap));
	ck_assert_uint_eq(best, 5);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	check_backup_holds(dest, 1, 5);
}
END_TEST

START_TEST(test_a_backup_into_an_existing_empty_directory_keeps_that_directory)
{
	ckpt_store *s = make_store(0);
	OK(try_commit(s, 1));
	ck_assert_int_eq(mkdir(dest, 0700), 0);
	OK(ckpt_store_backup(NULL, s, dest, 0));
	struct stat st;
	ck_assert_int_eq(stat(dest, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	/* an empty store backs up too */
	char empty[700];
	snprintf(empty, sizeof(empty), "%s/empty", tmpdir);
	ckpt_store_close(s);
	test_dir_remove(storepath);
	s = make_store(0);
	ckpt_store_backup_stats bs;
	OK(ckpt_store_backup(&bs, s, empty, 0));
	ck_assert_uint_eq(bs.checkpoints, 0);
	ck_assert(!bs.has_latest);
	ckpt_store_close(s);
	check_backup_holds(dest, 1, 1);
}
END_TEST

/* @p d refused with @p want, its message holding @p words, nothing created anywhere */
static void refused(ckpt_store *s, const char *d, int want, const char *words)
{
	char before_tmp[2000], before_store[700], after[2000];
	list_dir(before_tmp, sizeof(before_tmp), tmpdir);
	list_dir(before_store, sizeof(before_store), storepath);
	ck_assert_int_eq(ckpt_store_backup(NULL, s, d, 0), want);
	ck_assert_msg(strstr(ckpt_last_error(), words) != NULL, "%s: %s", d, ckpt_last_error());
	list_dir(after, sizeof(after), tmpdir);
	ck_assert_str_eq(after, before_tmp);
	list_dir(after, sizeof(after), storepath);
	ck_assert_str_eq(after, before_store);
}

START_TEST(test_bad_destinations_are_refused_and_nothing_is_made)
{
	ckpt_store *s = make_store(0);
	OK(try_commit(s, 1));
	char d[700], file[800];
	refused(s, "", -EINVAL, "empty");
	refused(s, storepath, -EINVAL, "is the store itself");
	snprintf(d, sizeof(d), "%s/.", storepath);
	refused(s, d, -EINVAL, "is the store itself");
	snprintf(d, sizeof(d), "%s/inside", storepath);
	refused(s, d, -EINVAL, "is inside the store");
	snprintf(d, sizeof(d), "%s/data.mdb", storepath);
	refused(s, d, -ENOTDIR, "is not a directory");
	snprintf(d, sizeof(d), "%s/no/such", tmpdir);
	refused(s, d, -ENOENT, "parent directory");
	snprintf(d, sizeof(d), "%s/full", tmpdir);
	ck_assert_int_eq(mkdir(d, 0755), 0);
	snprintf(file, sizeof(file), "%s/notes.txt", d);
	FILE *f = fopen(file, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	refused(s, d, -ENOTEMPTY, "is not empty, it holds notes.txt");
	snprintf(d, sizeof(d), "%s/dangling", tmpdir);
	ck_assert_int_eq(symlink("nowhere", d), 0);
	refused(s, d, -ENOENT, "symbolic link to nothing");
	ckpt_store_close(s);
}
END_TEST

START_TEST(test_a_backup_past_the_file_size_limit_leaves_nothing)
{
	ckpt_store *s = make_store(0);
	for (uint64_t e = 1; e <= 4; e++)
		OK(try_commit(s, e));
	ckpt_store_close(s);
	/* in a child: the limit and SIGXFSZ ignored stay there */
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		signal(SIGXFSZ, SIG_IGN);
		struct rlimit rl = {256 << 10, 256 << 10};
		ckpt_store *c;
		if (setrlimit(RLIMIT_FSIZE, &rl) != 0 ||
		    ckpt_store_open(&c, storepath, CKPT_OPEN_READONLY) != 0)
			_exit(2);
		int rc = ckpt_store_backup(NULL, c, dest, 0);
		ckpt_store_close(c);
		_exit(rc == -EFBIG && strstr(ckpt_last_error(), "data.mdb.tmp") ? 0 : 1);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
	ck_assert_msg(!exists(dest), "a failed backup left %s", dest);
	/* into a directory that was there: it stays, empty */
	ck_assert_int_eq(mkdir(dest, 0755), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		signal(SIGXFSZ, SIG_IGN);
		struct rlimit rl = {256 << 10, 256 << 10};
		ckpt_store *c;
		if (setrlimit(RLIMIT_FSIZE, &rl) != 0 ||
		    ckpt_store_open(&c, storepath, CKPT_OPEN_READONLY) != 0)
			_exit(2);
		_exit(ckpt_store_backup(NULL, c, dest, 0) == -EFBIG ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
	char got[700];
	list_dir(got, sizeof(got), dest);
	ck_assert_str_eq(got, "");
}
END_TEST

START_TEST(test_backups_taken_while_another_process_commits_each_hold_one_commit)
{
	ckpt_store *s = make_store(3);
	OK(try_commit(s, 1));
	ckpt_store_close(s);
	int go[2];
	ck_assert_int_eq(pipe(go), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) { /* the trainer: commits epochs 2..60, keeping the newest 3 */
		close(go[0]);
		ckpt_store *w;
		if (ckpt_store_open(&w, storepath, 0) != 0)
			_exit(2);
		(void)!write(go[1], "x", 1);
		for (uint64_t e = 2; e <= 60; e++)
			if (try_commit(w, e) != 0)
				_exit(3);
		ckpt_store_close(w);
		_exit(0);
	}
	close(go[1]);
	char x;
	ck_assert_int_eq(read(go[0], &x, 1), 1);
	close(go[0]);
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	uint64_t seen_latest[8];
	for (int i = 0; i < 8; i++) {
		char d[700];
		snprintf(d, sizeof(d), "%s/backup-%d", tmpdir, i);
		ckpt_store_backup_stats bs;
		OK(ckpt_store_backup(&bs, s, d, CKPT_BACKUP_VERIFY));
		ck_assert(bs.has_latest);
		seen_latest[i] = bs.latest;
		/* one commit: the newest epoch and those retention kept with it */
		uint64_t first = bs.latest > 3 ? bs.latest - 2 : 1;
		check_backup_holds(d, first, bs.latest);
	}
	ckpt_store_close(s);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "trainer status %d", status);
	for (int i = 1; i < 8; i++)
		ck_assert_uint_ge(seen_latest[i], seen_latest[i - 1]);
}
END_TEST

START_TEST(test_a_store_without_lock_file_is_backed_up_without_creating_one)
{
	ckpt_store *s = make_store(0);
	for (uint64_t e = 1; e <= 2; e++)
		OK(try_commit(s, e));
	ckpt_store_close(s);
	char lock[700];
	snprintf(lock, sizeof(lock), "%s/lock.mdb", storepath);
	ck_assert_int_eq(unlink(lock), 0);
	ck_assert_int_eq(chmod(storepath, 0555), 0); /* as on read-only media (root ignores it) */
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	OK(ckpt_store_backup(NULL, s, dest, 0));
	ckpt_store_close(s);
	ck_assert_int_eq(chmod(storepath, 0755), 0);
	ck_assert(!exists(lock));
	check_backup_holds(dest, 1, 2);
}
END_TEST

/* Flip a bit of the @p len bytes at @p bytes wherever they lie in the store's data.mdb (LMDB
 * may keep a stale copy in a free page), on disk as a failing disk would: in their middle
 * byte, or (@p first) their first. */
static void damage_on_disk(const void *bytes, size_t len, bool first)
{
	char data[700];
	snprintf(data, sizeof(data), "%s/data.mdb", storepath);
	FILE *f = fopen(data, "r+b");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	long size = ftell(f);
	char *buf = malloc((size_t)size);
	ck_assert_ptr_nonnull(buf);
	rewind(f);
	ck_assert_int_eq(fread(buf, 1, (size_t)size, f), size);
	int found = 0;
	for (char *at = buf; (at = memmem(at, (size_t)(buf + size - at), bytes, len)); at += len) {
		char *flip = at + (first ? 0 : len / 2);
		ck_assert_int_eq(fseek(f, (long)(flip - buf), SEEK_SET), 0);
		ck_assert_int_eq(fputc(flip[0] ^ 0x40, f), (unsigned char)(flip[0] ^ 0x40));
		found++;
	}
	ck_assert_int_gt(found, 0);
	ck_assert_int_eq(fclose(f), 0);
	free(buf);
}

START_TEST(test_verify_refuses_a_backup_of_a_damaged_tensor_and_removes_it)
{
	ckpt_store *s = make_store(0);
	OK(try_commit(s, 1));
	OK(try_commit(s, 2));
	ckpt_store_close(s);
	/* flip a byte inside epoch 2's tensor: its float 1000 */
	static float w[TENSOR_FLOATS];
	fill(w, 2);
	damage_on_disk(&w[1000], 4 * sizeof(float), true);

	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	ck_assert_int_eq(ckpt_store_backup(NULL, s, dest, CKPT_BACKUP_VERIFY), CKPT_ECHECKSUM);
	/* the store's damage (the copy took it from there), not the backup's */
	char want[700];
	snprintf(want, sizeof(want), "store %s is damaged: epoch 2: tensor w: chunk ", storepath);
	const char *why = ckpt_last_error();
	ck_assert_msg(strncmp(why, want, strlen(want)) == 0, "%s", why);
	ck_assert_msg(!strstr(why, dest) && strstr(why, "fails its CRC-32"), "%s", why);
	ck_assert(!exists(dest));
	/* without the tensor check the records are whole: the copy is made, as the store is */
	OK(ckpt_store_backup(NULL, s, dest, 0));
	ckpt_store_close(s);
}
END_TEST

/* damage epoch @p epoch's checkpoint record on disk: its CRC-32 then fails, nothing else does */
static void damage_checkpoint_record(uint64_t epoch)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint8_t k[8];
	store_epoch_key(k, epoch);
	MDB_val key = {8, k}, val;
	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
	ck_assert_int_eq(mdb_env_open(env, storepath, MDB_RDONLY | MDB_NOLOCK, 0644), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, "ckpt", 0, &dbi), 0);
	ck_assert_int_eq(mdb_get(txn, dbi, &key, &val), 0);
	void *record = malloc(val.mv_size);
	ck_assert_ptr_nonnull(record);
	memcpy(record, val.mv_data, val.mv_size);
	size_t len = val.mv_size;
	mdb_txn_abort(txn);
	mdb_env_close(env);
	damage_on_disk(record, len, false);
	free(record);
}

/* a store of epochs 1..@p last, closed */
static void make_store_of(uint64_t last)
{
	ckpt_store *s = make_store(0);
	for (uint64_t e = 1; e <= last; e++)
		OK(try_commit(s, e));
	ckpt_store_close(s);
}

/* how often @p needle occurs in @p text */
static int occurrences(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

START_TEST(test_a_damaged_record_is_copied_as_it_is_and_named_as_the_stores)
{
	ckpt_store *s;
	make_store_of(3);
	damage_checkpoint_record(2);
	char want[700];
	snprintf(want, sizeof(want),
	         "store %s is damaged: epoch 2: corrupt checkpoint record: ", storepath);

	/* checked: refused, naming the store (not the copy) and the epoch once */
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	ck_assert_int_eq(ckpt_store_backup(NULL, s, dest, CKPT_BACKUP_VERIFY), CKPT_ECORRUPT);
	const char *why = ckpt_last_error();
	ck_assert_msg(strncmp(why, want, strlen(want)) == 0, "%s", why);
	ck_assert_msg(!strstr(why, dest) && occurrences(why, "epoch 2") == 1, "%s", why);
	ck_assert_msg(strstr(why, "ckpt verify"), "%s", why);
	ck_assert(!exists(dest));

	/* not checked: the backup is made, the damaged record in it as it is, and named */
	ckpt_store_backup_stats bs;
	OK(ckpt_store_backup(&bs, s, dest, 0));
	ckpt_store_close(s);
	ck_assert_uint_eq(bs.damaged_records, 1);
	ck_assert_uint_eq(bs.checkpoints, 3);
	ck_assert_uint_eq(bs.latest, 3);
	why = ckpt_last_error();
	ck_assert_msg(strncmp(why, want, strlen(want)) == 0 && strstr(why, "as it is"), "%s", why);
	char got[700];
	list_dir(got, sizeof(got), dest);
	ck_assert_str_eq(got, "data.mdb");
	ckpt_store *b;
	ckpt_snapshot *snap;
	const ckpt_checkpoint *c;
	OK(ckpt_store_open(&b, dest, CKPT_OPEN_READONLY));
	OK(ckpt_snapshot_open(&snap, b));
	OK(ckpt_snapshot_checkpoint(&c, snap, 1));
	ck_assert_int_eq(ckpt_snapshot_checkpoint(&c, snap, 2), CKPT_ECORRUPT);
	OK(ckpt_snapshot_checkpoint(&c, snap, 3));
	OK(ckpt_tensor_verify(snap, ckpt_checkpoint_tensor_at(c, 0)));
	ckpt_snapshot_close(snap);
	ckpt_store_close(b);

	/* a second damaged epoch is named too */
	damage_checkpoint_record(3);
	char more[700];
	snprintf(more, sizeof(more), "%s/more", tmpdir);
	OK(ckpt_store_open(&s, storepath, CKPT_OPEN_READONLY));
	OK(ckpt_store_backup(&bs, s, more, 0));
	ckpt_store_close(s);
	ck_assert_uint_eq(bs.damaged_records, 2);
	ck_assert_msg(strstr(ckpt_last_error(), "(damaged too: epoch 3)"), "%s", ckpt_last_error());
}
END_TEST

/* a pause file named @p pause appears, or @p pid ends first: whether it paused */
static bool paused_at(const char *pause, pid_t pid)
{
	for (int i = 0; i < 6000; i++) { /* a minute: the loop ends as soon as either happens */
		if (exists(pause))
			return true;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return false;
		usleep(10000);
	}
	return false;
}

START_TEST(test_no_data_mdb_is_in_dest_while_the_copy_is_checked_even_after_sigkill)
{
	make_store_of(3);
	char pause[700];
	snprintf(pause, sizeof(pause), "%s/pause", tmpdir);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) { /* held while it reads the copy back, with every tensor checked */
		ckpt_store *c;
		if (setenv("CKPT_BACKUP_TEST_PAUSE_VALIDATING", pause, 1) != 0 ||
		    ckpt_store_open(&c, storepath, CKPT_OPEN_READONLY) != 0)
			_exit(2);
		_exit(ckpt_store_backup(NULL, c, dest, CKPT_BACKUP_VERIFY) == 0 ? 0 : 1);
	}
	bool held = paused_at(pause, pid);
	if (held)
		kill(pid, SIGKILL);
	int status;
	waitpid(pid, &status, 0);
	ck_assert_msg(held, "the backup did not pause while it checked the copy");
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	/* what is left is no store: DEST/data.mdb.tmp/, the copy in it */
	char got[700], data[700];
	list_dir(got, sizeof(got), dest);
	ck_assert_str_eq(got, "data.mdb.tmp");
	snprintf(data, sizeof(data), "%s/data.mdb", dest);
	ck_assert(!exists(data));
	ckpt_store *b;
	ck_assert_int_ne(ckpt_store_open(&b, dest, CKPT_OPEN_READONLY), 0);
}
END_TEST

START_TEST(test_interrupted_removes_nothing_when_no_backup_runs)
{
	ckpt_store *s = make_store(0);
	OK(try_commit(s, 1));
	OK(ckpt_store_backup(NULL, s, dest, 0));
	ckpt_store_close(s);
	ckpt_store_backup_interrupted(); /* after a backup: it is done with its files */
	check_backup_holds(dest, 1, 1);
}
END_TEST

/* vfat, exfat (dmask 022), CIFS (uid=), NFS root_squash and sshfs show a directory just made
 * with the mount's owner and mode: a backup onto them must not be refused for it */
START_TEST(test_a_made_directory_is_taken_by_being_empty_not_by_its_owner_or_mode)
{
	char dir[700], file[720], link[700];
	struct stat st;
	snprintf(dir, sizeof(dir), "%s/made", tmpdir);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	ck_assert_int_eq(chmod(dir, 0755), 0);
	if (geteuid() == 0)
		ck_assert_int_eq(chown(dir, 12345, 12345), 0);
	int fd = store_open_made_dir(&st, AT_FDCWD, dir);
	ck_assert_msg(fd >= 0, "an empty 0755 directory of uid 12345 was refused: %d", fd);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(st.st_mode & 077, 055); /* stat'ed before it was made 0700 */
	struct stat now;
	ck_assert_int_eq(fstat(fd, &now), 0);
	ck_assert_int_eq(now.st_mode & 0777, 0700);
	/* the descriptor still lists from the start after the emptiness check */
	int file_fd = openat(fd, "data.mdb", O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(file_fd, 0);
	close(file_fd);
	close(fd);
	/* one holding a file is another's: refused */
	ck_assert_int_eq(store_open_made_dir(&st, AT_FDCWD, dir), -EEXIST);
	/* a file or a link in its place: refused */
	snprintf(file, sizeof(file), "%s/data.mdb", dir);
	ck_assert_int_eq(store_open_made_dir(&st, AT_FDCWD, file), -ENOTDIR);
	snprintf(link, sizeof(link), "%s/link", tmpdir);
	ck_assert_int_eq(unlink(file), 0);
	ck_assert_int_eq(symlink(dir, link), 0);
	ck_assert_int_eq(store_open_made_dir(&st, AT_FDCWD, link), -ENOTDIR);
}
END_TEST

static Suite *store_backup_suite(void)
{
	Suite *su = suite_create("store_backup");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_a_backup_is_a_store_of_its_own_holding_every_checkpoint);
	tcase_add_test(tc, test_a_backup_into_an_existing_empty_directory_keeps_that_directory);
	tcase_add_test(tc, test_bad_destinations_are_refused_and_nothing_is_made);
	tcase_add_test(tc, test_a_backup_past_the_file_size_limit_leaves_nothing);
	tcase_add_test(tc, test_backups_taken_while_another_process_commits_each_hold_one_commit);
	tcase_add_test(tc, test_a_store_without_lock_file_is_backed_up_without_creating_one);
	tcase_add_test(tc, test_verify_refuses_a_backup_of_a_damaged_tensor_and_removes_it);
	tcase_add_test(tc, test_a_damaged_record_is_copied_as_it_is_and_named_as_the_stores);
	tcase_add_test(tc,
	               test_no_data_mdb_is_in_dest_while_the_copy_is_checked_even_after_sigkill);
	tcase_add_test(tc, test_interrupted_removes_nothing_when_no_backup_runs);
	tcase_add_test(tc, test_a_made_directory_is_taken_by_being_empty_not_by_its_owner_or_mode);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(store_backup_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
