/* fs/cli_store.c - the `ckpt` store commands: info, log, show, verify, gc
 *
 * They call libckpt directly (no view). Stores are opened read-only except by gc. Output
 * formats are stable (tests and scripts parse them):
 *   info   "key: value" lines
 *   log    a header "epoch step <metric>... best" then one row per checkpoint: epoch as
 *          epoch-NNNN, step, metrics (columns sorted by name) as "%.6g" ("-" when missing),
 *          and a final "*" on the best row only
 *   show   "name dtype shape device nbytes crc32" per tensor in insertion order, e.g.
 *          "fc1.weight float32 [256,784] cpu 802816 0x1a2b3c4d"; optimizer and extra tensors
 *          are prefixed "optimizer/" and "extra/"; bytes outside printable ASCII, spaces and
 *          backslashes in names are written as \xNN
 * Exit status: 0 ok, 1 failure, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt/store.h"
#include "fs/cli.h"
#include "fs/view_int.h"

void cli_error(const char *fmt, ...)
{
	va_list ap;
	fputs("ckpt: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* strict unsigned decimal; false on empty, sign, junk or overflow */
static bool parse_u64(const char *s, uint64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return false;
	uint64_t v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

int cli_resolve_epoch(uint64_t *out, ckpt_snapshot *snap, const char *spec)
{
	uint64_t e;
	if (!spec)
		return -EINVAL;
	if (strcmp(spec, "best") == 0)
		return ckpt_snapshot_best(out, snap);
	if (strcmp(spec, "latest") == 0)
		return ckpt_snapshot_latest(out, snap);
	const char *num = strncmp(spec, "epoch-", 6) == 0 ? spec + 6 : spec;
	if (!parse_u64(num, &e))
		return -EINVAL;
	const ckpt_checkpoint *c;
	int rc = ckpt_snapshot_checkpoint(&c, snap, e);
	if (rc)
		return rc;
	*out = e;
	return 0;
}

/* ---- shared plumbing ---- */

static int open_store(ckpt_store **out, const char *path, unsigned flags)
{
	int rc = ckpt_store_open(out, path, flags);
	if (rc) {
		cli_error("cannot open store %s (%s)", path, ckpt_last_error());
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

int cli_bad_option(int c, char **argv, const char *usage)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "";
	if (strncmp(arg, "--", 2) == 0) {
		int len = (int)strcspn(arg, "=");
		if (c == ':')
			cli_error("%s: option '%.*s' needs a value (usage: ckpt %s)", argv[0], len,
			          arg, usage);
		else if (arg[len] == '=' && optopt != 0)
			cli_error("%s: option '%.*s' takes no value (usage: ckpt %s)", argv[0], len,
			          arg, usage);
		else
			cli_error("%s: unknown or ambiguous option '%.*s' (usage: ckpt %s)",
			          argv[0], len, arg, usage);
	} else if (c == ':') {
		cli_error("%s: option '-%c' needs a value (usage: ckpt %s)", argv[0], optopt,
		          usage);
	} else {
		cli_error("%s: unknown option '-%c' (usage: ckpt %s)", argv[0], optopt, usage);
	}
	return 2;
}

/* Parse only --help for commands without options; returns -1 to go on, else exit code. */
static int simple_options(int argc, char **argv, const char *usage, int npos)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		if (c == 'h') {
			printf("usage: ckpt %s\n", usage);
			return 0;
		}
		return cli_bad_option(c, argv, usage);
	}
	if (argc - optind != npos) {
		cli_error("%s: expected %d argument%s (usage: ckpt %s)", argv[0], npos,
		          npos == 1 ? "" : "s", usage);
		return 2;
	}
	return -1;
}

static int resolve_or_fail(uint64_t *out, ckpt_snapshot *snap, const char *store, const char *spec)
{
	int rc = cli_resolve_epoch(out, snap, spec);
	if (rc == -EINVAL) {
		cli_error("bad epoch '%s' (expected a number, epoch-NNNN, best or latest)", spec);
		return 2;
	}
	if (rc) {
		cli_error("no checkpoint '%s' in %s (%s)", spec, store, ckpt_last_error());
		return 1;
	}
	return 0;
}

/* ---- info ---- */

int cli_info(int argc, char **argv)
{
	int rc = simple_options(argc, argv, "info STORE", 1);
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
	if (ckpt_snapshot_stats(&st, snap)) {
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
	printf("store: %s\n", path);
	printf("schema: %d\n", CKPT_SCHEMA_VERSION);
	printf("model: %s\n", m->model);
	printf("layers: %s\n", m->layers);
	printf("optimizer: %s\n", m->optimizer);
	printf("hyperparams: %s\n", m->hyperparams);
	printf("dataset: %s\n", m->dataset);
	printf("seed: %" PRIu64 "\n", m->seed);
	printf("monitor: %s (%s)\n", m->monitor, m->monitor_mode == CKPT_MODE_MAX ? "max" : "min");
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
	if (ckpt_snapshot_best(&e, snap) == 0) {
		const ckpt_checkpoint *c;
		double v;
		view_epoch_name(name, sizeof(name), e);
		printf("best: %s\n", name);
		if (ckpt_snapshot_checkpoint(&c, snap, e) == 0 &&
		    ckpt_checkpoint_metric(c, m->monitor, &v) == 0)
			printf("best-value: %.10g\n", v);
	} else {
		printf("best: none\n");
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
out:
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	return status;
}

/* ---- log ---- */

int cli_log(int argc, char **argv)
{
	int rc = simple_options(argc, argv, "log STORE", 1);
	if (rc >= 0)
		return rc;
	const char *path = argv[optind];
	ckpt_store *s;
	ckpt_snapshot *snap = NULL;
	uint64_t *epochs = NULL;
	const ckpt_checkpoint **ckpts = NULL;
	const char **names = NULL;
	size_t n = 0, nnames = 0;
	int status = 1;
	if (open_store(&s, path, CKPT_OPEN_READONLY))
		return 1;
	if (open_snapshot(&snap, s))
		goto out;
	if (view_load_checkpoints(&epochs, &ckpts, &n, snap)) {
		cli_error("cannot list %s (%s)", path, ckpt_last_error());
		goto out;
	}
	/* columns: the union of metric names, sorted (history.csv's columns) */
	if (view_metric_names(&names, &nnames, ckpts, n)) {
		cli_error("out of memory");
		goto out;
	}
	printf("%-10s %10s", "epoch", "step");
	for (size_t j = 0; j < nnames; j++)
		printf(" %12s", names[j]);
	printf(" best\n");
	for (size_t i = 0; i < n; i++) {
		const ckpt_checkpoint *c = ckpts[i];
		char en[32];
		view_epoch_name(en, sizeof(en), epochs[i]);
		printf("%-10s %10" PRIu64, en, ckpt_checkpoint_step(c));
		for (size_t j = 0; j < nnames; j++) {
			double v;
			int w = (int)strlen(names[j]) > 12 ? (int)strlen(names[j]) : 12;
			if (ckpt_checkpoint_metric(c, names[j], &v) == 0)
				printf(" %*.6g", w, v);
			else
				printf(" %*s", w, "-");
		}
		printf("%s\n", ckpt_checkpoint_is_best(c) ? " *" : "");
	}
	status = 0;
out:
	free(names);
	free(ckpts);
	free(epochs);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	return status;
}

/* ---- show ---- */

static void print_name(const char *name)
{
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (*p <= 0x20 || *p >= 0x7f || *p == '\\')
			printf("\\x%02x", *p);
		else
			putchar(*p);
	}
}

int cli_show(int argc, char **argv)
{
	int rc = simple_options(argc, argv, "show STORE EPOCH|best|latest", 2);
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
	if ((status = resolve_or_fail(&epoch, snap, path, spec)))
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
		print_name(t->name);
		printf(" %s [", ckpt_dtype_name(t->dtype));
		for (uint32_t k = 0; k < t->ndim; k++)
			printf("%s%" PRIu64, k ? "," : "", t->shape[k]);
		printf("] %s %" PRIu64 " 0x%08" PRIx32 "\n", t->device, t->nbytes, t->crc32);
	}
	status = 0;
out:
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	return status;
}

/* ---- verify ---- */

int cli_verify(int argc, char **argv)
{
	int rc = simple_options(argc, argv, "verify STORE", 1);
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
	uint64_t best;
	if (ckpt_snapshot_best(&best, snap) == CKPT_ECORRUPT) {
		cli_error("bad best record (%s)", ckpt_last_error());
		bad++;
	}
	if (bad) {
		printf("verify: %zu problem(s) in %zu checkpoints, %zu tensors\n", bad, n, tensors);
		goto out;
	}
	printf("verify: ok, %zu checkpoints, %zu tensors, %" PRIu64 " bytes\n", n, tensors, bytes);
	status = 0;
out:
	free(epochs);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	return status;
}

/* ---- gc ---- */

int cli_gc(int argc, char **argv)
{
	static const char usage[] = "gc STORE [--keep-last N] [--keep-top K]";
	static const struct option opts[] = {
	    {"keep-last", required_argument, NULL, 'l'},
	    {"keep-top", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	uint64_t keep_last = 0, keep_top = 0;
	bool have_last = false, have_top = false;
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hl:t:", opts, NULL)) != -1) {
		uint64_t v;
		switch (c) {
		case 'h':
			printf("usage: ckpt %s\n  0 means unlimited; a missing option keeps the "
			       "store's current setting. The best checkpoint is never deleted.\n",
			       usage);
			return 0;
		case 'l':
		case 't':
			if (!parse_u64(optarg, &v) || v > UINT32_MAX) {
				cli_error("bad --%s value '%s' (expected a number 0..%u)",
				          c == 'l' ? "keep-last" : "keep-top", optarg, UINT32_MAX);
				return 2;
			}
			if (c == 'l') {
				keep_last = v;
				have_last = true;
			} else {
				keep_top = v;
				have_top = true;
			}
			break;
		default:
			return cli_bad_option(c, argv, usage);
		}
	}
	if (argc - optind != 1) {
		cli_error("gc: expected one STORE argument (usage: ckpt %s)", usage);
		return 2;
	}
	const char *path = argv[optind];
	ckpt_store *s;
	if (open_store(&s, path, 0))
		return 1;
	uint32_t cur_last, cur_top, deleted = 0;
	ckpt_store_retention(s, &cur_last, &cur_top);
	if (!have_last)
		keep_last = cur_last;
	if (!have_top)
		keep_top = cur_top;
	int status = 0;
	if (ckpt_store_gc(s, (uint32_t)keep_last, (uint32_t)keep_top, &deleted)) {
		cli_error("gc of %s failed (%s)", path, ckpt_last_error());
		status = 1;
	} else {
		printf("gc: deleted %" PRIu32 " checkpoint(s); keep-last %" PRIu64
		       ", keep-top %" PRIu64 "\n",
		       deleted, keep_last, keep_top);
	}
	ckpt_store_close(s);
	return status;
}
