/* fs/cli_store.c - the `ckpt` store commands: info, log, show, verify, gc
 *
 * They call libckpt directly (no view). Stores are opened read-only except by gc, which
 * first takes ckpt-train's exclusive flock on data.mdb (refused while a run trains); gc
 * --compact shrinks data.mdb with ckpt_store_compact_with(), which takes its own locks and
 * applies --keep-last/--keep-top on the copy it compacts, so a refusal changes nothing.
 * Output formats are stable (tests and scripts parse them):
 *   info   "key: value" lines; control characters in the store's strings as \xNN
 *   log    a header "epoch step <metric>... best" then one row per checkpoint: epoch as
 *          epoch-NNNN, step, metrics (columns sorted by name) as "%.6g" ("-" when missing),
 *          and a final "*" on the best row only; metric names in the header are one word each
 *          (control characters, spaces and backslashes as \xNN) and a metric named epoch,
 *          step or best is headed metric:NAME
 *   show   "name dtype shape device nbytes crc32" per tensor in insertion order, e.g.
 *          "fc1.weight float32 [256,784] cpu 802816 0x1a2b3c4d"; optimizer and extra tensors
 *          are prefixed "optimizer/" and "extra/"; bytes outside printable ASCII, spaces and
 *          backslashes in names are written as \xNN
 *   gc     "gc: deleted N checkpoints; keep-last N, keep-top K", and with --compact
 *          "compact: data.mdb BEFORE -> AFTER bytes (FREED freed)"
 * Exit status: 0 ok, 1 failure, 2 usage; gc --compact ended by a signal: 128 + its number,
 * after one line saying whether data.mdb was replaced yet.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt/holders.h"
#include "ckpt/message.h"
#include "ckpt/store.h"
#include "fs/cli.h"
#include "fs/view_int.h"

/* ---- shared plumbing ---- */

static int open_store(ckpt_store **out, const char *path, unsigned flags)
{
	int rc = ckpt_store_open(out, path, flags);
	if (rc) {
		cli_error("cannot open store '%s' (%s)", path,
		          ckpt_last_error()[0] ? ckpt_last_error() : ckpt_strerror(rc));
		return 1;
	}
	return 0;
}

static int open_snapshot(ckpt_snapshot **out, ckpt_store *s)
{
	if (ckpt_snapshot_open(out, s)) {
		cli_error("cannot read store %s (%s)", ckpt_store_path(s), ckpt_last_error());
		return 1;
	}
	return 0;
}

/* Open @p path read-only and list its checkpoints in one snapshot (cli_verify).
 * Returns 0, or 1 after one error line with everything released. */
static int open_listing(ckpt_store **out_store, ckpt_snapshot **out_snap, uint64_t **out_epochs,
                        size_t *out_count, const char *path)
{
	*out_snap = NULL;
	*out_epochs = NULL;
	*out_count = 0;
	if (open_store(out_store, path, CKPT_OPEN_READONLY))
		return 1;
	if (open_snapshot(out_snap, *out_store))
		goto fail;
	if (ckpt_snapshot_list(out_epochs, out_count, *out_snap)) {
		cli_error("cannot list %s (%s)", path, ckpt_last_error());
		goto fail;
	}
	return 0;
fail:
	ckpt_snapshot_close(*out_snap);
	*out_snap = NULL;
	ckpt_store_close(*out_store);
	*out_store = NULL;
	return 1;
}

/* Parse only --help (which prints @p usage and @p help) for commands without options, anywhere
 * among the arguments ("--" ends the options); trims the store path (the first argument).
 * Returns -1 to go on, else the exit status. */
static int simple_options(int argc, char **argv, const char *usage, const char *help, int npos)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 'h') {
			printf("usage: ckpt %s\n%s", usage, help);
			return 0;
		}
		return cli_bad_option(c, argv, opts, usage);
	}
	if (cli_check_arg_count(argv, argc - optind, npos, npos, usage))
		return 2;
	cli_trim_store_path(argv[optind]);
	return -1;
}

/* ---- info ---- */

#define HELP_INFO                                                                                  \
	"The run and the store, one \"key: value\" line each: store, schema, model, layers,\n"       \
	"optimizer, hyperparams, dataset, seed, monitor (NAME (min|max)), created (UTC), chunk-size,\n" \
	"keep-last, keep-top, checkpoints, latest and best (epoch-NNNN, or none), best-value (the\n"   \
	"best checkpoint's monitored metric, %.10g, or none), tensors, bytes (logical), stored-bytes\n" \
	"(after deduplication), chunks, file-size (data.mdb). Control characters in the store's\n"  \
	"strings are written as \\xNN.\n"                                                         \
	"Exit status: 0; 1 if the store cannot be read; 2 for bad usage.\n"

/* "KEY: VALUE" with @p value escaped (cli_print_escaped) */
static void info_line(const char *key, const char *value)
{
	printf("%s: ", key);
	cli_print_escaped(value, 0);
	putchar('\n');
}

int cli_info(int argc, char **argv)
{
	int rc = simple_options(argc, argv, CLI_USAGE_INFO, HELP_INFO, 1);
	if (rc >= 0)
		return rc;
	const char *path = argv[optind];
	ckpt_store *s;
	ckpt_snapshot *snap = NULL;
	if (open_store(&s, path, CKPT_OPEN_READONLY))
		return 1;
	int status = 1;
	if (open_snapshot(&snap, s))
		goto out;
	ckpt_store_stats st;
	char damaged[1200] = "";
	int src = ckpt_snapshot_stats(&st, snap);
	if (src == CKPT_ECORRUPT) /* said after what can be shown; exit 1 */
		snprintf(damaged, sizeof(damaged), "%s", ckpt_last_error());
	else if (src) {
		cli_error("cannot read store %s (%s)", path, ckpt_last_error());
		goto out;
	}
	const ckpt_run_meta *m = ckpt_store_meta(s);
	uint32_t keep_last, keep_top;
	ckpt_store_retention(s, &keep_last, &keep_top);
	char created[64] = "";
	time_t secs = (time_t)(m->created_ns / 1000000000);
	struct tm tm;
	if (gmtime_r(&secs, &tm))
		strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* one line each whatever the path and the store's strings hold: control characters as
	 * \xNN */
	info_line("store", path);
	printf("schema: %d\n", CKPT_SCHEMA_VERSION);
	info_line("model", m->model);
	info_line("layers", m->layers);
	info_line("optimizer", m->optimizer);
	info_line("hyperparams", m->hyperparams);
	info_line("dataset", m->dataset);
	printf("seed: %" PRIu64 "\n", m->seed);
	printf("monitor: ");
	cli_print_escaped(m->monitor, 0);
	printf(" (%s)\n", m->monitor_mode == CKPT_MODE_MAX ? "max" : "min");
	printf("created: %s\n", created);
	printf("chunk-size: %" PRIu64 "\n", ckpt_store_chunk_size(s));
	printf("keep-last: %" PRIu32 "\n", keep_last);
	printf("keep-top: %" PRIu32 "\n", keep_top);
	printf("checkpoints: %" PRIu64 "\n", st.checkpoints);
	char name[32];
	uint64_t e;
	if (ckpt_snapshot_latest(&e, snap) == 0) {
		view_epoch_name(name, sizeof(name), e);
		printf("latest: %s\n", name);
	} else {
		printf("latest: none\n");
	}
	/* best-value is a key of every store: "none" where no checkpoint is best (none yet, or
	 * every monitored value NaN or infinite) or its record cannot say */
	const ckpt_checkpoint *c;
	double v;
	if (ckpt_snapshot_best(&e, snap) == 0) {
		view_epoch_name(name, sizeof(name), e);
		printf("best: %s\n", name);
		if (ckpt_snapshot_checkpoint(&c, snap, e) == 0 &&
		    ckpt_checkpoint_metric(c, m->monitor, &v) == 0)
			printf("best-value: %.10g\n", v);
		else
			printf("best-value: none\n");
	} else {
		printf("best: none\n");
		printf("best-value: none\n");
	}
	printf("tensors: %" PRIu64 "\n", st.tensors);
	printf("bytes: %" PRIu64 "\n", st.bytes);
	printf("stored-bytes: %" PRIu64 "\n", st.stored_bytes);
	printf("chunks: %" PRIu64 "\n", st.chunks);
	char data[4096];
	struct stat fst;
	snprintf(data, sizeof(data), "%s/data.mdb", path);
	if (stat(data, &fst) == 0)
		printf("file-size: %lld\n", (long long)fst.st_size);
	status = 0;
	if (damaged[0]) {
		fflush(stdout);
		cli_error("%s", damaged);
		status = 1;
	}
out:
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	return status;
}

/* ---- log ---- */

#define HELP_LOG                                                                                   \
	"One row per checkpoint, oldest first, under the header \"epoch step <metrics> best\":\n"     \
	"  the epoch as epoch-NNNN, the step, each metric (one column per name, sorted by name)\n"   \
	"  with 6 significant digits (%.6g: 0.8622, 97469.7, 1.5e-05, nan, inf), '-' where the\n"    \
	"  checkpoint has no such metric, and '*' at the end of the best checkpoint's row only.\n"   \
	"  A metric named epoch, step or best is headed metric:NAME; spaces, backslashes and\n"      \
	"  control characters in metric names are written as \\xNN.\n"                              \
	"  A checkpoint whose record is damaged keeps its row, \"epoch-NNNN - damaged record\", and\n" \
	"  is named on stderr.\n"                                                                     \
	"Exit status: 0; 1 if the store cannot be read or a record is damaged; 2 for bad usage.\n"

struct log_damage {
	const char *path;
	size_t count;
};

static void log_damaged(void *arg, uint64_t epoch, int rc, const char *why)
{
	struct log_damage *d = arg;
	char en[32];
	view_epoch_name(en, sizeof(en), epoch);
	cli_error("%s: %s (%s)", d->path, en, why);
	d->count++;
}

int cli_log(int argc, char **argv)
{
	int rc = simple_options(argc, argv, CLI_USAGE_LOG, HELP_LOG, 1);
	if (rc >= 0)
		return rc;
	const char *path = argv[optind];
	ckpt_store *s;
	ckpt_snapshot *snap = NULL;
	uint64_t *epochs = NULL;
	const ckpt_checkpoint **ckpts = NULL;
	const char **names = NULL;
	int *widths = NULL;
	size_t n = 0, nnames = 0;
	int status = 1;
	if (open_store(&s, path, CKPT_OPEN_READONLY))
		return 1;
	if (open_snapshot(&snap, s))
		goto out;
	/* a damaged checkpoint record costs its row, not the log: it is named on stderr, listed
	 * as damaged, and the exit status is 1 (as history.csv on the mount keeps an empty row) */
	struct log_damage damage = {path, 0};
	if (view_load_checkpoints_reporting(&epochs, &ckpts, &n, snap, log_damaged, &damage)) {
		cli_error("cannot list %s (%s)", path, ckpt_last_error());
		goto out;
	}
	size_t damaged = damage.count;
	/* columns: the union of metric names, sorted (history.csv's columns) */
	if (view_metric_names(&names, &nnames, ckpts, n)) {
		cli_error("out of memory");
		goto out;
	}
	/* each metric's column is as wide as its header, at least 12 */
	if (!(widths = malloc((nnames ? nnames : 1) * sizeof(*widths)))) {
		cli_error("out of memory");
		goto out;
	}
	printf("%-10s %10s", "epoch", "step");
	for (size_t j = 0; j < nnames; j++) {
		/* one word whatever the name holds, unlike the fixed columns: spaces and control
		 * characters as \xNN, "metric:" before a metric named epoch, step or best */
		static const char *const fixed[] = {"epoch", "step", "best"};
		char *column = view_metric_column(names[j], fixed, 3, names, nnames);
		if (!column) {
			cli_error("out of memory");
			goto out;
		}
		size_t len = cli_escaped_len(column, CLI_ESC_SPACE);
		widths[j] = len > 12 ? (int)len : 12;
		printf(" %*s", widths[j] - (int)len, "");
		cli_print_escaped(column, CLI_ESC_SPACE);
		free(column);
	}
	printf(" best\n");
	for (size_t i = 0; i < n; i++) {
		const ckpt_checkpoint *c = ckpts[i];
		char en[32];
		view_epoch_name(en, sizeof(en), epochs[i]);
		if (!c) {
			printf("%-10s %10s damaged record\n", en, "-");
			continue;
		}
		printf("%-10s %10" PRIu64, en, ckpt_checkpoint_step(c));
		for (size_t j = 0; j < nnames; j++) {
			double v;
			if (ckpt_checkpoint_metric(c, names[j], &v) == 0)
				printf(" %*.6g", widths[j], v);
			else
				printf(" %*s", widths[j], "-");
		}
		printf("%s\n", ckpt_checkpoint_is_best(c) ? " *" : "");
	}
	status = damaged ? 1 : 0;
out:
	free(widths);
	free(names);
	free(ckpts);
	free(epochs);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	return status;
}

/* ---- show ---- */

#define HELP_SHOW                                                                                  \
	"One line per tensor of the checkpoint, in the order they were written:\n"                   \
	"  NAME DTYPE [SHAPE] DEVICE NBYTES 0xCRC32\n"                                                \
	"  e.g. \"fc1.weight float32 [256,784] cpu 802816 0x1a2b3c4d\"; [] is a 0-dim tensor, DEVICE\n" \
	"  the one it was saved from, CRC32 that of its bytes. Optimizer state is prefixed\n"        \
	"  optimizer/, extra tensors extra/; bytes outside printable ASCII, spaces and backslashes\n" \
	"  in names are written as \\xNN.\n"                                                          \
	"EPOCH is 4 or epoch-0004, at most 549755813887 (2^39 - 1, the last a store holds).\n"      \
	"Exit status: 0; 1 if the store or the checkpoint cannot be read; 2 for bad usage (a\n"      \
	"malformed EPOCH or one past the last included).\n"

int cli_show(int argc, char **argv)
{
	int rc = simple_options(argc, argv, CLI_USAGE_SHOW, HELP_SHOW, 2);
	if (rc >= 0)
		return rc;
	const char *path = argv[optind], *spec = argv[optind + 1];
	ckpt_store *s;
	ckpt_snapshot *snap = NULL;
	int status = 1;
	if (open_store(&s, path, CKPT_OPEN_READONLY))
		return 1;
	if (open_snapshot(&snap, s))
		goto out;
	uint64_t epoch;
	if ((status = cli_find_epoch(&epoch, snap, "show", path, spec)))
		goto out;
	status = 1;
	const ckpt_checkpoint *c;
	if (ckpt_snapshot_checkpoint(&c, snap, epoch)) {
		cli_error("%s", ckpt_last_error());
		goto out;
	}
	for (size_t i = 0; i < ckpt_checkpoint_tensor_count(c); i++) {
		const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(c, i);
		if (t->group == CKPT_GROUP_OPTIMIZER)
			printf("optimizer/");
		else if (t->group == CKPT_GROUP_EXTRA)
			printf("extra/");
		cli_print_escaped(t->name, CLI_ESC_SPACE | CLI_ESC_NONASCII);
		printf(" %s [", ckpt_dtype_name(t->dtype));
		for (uint32_t k = 0; k < t->ndim; k++)
			printf("%s%" PRIu64, k ? "," : "", t->shape[k]);
		printf("] ");
		cli_print_escaped(t->device, CLI_ESC_SPACE);
		printf(" %" PRIu64 " 0x%08" PRIx32 "\n", t->nbytes, t->crc32);
	}
	status = 0;
out:
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	return status;
}

/* ---- verify ---- */

#define HELP_VERIFY                                                                                \
	"Reads every checkpoint record, index record and tensor byte and checks them against\n"     \
	"their CRC-32s and content hashes. Each problem is one line on stderr:\n"                   \
	"  \"epoch-NNNN: bad tensor NAME (...)\", \"epoch-NNNN: bad checkpoint record (...)\",\n"     \
	"  \"epoch-NNNN: bad index record (...)\", \"epoch-NNNN: bad key (...)\",\n"                \
	"  \"epoch-NNNN: bad record optimizer.param_groups (...)\",\n"                              \
	"  \"bad best record (...)\" (damaged, or naming another epoch than the index's best),\n"                                                              \
	"  \"blob HASH...: ...\", \"chunk HASH#I ...: ...\" (reference counts that disagree with\n"   \
	"  the checkpoints, stored bytes no checkpoint can read: ckpt gc repairs them)\n"           \
	"then one line on stdout sums up:\n"                                                          \
	"  verify: ok, N checkpoints, T tensors, B bytes\n"                                          \
	"  verify: P problems in N checkpoints, T tensors\n"                                         \
	"Exit status: 0 when everything is intact; 1 when a problem is found or the store cannot\n" \
	"be read; 2 for bad usage.\n"

/* at most this many reference problems are printed, then how many more there are */
#define REFS_MAX_LINES 50

typedef struct refs_report {
	uint64_t lines;
} refs_report;

static void print_ref_problem(void *arg, const char *problem)
{
	refs_report *rep = arg;
	if (++rep->lines <= REFS_MAX_LINES)
		cli_error("%s", problem);
}

/* An intact best record must name the best checkpoint of the index records, as each commit
 * and gc keeps it (a record written by hand or by another tool can name any stored epoch: the
 * mount's best and --resume best would then take it). 1 after one error line. */
static int check_best_ranking(ckpt_snapshot *snap, const ckpt_run_meta *meta)
{
	uint64_t best, top;
	size_t ntop;
	int brc = ckpt_snapshot_best(&best, snap);
	if (ckpt_snapshot_top_k(&top, 1, &ntop, snap)) {
		cli_error("ranking the checkpoints failed (%s)", ckpt_last_error());
		return 1;
	}
	if ((brc == 0) == (ntop == 1) && (brc != 0 || best == top))
		return 0;
	char named[32] = "no epoch", ranked[32] = "none";
	if (brc == 0)
		view_epoch_name(named, sizeof(named), best);
	if (ntop == 1)
		view_epoch_name(ranked, sizeof(ranked), top);
	cli_error("bad best record (it names %s, but by the index records the best by the "
	          "monitored metric (%s) is %s)",
	          named, meta->monitor_mode == CKPT_MODE_MAX ? "max" : "min", ranked);
	return 1;
}

int cli_verify(int argc, char **argv)
{
	int rc = simple_options(argc, argv, CLI_USAGE_VERIFY, HELP_VERIFY, 1);
	if (rc >= 0)
		return rc;
	const char *path = argv[optind];
	ckpt_store *s;
	ckpt_snapshot *snap = NULL;
	uint64_t *epochs = NULL;
	size_t n = 0, bad = 0, tensors = 0;
	uint64_t bytes = 0;
	int status = 1;
	if (open_listing(&s, &snap, &epochs, &n, path))
		return 1;
	for (size_t i = 0; i < n; i++) {
		char en[32];
		view_epoch_name(en, sizeof(en), epochs[i]);
		if (epochs[i] > CKPT_MAX_EPOCH) {
			/* no library writes these: the mount cannot show them */
			cli_error("%s: bad key (past the last epoch a store holds, 2^39 - 1: a "
			          "damaged key, or written by an old version)",
			          en);
			bad++;
		}
		const ckpt_checkpoint *c;
		if (ckpt_snapshot_checkpoint(&c, snap, epochs[i])) {
			cli_error("%s: bad checkpoint record (%s)", en, ckpt_last_error());
			bad++;
			continue;
		}
		if (ckpt_snapshot_check_records(snap, epochs[i])) {
			cli_error("%s: bad index record (%s)", en, ckpt_last_error());
			bad++;
		}
		/* the optimizer's param groups, which checkpoint.pt and param_groups.json need */
		const void *pg;
		size_t pglen;
		if (ckpt_checkpoint_extra(c, VIEW_PARAM_GROUPS_KEY, &pg, &pglen) == 0) {
			view_layout l;
			view_layout_init(&l);
			if (view_render_param_groups(&l, c) == CKPT_ECORRUPT) {
				cli_error("%s: bad record optimizer.param_groups (%s)", en,
				          ckpt_view_last_error());
				bad++;
			}
			view_layout_free(&l);
		}
		for (size_t k = 0; k < ckpt_checkpoint_tensor_count(c); k++) {
			const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(c, k);
			tensors++;
			bytes += t->nbytes;
			if (ckpt_tensor_verify(snap, t)) {
				cli_error("%s: bad tensor %s%s (%s)", en,
				          t->group == CKPT_GROUP_OPTIMIZER ? "optimizer/"
				          : t->group == CKPT_GROUP_EXTRA   ? "extra/"
				                                           : "",
				          t->name, ckpt_last_error());
				bad++;
			}
		}
	}
	ckpt_refs_stats refs;
	refs_report rep = {0};
	if (ckpt_snapshot_check_refs(&refs, snap, print_ref_problem, &rep)) {
		cli_error("%s: checking the reference counts failed (%s)", path, ckpt_last_error());
		bad++;
	} else {
		if (rep.lines > REFS_MAX_LINES)
			cli_error("... and %" PRIu64 " more such problems", rep.lines - REFS_MAX_LINES);
		bad += refs.problems;
	}
	uint64_t best;
	if (ckpt_snapshot_check_best(snap) == CKPT_ECORRUPT ||
	    ckpt_snapshot_best(&best, snap) == CKPT_ECORRUPT) {
		cli_error("bad best record (%s)", ckpt_last_error());
		bad++;
	} else if (check_best_ranking(snap, ckpt_store_meta(s))) {
		bad++;
	}
	if (bad) {
		printf("verify: %zu problem%s in %zu checkpoint%s, %zu tensor%s\n", bad,
		       bad == 1 ? "" : "s", n, n == 1 ? "" : "s", tensors, tensors == 1 ? "" : "s");
		goto out;
	}
	printf("verify: ok, %zu checkpoint%s, %zu tensor%s, %" PRIu64 " bytes\n", n,
	       n == 1 ? "" : "s", tensors, tensors == 1 ? "" : "s", bytes);
	status = 0;
out:
	free(epochs);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	return status;
}

/* ---- gc ---- */

/* ckpt-train holds an exclusive flock on data.mdb for its whole run and applies its own
 * retention at every commit; a lockless reader (no lock.mdb) holds a shared one, invisible to
 * LMDB writers. gc takes ckpt gc's locks (ckpt_gc_lock(): after another gc or compaction, then
 * ckpt-train's flock) before it opens the store, so it neither writes under either of them nor
 * lets a ckpt-train start meanwhile. Returns 0 with *out set, or 1 after one error line,
 * nothing changed; without data.mdb it returns 0 and opening the store says what is wrong. */
static int lock_store_for_writing(ckpt_gc_lock_fds *out, const char *path)
{
	char who[512];
	int state = ckpt_gc_lock(out, path, who, sizeof(who));
	if (state == -ENOMEM) {
		cli_error("gc: out of memory");
		return 1;
	}
	if (state < 0 || state == CKPT_WRITER_LOCKED)
		return 0;
	if (state == CKPT_WRITER_BUSY) /* another gc would have been waited for: a trainer */
		cli_error("store %s is being written by %s; run gc when it stops, or ckpt-train "
		          "--resume --keep-last N",
		          path, who[0] ? who : "ckpt-train");
	else
		cli_error("store %s is being read by %s without lock.mdb (a ckpt command or a ckptfs "
		          "mount of a copy or of read-only media); gc could reuse the pages it reads: "
		          "stop that reader, or give the reader a writable lock.mdb",
		          path, who[0] ? who : "a process");
	return 1;
}

/* Retention that ckpt-train would refuse (check_retention in train/engine.c): keeping the
 * best K matters only when the newest N are not all kept anyway. Only a --keep-top given with
 * --keep-last 0 is refused; the store's keep-top is dropped then (apply_retention). */
static int check_gc_retention(uint64_t keep_last, uint64_t keep_top)
{
	if (keep_top == 0 || keep_last != 0)
		return 0;
	cli_error("gc: --keep-top %" PRIu64 " has no effect without --keep-last N (every "
	          "checkpoint is kept)",
	          keep_top);
	return 2;
}

/* --keep-last / --keep-top value: 0..UINT32_MAX; given again, the later value wins. */
static int parse_keep(uint64_t *value, bool *given, const char *name, const char *text)
{
	uint64_t v;
	if (cli_parse_u64(&v, text) || v > UINT32_MAX) {
		cli_error("gc: bad --%s value '%s' (expected a number 0..%u)", name, text,
		          UINT32_MAX);
		return 2;
	}
	*value = v;
	*given = true;
	return 0;
}

/* What one gc applies: the options given, the store's own settings for the others. */
typedef struct gc_request {
	const char *path;
	uint64_t keep_last, keep_top;
	bool have_last, have_top;
	uint32_t deleted;          /* set by apply_retention() */
	ckpt_refs_repair repaired; /* likewise */
} gc_request;

/* Persist and apply @p req's retention in @p s (open for writing). Returns 0, or 1 or 2 (the
 * exit status) after one error line. */
static int apply_retention(ckpt_store *s, gc_request *req)
{
	uint32_t cur_last, cur_top;
	ckpt_store_retention(s, &cur_last, &cur_top);
	if (!req->have_last)
		req->keep_last = cur_last;
	if (!req->have_top)
		req->keep_top = req->keep_last ? cur_top : 0; /* keep-last 0 keeps all, as ckpt-train */
	if (!req->have_top && req->keep_last == 0 && cur_top > 0)
		ckpt_print_line(stderr, "ckpt: note: ",
		                "keep-last 0 keeps every checkpoint; the store's keep-top %" PRIu32
		                " no longer applies",
		                cur_top);
	int status = check_gc_retention(req->keep_last, req->keep_top);
	if (status)
		return status; /* refused before writing */
	if (ckpt_store_gc(s, (uint32_t)req->keep_last, (uint32_t)req->keep_top, &req->deleted) ||
	    ckpt_store_repair_refs(s, &req->repaired)) {
		cli_error("gc of %s failed (%s)", req->path, ckpt_last_error());
		return 1;
	}
	return 0;
}

static void print_gc(const gc_request *req)
{
	cli_done = "gc itself was done";
	printf("gc: deleted %" PRIu32 " checkpoint%s; keep-last %" PRIu64 ", keep-top %" PRIu64 "\n",
	       req->deleted, req->deleted == 1 ? "" : "s", req->keep_last, req->keep_top);
	const ckpt_refs_repair *r = &req->repaired;
	if (r->blobs || r->chunks || r->counts)
		printf("gc: repaired reference counting: freed %" PRIu64 " blob%s no checkpoint "
		       "references and %" PRIu64 " stray chunk%s (%" PRIu64 " bytes), set %" PRIu64
		       " reference count%s\n",
		       r->blobs, r->blobs == 1 ? "" : "s", r->chunks, r->chunks == 1 ? "" : "s",
		       r->bytes, r->counts, r->counts == 1 ? "" : "s");
}

/* ckpt_store_compact_with()'s work: the retention, on the copy that becomes the store. Its
 * exit status (1 or 2, reported) is what the compaction returns. */
static int retention_before_compact(ckpt_store *s, void *arg)
{
	return apply_retention(s, arg);
}

/* gc --compact ended by SIGINT, SIGTERM, SIGHUP or SIGQUIT: the handler removes the copies
 * beside the store (ckpt_store_compact_interrupted()), says in one line whether data.mdb was
 * replaced yet, and ends the process as the signal would have (exit 130, 143, 129, 131). A
 * signal the caller ignores (nohup) stays ignored. The line's start is made before. */
static const int compact_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define COMPACT_SIGNALS (sizeof(compact_signals) / sizeof(compact_signals[0]))
static struct sigaction compact_old[COMPACT_SIGNALS];
static char *compact_line;     /* "ckpt: error: gc: compacting STORE was interrupted by " */
static bool compact_retention; /* with --keep-*: the retention is part of the swap */

static void end_interrupted_compaction(int sig)
{
	bool compacted = ckpt_store_compact_interrupted();
	cli_write_stderr(compact_line ? compact_line
	                              : "ckpt: error: gc: compacting was interrupted by ");
	cli_write_stderr(cli_stop_signal_name(sig));
	if (!compacted)
		cli_write_stderr(" before it replaced data.mdb: nothing changed, no copy is left\n");
	else if (compact_retention)
		cli_write_stderr(" after it replaced data.mdb: the store is whole, compacted, with "
		                 "the retention applied\n");
	else
		cli_write_stderr(" after it replaced data.mdb: the store is whole and compacted\n");
	signal(sig, SIG_DFL);
	raise(sig);
}

static void block_compact_signals(sigset_t *old)
{
	sigset_t set;
	sigemptyset(&set);
	for (size_t i = 0; i < COMPACT_SIGNALS; i++)
		sigaddset(&set, compact_signals[i]);
	sigprocmask(SIG_BLOCK, &set, old);
}

static void guard_compaction(const char *path, bool retention)
{
	sigset_t old;
	block_compact_signals(&old);
	/* the store's path escaped as in every error line */
	compact_line = cli_error_prefix("gc: compacting %s was interrupted by ", path);
	compact_retention = retention;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = end_interrupted_compaction;
	sigemptyset(&sa.sa_mask); /* the others wait while one is handled: one line, whole */
	for (size_t i = 0; i < COMPACT_SIGNALS; i++)
		sigaddset(&sa.sa_mask, compact_signals[i]);
	for (size_t i = 0; i < COMPACT_SIGNALS; i++) {
		sigaction(compact_signals[i], NULL, &compact_old[i]);
		if (compact_old[i].sa_handler != SIG_IGN)
			sigaction(compact_signals[i], &sa, NULL);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
}

static void unguard_compaction(void)
{
	sigset_t old;
	block_compact_signals(&old);
	for (size_t i = 0; i < COMPACT_SIGNALS; i++)
		sigaction(compact_signals[i], &compact_old[i], NULL);
	free(compact_line);
	compact_line = NULL;
	sigprocmask(SIG_SETMASK, &old, NULL);
}

/* gc --compact: shrink data.mdb, after applying @p req's retention in the same step when @p req
 * is not NULL; prints what gc deleted and the sizes once all is done. Returns 0, or the exit
 * status after one error line, with the store as it was. */
static int compact_store(const char *path, gc_request *req)
{
	ckpt_store_compact_stats st;
	guard_compaction(path, req != NULL);
	int rc = req ? ckpt_store_compact_with(&st, path, retention_before_compact, req)
	             : ckpt_store_compact(&st, path);
	unguard_compaction();
	if (rc > 0)
		return rc; /* the retention's own, already reported */
	if (rc) {
		cli_error("gc: compacting %s failed (%s)", path, ckpt_last_error());
		return 1;
	}
	if (req)
		print_gc(req);
	cli_done = "the compaction itself was done";
	printf("compact: data.mdb %" PRIu64 " -> %" PRIu64 " bytes (%" PRIu64 " freed)\n",
	       st.size_before, st.size_after,
	       st.size_before > st.size_after ? st.size_before - st.size_after : 0);
	return 0;
}

int cli_gc(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"keep-last", required_argument, NULL, 'l'},
	    {"keep-top", required_argument, NULL, 't'},
	    {"compact", no_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	gc_request req = {0};
	bool compact = false;
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hl:t:", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			printf("usage: ckpt %s\n  0 means unlimited; a missing option keeps the "
			       "store's current setting. The best checkpoint is never deleted.\n"
			       "  --keep-top needs --keep-last N > 0; --keep-last 0 alone keeps "
			       "every checkpoint and\n  drops the store's keep-top (a note says so). "
			       "Refused while ckpt-train trains the store.\n"
			       "  --compact gives the freed space back to the file system (rewrites "
			       "data.mdb), in one\n  step with the retention of --keep-last/--keep-top "
			       "if given; refused while any\n  process has the store open (unmount "
			       "ckptfs first).\n"
			       "  Also frees stored bytes no checkpoint references (left by a damaged "
			       "checkpoint).\n"
			       "Prints \"gc: deleted N checkpoints; keep-last N, keep-top K\" (and "
			       "what it repaired,\nor compact: data.mdb BEFORE -> AFTER bytes).\n"
			       "Exit status: 0; 1 when the store cannot be changed (refused, full disk,"
			       " damaged);\n2 for bad usage; 130, 143 or 129 when --compact is ended by "
			       "SIGINT, SIGTERM or\nSIGHUP, after one line saying whether it had "
			       "replaced data.mdb yet (if not, nothing\nchanged and no copy is left; "
			       "the store is whole either way).\n",
			       CLI_USAGE_GC);
			return 0;
		case 'c':
			compact = true;
			break;
		case 'l':
		case 't':
			if (c == 'l' &&
			    parse_keep(&req.keep_last, &req.have_last, "keep-last", optarg))
				return 2;
			if (c == 't' && parse_keep(&req.keep_top, &req.have_top, "keep-top", optarg))
				return 2;
			break;
		default:
			return cli_bad_option(c, argv, opts, CLI_USAGE_GC);
		}
	}
	if (cli_check_arg_count(argv, argc - optind, 1, 1, CLI_USAGE_GC))
		return 2;
	if (req.have_last && req.have_top && check_gc_retention(req.keep_last, req.keep_top))
		return 2;
	const char *path = cli_trim_store_path(argv[optind]);
	req.path = path;
	/* compaction takes the locks itself (a flock of this process would refuse it) and checks
	 * everything before it changes anything; without --keep-* options it only compacts */
	if (compact)
		return compact_store(path, req.have_last || req.have_top ? &req : NULL);
	/* what a read-only open refuses (a newer schema, a damaged store, not a store) is refused
	 * before the writable open, which would create lock.mdb first */
	ckpt_store *s;
	if (open_store(&s, path, CKPT_OPEN_READONLY))
		return 1;
	ckpt_store_close(s);
	ckpt_gc_lock_fds lock;
	if (lock_store_for_writing(&lock, path))
		return 1;
	int status = open_store(&s, path, 0);
	if (status == 0) {
		status = apply_retention(s, &req);
		if (status == 0)
			print_gc(&req);
		ckpt_store_close(s);
	}
	ckpt_gc_unlock(&lock);
	return status;
}
