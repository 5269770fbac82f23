/* train/engine.c - the epoch loop: train, validate, test, snapshot, persist, resume
 *
 * Invariants: the store sees exactly one commit per finished epoch (ckpt_writer_commit), never
 * a partial one; bad input is detected before the store is created or touched; a resumed run
 * restores everything the next epoch reads (parameters, optimizer state, steps, RNG), so k
 * epochs + resume to N is byte-identical to N straight. The checkpoint is taken in two steps:
 * snapshot (device -> host copies into one of two staging slots, pinned memory and a copy
 * stream on CUDA, a memcpy on the CPU) then persist (the store commit) on a background thread
 * while the next epoch trains. At most one commit is in flight; the loop waits only when the
 * previous one still runs at the end of the next epoch. A failed commit stops training at the
 * next batch; SIGINT/SIGTERM, errors and the end of the run wait for the commit in flight, so
 * no finished epoch is lost and the epoch line on stdout appears only once it is committed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt/holders.h"
#include "ckpt/message.h"
#include "ckpt/store.h"
#include "train/data.h"
#include "train/engine.h"
#include "train/error.h"
#include "train/memory.h"
#include "train/rng.h"

/* ---- configuration ------------------------------------------------------------------------ */

void train_config_defaults(train_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->data, sizeof(c->data), "fashion-mnist");
	snprintf(c->layers, sizeof(c->layers), "784,256,128,10");
	c->sizes[0] = 784;
	c->sizes[1] = 256;
	c->sizes[2] = 128;
	c->sizes[3] = 10;
	c->nsizes = 4;
	c->epochs = 10;
	c->batch_size = 128;
	c->val_split = 5000;
	c->opt.kind = TRAIN_OPT_SGD;
	c->opt.lr = 0.1;
	c->opt.momentum = 0.9;
	c->opt.beta1 = 0.9;
	c->opt.beta2 = 0.999;
	c->opt.eps = 1e-8;
	c->schedule = TRAIN_SCHED_NONE;
	snprintf(c->monitor, sizeof(c->monitor), "val_loss");
	snprintf(c->device, sizeof(c->device), "cpu");
	snprintf(c->resume_from, sizeof(c->resume_from), "latest");
}

int train_parse_schedule(train_config *cfg, const char *text)
{
	if (strcmp(text, "none") == 0) {
		cfg->schedule = TRAIN_SCHED_NONE;
		return 0;
	}
	if (strcmp(text, "cosine") == 0) {
		cfg->schedule = TRAIN_SCHED_COSINE;
		return 0;
	}
	/* step:EVERY:GAMMA, digits only for EVERY (sscanf's %u would take "-1" and " 2") */
	if (strncmp(text, "step:", 5) == 0 && text[5] >= '0' && text[5] <= '9') {
		char *end, *gamma_end;
		errno = 0;
		unsigned long long every = strtoull(text + 5, &end, 10);
		if (*end == ':' && (errno == ERANGE || every > UINT32_MAX))
			return train_fail(-EINVAL,
			                  "--lr-schedule '%s': EVERY %.*s is too large (at most %u)",
			                  text, (int)(end - (text + 5)), text + 5, UINT32_MAX);
		bool ok = errno == 0 && *end == ':' && every > 0;
		const char *g = end + 1;
		double gamma = 0;
		if (ok && ((*g >= '0' && *g <= '9') || *g == '.') && !strpbrk(g, "xX")) {
			gamma = strtod(g, &gamma_end);
			ok = errno == 0 && gamma_end != g && *gamma_end == '\0' && gamma > 0 &&
			     isfinite(gamma);
		} else {
			ok = false;
		}
		if (ok) {
			cfg->schedule = TRAIN_SCHED_STEP;
			cfg->schedule_every = (uint32_t)every;
			cfg->schedule_gamma = gamma;
			return 0;
		}
	}
	return train_fail(-EINVAL,
	                  "invalid --lr-schedule '%s' (expected none, cosine or step:EVERY:GAMMA "
	                  "with EVERY > 0 and GAMMA > 0)",
	                  text);
}

double train_schedule_lr(const train_config *c, uint32_t epoch_index)
{
	switch (c->schedule) {
	case TRAIN_SCHED_STEP:
		return c->opt.lr *
		       pow(c->schedule_gamma, (double)(epoch_index / c->schedule_every));
	case TRAIN_SCHED_COSINE: {
		uint32_t t_max = c->schedule_t_max ? c->schedule_t_max : 1;
		return c->opt.lr * (1.0 + cos(M_PI * (double)epoch_index / (double)t_max)) / 2.0;
	}
	case TRAIN_SCHED_NONE:
		break;
	}
	return c->opt.lr;
}

static void schedule_text(char *buf, size_t len, const train_config *c)
{
	switch (c->schedule) {
	case TRAIN_SCHED_STEP:
		snprintf(buf, len, "step:%u:%s", c->schedule_every,
		         TRAIN_DOUBLE_TEXT(c->schedule_gamma));
		break;
	case TRAIN_SCHED_COSINE:
		snprintf(buf, len, "cosine");
		break;
	default:
		snprintf(buf, len, "none");
	}
}

/* What to do after the loss became NaN or infinite in @p epoch, into @p buf: a lower --lr,
 * and a gentler --lr-schedule when a step schedule that multiplies the rate (GAMMA > 1) has
 * raised it by then. A resume cannot take either (it keeps the run's settings), and a store
 * that stays (it holds checkpoints, or this run reused it empty) refuses a new run with other
 * settings: then the hint says to use a new --store or remove this one. A store this run
 * created and committed nothing to is removed, so the same command with a lower --lr works. */
static void diverged_hint(char *buf, size_t len, const train_config *c, uint32_t epoch,
                          bool store_stays)
{
	size_t o = (size_t)snprintf(buf, len, "try a lower --lr");
	if (o < len && c->schedule == TRAIN_SCHED_STEP && c->schedule_gamma > 1 &&
	    train_schedule_lr(c, epoch - 1) > c->opt.lr) {
		char sched[64];
		schedule_text(sched, sizeof(sched), c);
		o += (size_t)snprintf(buf + o, len - o, ", or a gentler --lr-schedule than %s%s",
		                      sched, store_stays ? "," : "");
	}
	if (o < len && store_stays)
		snprintf(buf + o, len - o,
		         " in a new --store or after removing this one: the store keeps this run's "
		         "settings");
}

/* The run's hyper-parameters as people read them (run metadata, run.json). */
static char *hyperparams_json(const train_config *c)
{
	char sched[64];
	schedule_text(sched, sizeof(sched), c);
	json_t *o = json_object();
	if (!o)
		return NULL;
	int rc = 0;
	rc |= json_object_set_new(o, "lr", json_real(c->opt.lr));
	if (c->opt.kind == TRAIN_OPT_SGD) {
		rc |= json_object_set_new(o, "momentum", json_real(c->opt.momentum));
		rc |= json_object_set_new(o, "dampening", json_real(c->opt.dampening));
		rc |= json_object_set_new(o, "nesterov", json_boolean(c->opt.nesterov));
	} else {
		rc |=
		    json_object_set_new(o, "betas", json_pack("[ff]", c->opt.beta1, c->opt.beta2));
		rc |= json_object_set_new(o, "eps", json_real(c->opt.eps));
	}
	rc |= json_object_set_new(o, "weight_decay", json_real(c->opt.weight_decay));
	rc |= json_object_set_new(o, "batch_size", json_integer(c->batch_size));
	rc |= json_object_set_new(o, "lr_schedule", json_string(sched));
	if (c->schedule == TRAIN_SCHED_COSINE)
		rc |= json_object_set_new(o, "T_max", json_integer(c->schedule_t_max));
	rc |= json_object_set_new(o, "val_split", json_integer(c->val_split));
	char *text = rc ? NULL : train_json_dumps(o);
	json_decref(o);
	return text;
}

/* The exact configuration a resume restores (doubles at full precision). */
static char *config_json(const train_config *c)
{
	json_t *o = json_pack(
	    "{s:s, s:s, s:s, s:I, s:I, s:f, s:f, s:f, s:b, s:f, s:f, s:f, s:f, s:i, s:I, s:f, s:I, "
	    "s:I, s:s, s:I}",
	    "data", c->data, "layers", c->layers, "optimizer", train_opt_name(c->opt.kind),
	    "batch_size", (json_int_t)c->batch_size, "val_split", (json_int_t)c->val_split, "lr",
	    c->opt.lr, "momentum", c->opt.momentum, "dampening", c->opt.dampening, "nesterov",
	    (int)c->opt.nesterov, "weight_decay", c->opt.weight_decay, "beta1", c->opt.beta1,
	    "beta2", c->opt.beta2, "eps", c->opt.eps, "schedule", (int)c->schedule,
	    "schedule_every", (json_int_t)c->schedule_every, "schedule_gamma", c->schedule_gamma,
	    "schedule_t_max", (json_int_t)c->schedule_t_max, "seed", (json_int_t)c->seed, "monitor",
	    c->monitor, "epochs", (json_int_t)c->epochs);
	/* the data set's identity, as far as it is known */
	json_t *data = NULL;
	if (o && c->data_known)
		data = json_pack("{s:I, s:I, s:I}", "data_train_count",
		                 (json_int_t)c->data_train_count, "data_test_count",
		                 (json_int_t)c->data_test_count, "data_labels_crc32",
		                 (json_int_t)c->data_labels_crc32);
	if (data && c->data_pixels_known &&
	    json_object_update_new(data, json_pack("{s:I, s:I, s:I}", "data_rows",
	                                           (json_int_t)c->data_rows, "data_cols",
	                                           (json_int_t)c->data_cols, "data_pixels_crc32",
	                                           (json_int_t)c->data_pixels_crc32)) != 0) {
		json_decref(data);
		data = NULL;
	}
	if (c->data_known && (!data || json_object_update_new(o, data) != 0)) {
		json_decref(o);
		return NULL;
	}
	if (!o)
		return NULL;
	char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
	json_decref(o);
	return text;
}

static int config_from_json(train_config *c, const char *text, size_t len, uint64_t epoch)
{
	json_error_t jerr;
	json_t *o = json_loadb(text, len, 0, &jerr);
	if (!o)
		return train_fail(CKPT_ECORRUPT,
		                  "checkpoint %" PRIu64 ": train.config is not JSON (%s)", epoch,
		                  jerr.text);
	const char *data, *layers, *optimizer, *monitor;
	json_int_t batch, val_split, every, t_max, seed, epochs = 0;
	json_int_t train_count = -1, test_count = -1, labels_crc = -1;
	json_int_t rows = -1, cols = -1, pixels_crc = -1;
	int nesterov, schedule;
	double lr, momentum, dampening, wd, beta1, beta2, eps, gamma;
	int rc = json_unpack_ex(
	    o, &jerr, 0,
	    "{s:s, s:s, s:s, s:I, s:I, s:F, s:F, s:F, s:b, s:F, s:F, s:F, s:F, "
	    "s:i, s:I, s:F, s:I, s:I, s:s, s?I, s?I, s?I, s?I, s?I, s?I, s?I}",
	    "data", &data, "layers", &layers, "optimizer", &optimizer, "batch_size", &batch,
	    "val_split", &val_split, "lr", &lr, "momentum", &momentum, "dampening", &dampening,
	    "nesterov", &nesterov, "weight_decay", &wd, "beta1", &beta1, "beta2", &beta2, "eps",
	    &eps, "schedule", &schedule, "schedule_every", &every, "schedule_gamma", &gamma,
	    "schedule_t_max", &t_max, "seed", &seed, "monitor", &monitor, "epochs", &epochs,
	    "data_train_count", &train_count, "data_test_count", &test_count, "data_labels_crc32",
	    &labels_crc, "data_rows", &rows, "data_cols", &cols, "data_pixels_crc32", &pixels_crc);
	if (rc) {
		rc = train_fail(CKPT_ECORRUPT,
		                "checkpoint %" PRIu64 ": train.config is damaged (%s)", epoch,
		                jerr.text);
		goto out;
	}
	snprintf(c->data, sizeof(c->data), "%s", data);
	snprintf(c->layers, sizeof(c->layers), "%s", layers);
	rc = train_parse_layers(c->sizes, &c->nsizes, c->layers);
	if (!rc)
		rc = train_opt_parse(&c->opt.kind, optimizer);
	if (rc) {
		rc = train_fail(CKPT_ECORRUPT, "checkpoint %" PRIu64 ": train.config: %s", epoch,
		                train_last_error());
		goto out;
	}
	if (batch <= 0 || batch > UINT32_MAX || val_split < 0 || val_split > UINT32_MAX ||
	    schedule < 0 || schedule > TRAIN_SCHED_COSINE || every < 0 || every > UINT32_MAX ||
	    t_max < 0 || t_max > UINT32_MAX || epochs < 0 || epochs > TRAIN_MAX_EPOCHS) {
		rc = train_fail(CKPT_ECORRUPT, "checkpoint %" PRIu64 ": train.config out of range",
		                epoch);
		goto out;
	}
	c->batch_size = (uint32_t)batch;
	c->val_split = (uint32_t)val_split;
	c->opt.lr = lr;
	c->opt.momentum = momentum;
	c->opt.dampening = dampening;
	c->opt.nesterov = nesterov;
	c->opt.weight_decay = wd;
	c->opt.beta1 = beta1;
	c->opt.beta2 = beta2;
	c->opt.eps = eps;
	c->schedule = (train_schedule_kind)schedule;
	c->schedule_every = (uint32_t)every;
	c->schedule_gamma = gamma;
	c->schedule_t_max = (uint32_t)t_max;
	c->seed = (uint64_t)seed;
	if (epochs > 0)
		c->epochs = (uint32_t)epochs;
	c->data_known = train_count >= 0 && train_count <= UINT32_MAX && test_count >= 0 &&
	                test_count <= UINT32_MAX && labels_crc >= 0 && labels_crc <= UINT32_MAX;
	if (c->data_known) {
		c->data_train_count = (uint32_t)train_count;
		c->data_test_count = (uint32_t)test_count;
		c->data_labels_crc32 = (uint32_t)labels_crc;
	}
	c->data_pixels_known = c->data_known && rows >= 0 && rows <= UINT32_MAX && cols >= 0 &&
	                       cols <= UINT32_MAX && pixels_crc >= 0 && pixels_crc <= UINT32_MAX;
	if (c->data_pixels_known) {
		c->data_rows = (uint32_t)rows;
		c->data_cols = (uint32_t)cols;
		c->data_pixels_crc32 = (uint32_t)pixels_crc;
	}
	snprintf(c->monitor, sizeof(c->monitor), "%s", monitor);
out:
	json_decref(o);
	return rc;
}

/* Options that only one kind of optimizer reads must not be given to another: they would be
 * ignored without a word. @p kind is the optimizer the run uses (on resume: the stored one);
 * @p whose says which run that is in the message ("the" or "the run's"). */
static int check_optimizer_options(unsigned set, train_opt_kind kind, const char *whose)
{
	static const struct {
		unsigned bit;
		const char *option;
		bool sgd;
	} only[] = {
	    {TRAIN_SET_MOMENTUM, "--momentum", true}, {TRAIN_SET_DAMPENING, "--dampening", true},
	    {TRAIN_SET_NESTEROV, "--nesterov", true}, {TRAIN_SET_BETAS, "--betas", false},
	    {TRAIN_SET_EPS, "--eps", false},
	};
	for (size_t i = 0; i < sizeof(only) / sizeof(only[0]); i++) {
		if (!(set & only[i].bit) || only[i].sgd == (kind == TRAIN_OPT_SGD))
			continue;
		return train_fail(-EINVAL,
		                  "%s is an option of %s only, and %s optimizer is %s: it would "
		                  "be ignored (drop it or use --optimizer %s)",
		                  only[i].option, only[i].sgd ? "sgd" : "adam and adamw", whose,
		                  train_opt_name(kind), only[i].sgd ? "sgd" : "adam");
	}
	return 0;
}

/* @p data (a --data value) as a place: the built-in name is its directory; a path that
 * resolves is its canonical path, one that does not is taken without trailing '/'. */
static void data_place(char *buf, size_t len, const char *data)
{
	const char *path = strcmp(data, "fashion-mnist") == 0 ? TRAIN_FASHION_MNIST_DIR : data;
	char *real = strcmp(data, "synthetic") == 0 ? NULL : realpath(path, NULL);
	snprintf(buf, len, "%s", real ? real : path);
	free(real);
	for (size_t n = strlen(buf); n > 1 && buf[n - 1] == '/'; n--)
		buf[n - 1] = '\0';
}

/* True if two --data values name the same place, however spelled. */
static bool same_data_place(const char *a, const char *b)
{
	char pa[4096], pb[4096];
	data_place(pa, sizeof(pa), a);
	data_place(pb, sizeof(pb), b);
	return strcmp(pa, pb) == 0;
}

/* @p device as the backend records it: "cuda" is "cuda:0". */
static const char *device_name(char *buf, size_t len, const char *device)
{
	snprintf(buf, len, "%s", strcmp(device, "cuda") == 0 ? "cuda:0" : device);
	return buf;
}

/* Explicit options must agree with the stored run; everything else is taken from it. */
static int config_merge_resumed(train_config *cli, const train_config *run)
{
	const unsigned set = cli->explicit_set;
	char a[64], b[64];
#define REFUSE(what, fmt, mine, theirs)                                                            \
	return train_fail(-EINVAL,                                                                 \
	                  "refusing to resume: " what " " fmt " differs from the run's " fmt       \
	                  " (a resumed run keeps its settings)",                                   \
	                  mine, theirs)
	/* sizes, not text: "020,10" is the architecture "20,10" (stores written before --layers
	 * was normalized keep the text as typed) */
	if ((set & TRAIN_SET_LAYERS) &&
	    (cli->nsizes != run->nsizes ||
	     memcmp(cli->sizes, run->sizes, cli->nsizes * sizeof(cli->sizes[0])) != 0))
		return train_fail(
		    -EINVAL, "refusing to resume: the run's architecture is --layers %s, not %s",
		    run->layers, cli->layers);
	if ((set & TRAIN_SET_OPTIMIZER) && cli->opt.kind != run->opt.kind)
		return train_fail(-EINVAL, "refusing to resume: the run's optimizer is %s, not %s",
		                  train_opt_name(run->opt.kind), train_opt_name(cli->opt.kind));
	int rc = check_optimizer_options(set, run->opt.kind, "the run's");
	if (rc)
		return rc;
	/* --data may name the run's data set where it is now: the same data, checked once it
	 * is loaded (check_data_unchanged()); synthetic data has no place to move to */
	bool data_elsewhere = (set & TRAIN_SET_DATA) && !same_data_place(cli->data, run->data);
	if (data_elsewhere &&
	    (strcmp(cli->data, "synthetic") == 0 || strcmp(run->data, "synthetic") == 0))
		REFUSE("--data", "%s", cli->data, run->data);
	if (data_elsewhere && !run->data_known)
		return train_fail(
		    -EINVAL,
		    "refusing to resume: --data %s differs from the run's %s, and the "
		    "run was started before ckpt-train recorded what its data holds, "
		    "so it cannot be checked to be the same data set",
		    cli->data, run->data);
	if ((set & TRAIN_SET_BATCH) && cli->batch_size != run->batch_size)
		REFUSE("--batch-size", "%u", cli->batch_size, run->batch_size);
	if ((set & TRAIN_SET_VAL_SPLIT) && cli->val_split != run->val_split)
		REFUSE("--val-split", "%u", cli->val_split, run->val_split);
	if ((set & TRAIN_SET_SEED) && cli->seed != run->seed)
		REFUSE("--seed", "%" PRIu64, cli->seed, run->seed);
	if ((set & TRAIN_SET_LR) && cli->opt.lr != run->opt.lr)
		REFUSE("--lr", "%s", TRAIN_DOUBLE_TEXT(cli->opt.lr),
		       TRAIN_DOUBLE_TEXT(run->opt.lr));
	if ((set & TRAIN_SET_MOMENTUM) && cli->opt.momentum != run->opt.momentum)
		REFUSE("--momentum", "%s", TRAIN_DOUBLE_TEXT(cli->opt.momentum),
		       TRAIN_DOUBLE_TEXT(run->opt.momentum));
	if ((set & TRAIN_SET_DAMPENING) && cli->opt.dampening != run->opt.dampening)
		REFUSE("--dampening", "%s", TRAIN_DOUBLE_TEXT(cli->opt.dampening),
		       TRAIN_DOUBLE_TEXT(run->opt.dampening));
	if ((set & TRAIN_SET_NESTEROV) && cli->opt.nesterov != run->opt.nesterov)
		return train_fail(-EINVAL,
		                  "refusing to resume: the run was trained without --nesterov");
	if ((set & TRAIN_SET_WEIGHT_DECAY) && cli->opt.weight_decay != run->opt.weight_decay)
		REFUSE("--weight-decay", "%s", TRAIN_DOUBLE_TEXT(cli->opt.weight_decay),
		       TRAIN_DOUBLE_TEXT(run->opt.weight_decay));
	if ((set & TRAIN_SET_BETAS) &&
	    (cli->opt.beta1 != run->opt.beta1 || cli->opt.beta2 != run->opt.beta2)) {
		snprintf(a, sizeof(a), "%s,%s", TRAIN_DOUBLE_TEXT(cli->opt.beta1),
		         TRAIN_DOUBLE_TEXT(cli->opt.beta2));
		snprintf(b, sizeof(b), "%s,%s", TRAIN_DOUBLE_TEXT(run->opt.beta1),
		         TRAIN_DOUBLE_TEXT(run->opt.beta2));
		REFUSE("--betas", "%s", a, b);
	}
	if ((set & TRAIN_SET_EPS) && cli->opt.eps != run->opt.eps)
		REFUSE("--eps", "%s", TRAIN_DOUBLE_TEXT(cli->opt.eps),
		       TRAIN_DOUBLE_TEXT(run->opt.eps));
	if (set & TRAIN_SET_SCHEDULE) {
		train_config tmp = *run;
		tmp.schedule_t_max = 0;
		schedule_text(a, sizeof(a), cli);
		schedule_text(b, sizeof(b), &tmp);
		if (cli->schedule != run->schedule ||
		    (cli->schedule == TRAIN_SCHED_STEP &&
		     (cli->schedule_every != run->schedule_every ||
		      cli->schedule_gamma != run->schedule_gamma)))
			REFUSE("--lr-schedule", "%s", a, b);
	}
	if ((set & TRAIN_SET_MONITOR) && strcmp(cli->monitor, run->monitor) != 0)
		REFUSE("--monitor", "%s", cli->monitor, run->monitor);
#undef REFUSE
	/* take the run's settings; keep what belongs to this invocation */
	train_config merged = *run;
	merged.store_path = cli->store_path;
	if (cli->explicit_set & TRAIN_SET_EPOCHS)
		merged.epochs = cli->epochs; /* else: the target of the run being resumed */
	merged.keep_last = cli->keep_last;
	merged.keep_top = cli->keep_top;
	merged.threads = cli->threads;
	memcpy(merged.device, cli->device, sizeof(merged.device));
	merged.resume = true;
	memcpy(merged.resume_from, cli->resume_from, sizeof(merged.resume_from));
	merged.quiet = cli->quiet;
	merged.no_sync = cli->no_sync;
	merged.explicit_set = cli->explicit_set;
	if (data_elsewhere) { /* recorded from now on: later resumes find the data there */
		memcpy(merged.data_before, run->data, sizeof(merged.data_before));
		memcpy(merged.data, cli->data, sizeof(merged.data));
	}
	*cli = merged;
	return 0;
}

/* ---- signals ------------------------------------------------------------------------------ */

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
	stop_signal = sig;
}

int train_install_signal_handlers(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL))
		return train_fail(-errno, "cannot install signal handlers (%s)", strerror(errno));
	/* SIGHUP: the terminal closed or the ssh connection dropped; stop as cleanly as on ^C,
	 * unless it is ignored (nohup): then the run is meant to outlive the terminal */
	struct sigaction hup;
	if (sigaction(SIGHUP, NULL, &hup))
		return train_fail(-errno, "cannot read the SIGHUP handler (%s)", strerror(errno));
	if (hup.sa_handler != SIG_IGN && sigaction(SIGHUP, &sa, NULL))
		return train_fail(-errno, "cannot install signal handlers (%s)", strerror(errno));
	return 0;
}

/* ---- stdout ------------------------------------------------------------------------------- */

/* The epoch lines are a report of what the store already holds: a stdout that cannot be
 * written (a closed pipe, a full disk, a terminal that went away) must not stop or lose a
 * checkpoint. The first failed write is reported once on stderr; training goes on, nothing
 * more is written to stdout, and ckpt-train exits 1 at the end (train_stdout_failed()). */
static atomic_int stdout_failed;
static const char *stdout_store_path = "";

bool train_stdout_failed(void)
{
	return atomic_load(&stdout_failed) != 0;
}

/* printf to stdout and flush; called from the training and the persist thread */
static void __attribute__((format(printf, 1, 2))) out_line(const char *fmt, ...)
{
	if (atomic_load(&stdout_failed))
		return;
	va_list ap;
	va_start(ap, fmt);
	errno = 0;
	int n = vprintf(fmt, ap);
	va_end(ap);
	int err = errno;
	if (n >= 0 && fflush(stdout) == 0 && !ferror(stdout))
		return;
	if (!err)
		err = errno;
	if (atomic_exchange(&stdout_failed, 1))
		return;
	ckpt_print_line(stderr, "ckpt-train: warning: ",
	                "cannot write to stdout (%s); training goes on and every "
	                "epoch is still checkpointed (list them with: ckpt log %s)",
	                err ? strerror(err) : "write error", stdout_store_path);
}

/* ---- snapshot and persist ----------------------------------------------------------------- */

#define SNAP_MAX_METRICS 16
#define SNAP_MAX_EXTRAS 8

typedef struct snap_tensor {
	char name[96];
	ckpt_tensor_group group;
	uint32_t ndim;
	uint64_t shape[2];
	size_t numel;
	float *data; /* into the slot's staging buffer */
} snap_tensor;

/* Everything one checkpoint commits, on the host, independent of the device's buffers. The
 * tensor table is laid out once; each epoch refills the staging bytes, metrics and extras. */
typedef struct train_snapshot {
	int slot;
	uint32_t epoch;
	uint64_t step;
	double test_acc;
	const char *device;
	size_t ntensors;
	snap_tensor *tensors;
	float *staging;        /* backend host memory (pinned on CUDA) */
	size_t capacity, used; /* floats */
	size_t nmetrics;
	const char *metric_names[SNAP_MAX_METRICS];
	double metric_values[SNAP_MAX_METRICS];
	size_t nextras;
	const char *extra_keys[SNAP_MAX_EXTRAS];
	char *extra_values[SNAP_MAX_EXTRAS];
	char line[512]; /* the epoch's log line, printed once the commit is durable */
} train_snapshot;

/*
 * The background persist: at most one commit in flight, on its own thread, from one of two
 * staging slots; the training loop fills the other slot and waits only when the previous
 * commit is still running at the end of the next epoch. The thread owns the store while it
 * runs (the loop does not touch the store until it joins).
 */
typedef struct train_persister {
	train_backend *be;
	ckpt_store *store;
	bool quiet;
	bool tty;          /* progress is drawn on stderr: clear it before an epoch line */
	unsigned delay_ms; /* CKPT_TRAIN_TEST_PERSIST_DELAY_MS: widen the window for tests */
	bool disabled;     /* CKPT_TRAIN_BENCH_NO_CHECKPOINT: the baseline of bench_gpu.sh */
	train_snapshot slots[2];
	int next; /* slot the next snapshot fills */
	pthread_t thread;
	bool running;
	atomic_int failed; /* set by the thread when its commit failed; read once per batch */
	train_snapshot *inflight;
	int rc;
	char msg[16384];
	uint32_t committed_epoch;
	double committed_test_acc;
	/* CKPT_TRAIN_BENCH_STATS=1: where the time of the commits went, for bench_gpu.sh */
	bool stats;
	unsigned stat_commits;
	double stat_copy_s, stat_commit_s, stat_commit_max_s, stat_waited_s, stat_bytes;
} train_persister;

static double now_seconds(void);

static void snapshot_reset(train_snapshot *s)
{
	for (size_t i = 0; i < s->nextras; i++)
		free(s->extra_values[i]);
	s->nextras = 0;
	s->nmetrics = 0;
	s->line[0] = '\0';
}

static void snapshot_metric(train_snapshot *s, const char *name, double value)
{
	if (s->nmetrics < SNAP_MAX_METRICS) {
		s->metric_names[s->nmetrics] = name;
		s->metric_values[s->nmetrics++] = value;
	}
}

/* takes ownership of @p value (may be NULL: ENOMEM) */
static int snapshot_extra(train_snapshot *s, const char *key, char *value)
{
	if (!value || s->nextras == SNAP_MAX_EXTRAS) {
		free(value);
		return train_fail(-ENOMEM, "out of memory preparing checkpoint state '%s'", key);
	}
	s->extra_keys[s->nextras] = key;
	s->extra_values[s->nextras++] = value;
	return 0;
}

static void persister_free(train_persister *p)
{
	for (int k = 0; k < 2; k++) {
		train_snapshot *s = &p->slots[k];
		snapshot_reset(s);
		if (s->staging)
			p->be->host_free(p->be, s->staging);
		free(s->tensors);
		s->staging = NULL;
		s->tensors = NULL;
	}
}

/* Optimizer state per parameter once the optimizer has stepped (before its first step
 * train_optimizer_state_count() is 0), for sizing the staging slots exactly: @p full tensors
 * of the parameter's size (momentum_buffer; exp_avg, exp_avg_sq) and @p scalar ones of one
 * float (Adam's step). */
static void eventual_state_count(const train_opt_config *cfg, size_t *full, size_t *scalar)
{
	*full = cfg->kind == TRAIN_OPT_SGD ? (cfg->momentum != 0 ? 1 : 0) : 2;
	*scalar = cfg->kind == TRAIN_OPT_SGD ? 0 : 1;
}

/* Allocate both slots: a tensor table and a staging buffer each, big enough for every
 * parameter and optimizer state buffer. Done before the store is created, so a lack of
 * (pinned) memory refuses the run with the store untouched. */
static int persister_init(train_persister *p, train_backend *be, train_mlp *model,
                          train_optimizer *opt, bool quiet)
{
	memset(p, 0, sizeof(*p));
	p->be = be;
	p->quiet = quiet;
	atomic_init(&p->failed, 0);
	const char *delay = getenv("CKPT_TRAIN_TEST_PERSIST_DELAY_MS");
	if (delay && *delay)
		p->delay_ms = (unsigned)strtoul(delay, NULL, 10);
	const char *off = getenv("CKPT_TRAIN_BENCH_NO_CHECKPOINT");
	p->disabled = off && strcmp(off, "1") == 0;
	const char *stats = getenv("CKPT_TRAIN_BENCH_STATS");
	p->stats = stats && strcmp(stats, "1") == 0;
	size_t np = train_mlp_param_count(model), full, scalar;
	eventual_state_count(&opt->cfg, &full, &scalar);
	size_t total = 0;
	for (size_t i = 0; i < np; i++)
		total += train_mlp_param_numel(model, i) * (1 + full) + scalar;
	for (int k = 0; k < 2; k++) {
		train_snapshot *s = &p->slots[k];
		s->slot = k;
		s->device = be->device;
		s->capacity = total;
		s->tensors = calloc(np * (1 + full + scalar), sizeof(snap_tensor));
		s->staging = be->host_alloc(be, total * sizeof(float));
		if (!s->tensors || !s->staging) {
			const char *why = be->last_error(be);
			persister_free(p);
			return train_fail(
			    -ENOMEM,
			    "out of memory for the checkpoint staging buffers (2 x %zu "
			    "bytes of %shost memory)%s%s",
			    total * sizeof(float), strcmp(be->name, "cpu") ? "pinned " : "",
			    why[0] ? ": " : "", why);
		}
	}
	return 0;
}

/* Next table entry of @p s, its data in staging; NULL if the slot is too small. */
static snap_tensor *snapshot_add(train_snapshot *s, size_t numel)
{
	if (s->used + numel > s->capacity)
		return NULL;
	snap_tensor *t = &s->tensors[s->ntensors++];
	t->numel = numel;
	t->data = s->staging + s->used;
	s->used += numel;
	return t;
}

/* Copy parameters and optimizer state into the next free slot's staging buffer: queued on
 * the device's copy stream, so the next epoch's kernels may start at once (they wait on the
 * device, not the host, for the copies). */
static int snapshot_take(train_snapshot **out, train_persister *p, train_mlp *model,
                         train_optimizer *opt, uint32_t epoch)
{
	train_backend *be = p->be;
	train_snapshot *s = &p->slots[p->next];
	snapshot_reset(s);
	s->epoch = epoch;
	s->step = opt->steps;
	s->test_acc = NAN;
	s->ntensors = 0;
	s->used = 0;
	size_t np = train_mlp_param_count(model), ns = train_optimizer_state_count(opt);
	char pname[64];
	uint64_t shape[2];
	be->snapshot_begin(be, s->slot);
	for (size_t i = 0; i < np; i++) {
		snap_tensor *t = snapshot_add(s, train_mlp_param_numel(model, i));
		if (!t)
			goto too_small;
		train_mlp_param_name(model, i, t->name, sizeof(t->name));
		t->group = CKPT_GROUP_MODEL;
		t->ndim = train_mlp_param_shape(model, i, t->shape);
		be->snapshot_copy(be, s->slot, t->data, train_mlp_param(model, i),
		                  t->numel * sizeof(float));
	}
	for (size_t i = 0; i < np; i++) {
		train_mlp_param_name(model, i, pname, sizeof(pname));
		uint32_t ndim = train_mlp_param_shape(model, i, shape);
		for (size_t j = 0; j < ns; j++) {
			const float *buf = train_optimizer_state_buffer(opt, i, j);
			snap_tensor *t = snapshot_add(s, buf ? train_mlp_param_numel(model, i) : 1);
			if (!t)
				goto too_small;
			snprintf(t->name, sizeof(t->name), "%s.%s", pname,
			         train_optimizer_state_name(opt, j));
			t->group = CKPT_GROUP_OPTIMIZER;
			t->shape[0] = shape[0];
			t->shape[1] = shape[1];
			if (buf) {
				t->ndim = ndim;
				be->snapshot_copy(be, s->slot, t->data, buf,
				                  t->numel * sizeof(float));
			} else { /* torch 1.13 keeps Adam's step as a 0-dim float32 tensor */
				t->ndim = 0;
				t->data[0] = (float)opt->steps;
			}
		}
	}
	be->snapshot_end(be, s->slot);
	*out = s;
	return 0;
too_small:
	be->snapshot_end(be, s->slot);
	char ignored[8];
	(void)be->snapshot_wait(be, s->slot, ignored, sizeof(ignored));
	return train_fail(-EOVERFLOW,
	                  "internal error: the checkpoint of epoch %u does not fit its staging "
	                  "buffer (%zu floats)",
	                  epoch, s->capacity);
}

/* One store commit holding everything in @p s. */
static int snapshot_persist(ckpt_store *store, const train_snapshot *s, unsigned delay_ms)
{
	ckpt_writer *w;
	int rc = ckpt_writer_begin(&w, store, s->epoch);
	if (rc)
		return train_fail(rc, "cannot start checkpoint of epoch %u in %s (%s)", s->epoch,
		                  ckpt_store_path(store), ckpt_last_error());
	for (size_t i = 0; i < s->ntensors; i++) {
		const snap_tensor *t = &s->tensors[i];
		rc = ckpt_writer_put_tensor(w, t->name, t->group, CKPT_DTYPE_FLOAT32, t->ndim,
		                            t->shape, s->device, t->data, t->numel * sizeof(float));
		if (rc) {
			ckpt_writer_abort(w);
			return train_fail(rc, "cannot add tensor %s to epoch %u (%s)", t->name,
			                  s->epoch, ckpt_last_error());
		}
	}
	ckpt_writer_set_step(w, s->step);
	for (size_t i = 0; i < s->nmetrics && !rc; i++)
		rc = ckpt_writer_set_metric(w, s->metric_names[i], s->metric_values[i]);
	for (size_t i = 0; i < s->nextras && !rc; i++)
		rc = ckpt_writer_set_extra(w, s->extra_keys[i], s->extra_values[i],
		                           strlen(s->extra_values[i]));
	if (rc) {
		ckpt_writer_abort(w);
		return train_fail(rc, "cannot record the state of epoch %u (%s)", s->epoch,
		                  ckpt_last_error());
	}
	if (delay_ms) { /* tests: a commit that is still open when a signal or a kill lands */
		struct timespec ts = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	rc = ckpt_writer_commit(w);
	if (rc)
		return train_fail(rc, "cannot commit epoch %u to %s (%s)", s->epoch,
		                  ckpt_store_path(store), ckpt_last_error());
	return 0;
}

static void *persist_thread(void *arg)
{
	train_persister *p = arg;
	train_snapshot *s = p->inflight;
	char why[512] = "";
	const double t0 = now_seconds();
	int rc = p->be->snapshot_wait(p->be, s->slot, why, sizeof(why));
	const double t1 = now_seconds();
	if (rc) /* the copies off the device failed: nothing of this epoch is committed */
		rc = train_fail(rc, "cannot checkpoint epoch %u: %s", s->epoch, why);
	else
		rc = snapshot_persist(p->store, s, p->delay_ms);
	if (rc == 0) { /* read by the training thread after it has joined this one */
		const double t2 = now_seconds();
		p->stat_commits++;
		p->stat_copy_s += t1 - t0;
		p->stat_commit_s += t2 - t1;
		if (t2 - t1 > p->stat_commit_max_s)
			p->stat_commit_max_s = t2 - t1;
		p->stat_bytes = (double)s->used * sizeof(float);
	}
	if (rc) {
		snprintf(p->msg, sizeof(p->msg), "%s", train_last_error());
	} else if (!p->quiet) {
		bool is_best = false;
		ckpt_snapshot *check;
		if (ckpt_snapshot_open(&check, p->store) == 0) {
			uint64_t best;
			if (ckpt_snapshot_best(&best, check) == 0)
				is_best = best == s->epoch;
			ckpt_snapshot_close(check);
		}
		/* printed once the epoch is committed: a line on stdout means a durable epoch */
		if (p->tty)
			fprintf(stderr, "\r\033[K");
		out_line("%s%s\n", s->line, is_best ? "  *best" : "");
	}
	p->rc = rc;
	atomic_store(&p->failed, rc != 0);
	return NULL;
}

/* Wait for the commit in flight, if any; its failure becomes this thread's error. */
static int persister_wait(train_persister *p)
{
	if (!p->running)
		return 0;
	pthread_join(p->thread, NULL);
	p->running = false;
	if (p->rc)
		return train_fail(p->rc, "%s", p->msg);
	p->committed_epoch = p->inflight->epoch;
	p->committed_test_acc = p->inflight->test_acc;
	return 0;
}

/* True if the commit in flight has failed (the loop stops at the next batch). */
static bool persister_failed(train_persister *p)
{
	return p->running && atomic_load(&p->failed);
}

/* Wait for the commit in flight and account for it in @p res. */
static int persist_settle(train_persister *p, train_result *res)
{
	int rc = persister_wait(p);
	if (p->committed_epoch > res->last_epoch) {
		res->last_epoch = p->committed_epoch;
		res->last_test_acc = p->committed_test_acc;
	}
	return rc;
}

/* Commit @p s on the background thread, after the previous commit has finished. */
static int persister_start(train_persister *p, train_snapshot *s)
{
	const double t0 = now_seconds();
	int rc = persister_wait(p);
	p->stat_waited_s += now_seconds() - t0; /* the training loop held up by the commit */
	if (rc)
		return rc;
	p->inflight = s;
	p->rc = 0;
	p->msg[0] = '\0';
	atomic_store(&p->failed, 0);
	/* signals stay with the training thread, which decides when to stop */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	rc = pthread_create(&p->thread, NULL, persist_thread, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		return train_fail(-rc, "cannot start the checkpoint thread for epoch %u (%s)",
		                  s->epoch, strerror(rc));
	p->running = true;
	p->next ^= 1;
	return 0;
}

static char *rng_json(const train_rng *rng)
{
	char words[4][17];
	for (int i = 0; i < 4; i++)
		snprintf(words[i], sizeof(words[i]), "%016" PRIx64, rng->s[i]);
	json_t *o = json_pack("{s:s, s:[s,s,s,s]}", "algorithm", "xoshiro256**", "state", words[0],
	                      words[1], words[2], words[3]);
	char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	return text;
}

static int rng_from_json(train_rng *rng, const void *data, size_t len, uint64_t epoch)
{
	json_error_t jerr;
	json_t *o = json_loadb(data, len, 0, &jerr);
	const char *alg, *w[4];
	int rc = 0;
	if (!o ||
	    json_unpack(o, "{s:s, s:[s,s,s,s!]}", "algorithm", &alg, "state", &w[0], &w[1], &w[2],
	                &w[3]) ||
	    strcmp(alg, "xoshiro256**") != 0) {
		rc = train_fail(CKPT_ECORRUPT,
		                "cannot resume from epoch %" PRIu64 ": its train.rng is damaged (not "
		                "a xoshiro256** state of four words)",
		                epoch);
		goto out;
	}
	for (int i = 0; i < 4; i++) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(w[i], &end, 16);
		/* 1 to 16 hexadecimal digits, as rng_json() writes them (strtoull also takes a sign,
		 * blanks and 0x) */
		size_t n = strspn(w[i], "0123456789abcdefABCDEF");
		if (errno || *end || end == w[i] || n == 0 || n > 16 || w[i][n]) {
			rc = train_fail(CKPT_ECORRUPT,
			                "cannot resume from epoch %" PRIu64 ": its train.rng is damaged "
			                "(a word is not hexadecimal)",
			                epoch);
			goto out;
		}
		rng->s[i] = v;
	}
	/* xoshiro256** never leaves the all-zero state (every draw is 0, and a shuffle's
	 * rejection loop would spin forever, deaf to signals): no run can have stored it */
	if ((rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]) == 0)
		rc = train_fail(CKPT_ECORRUPT,
		                "cannot resume from epoch %" PRIu64 ": its train.rng is damaged (an "
		                "all-zero state)",
		                epoch);
out:
	json_decref(o);
	return rc;
}

static char *scheduler_json(const train_config *c, uint32_t epochs_done, double last_lr)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	static const char *const names[] = {"none", "StepLR", "CosineAnnealingLR"};
	int rc = json_object_set_new(o, "name", json_string(names[c->schedule]));
	rc |= json_object_set_new(o, "last_epoch", json_integer(epochs_done));
	rc |= json_object_set_new(o, "base_lr", json_real(c->opt.lr));
	if (c->schedule == TRAIN_SCHED_STEP) {
		rc |= json_object_set_new(o, "step_size", json_integer(c->schedule_every));
		rc |= json_object_set_new(o, "gamma", json_real(c->schedule_gamma));
	} else if (c->schedule == TRAIN_SCHED_COSINE) {
		rc |= json_object_set_new(o, "T_max", json_integer(c->schedule_t_max));
		rc |= json_object_set_new(o, "eta_min", json_integer(0));
	}
	rc |= json_object_set_new(o, "last_lr", json_real(last_lr));
	char *text = rc ? NULL : train_json_dumps(o);
	json_decref(o);
	return text;
}

static char *state_json(uint32_t epoch, uint64_t step, int threads, const char *device)
{
	json_t *o = json_pack("{s:I, s:I, s:I, s:i, s:s}", "epoch", (json_int_t)epoch,
	                      "global_step", (json_int_t)step, "optimizer_steps", (json_int_t)step,
	                      "threads", threads, "device", device);
	char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	return text;
}

/* ---- restore ------------------------------------------------------------------------------ */

static int restore_tensor(ckpt_snapshot *snap, const ckpt_checkpoint *c, train_backend *be,
                          ckpt_tensor_group group, const char *name, uint32_t ndim,
                          const uint64_t *shape, float *device_buf, float *scalar)
{
	const ckpt_tensor_info *t;
	uint64_t epoch = ckpt_checkpoint_epoch(c);
	int rc = ckpt_checkpoint_find_tensor(&t, c, group, name);
	if (rc)
		return train_fail(rc == -ENOENT ? -EINVAL : rc,
		                  "cannot resume from epoch %" PRIu64 ": tensor %s is missing (%s)",
		                  epoch, name, rc == -ENOENT ? "not stored" : ckpt_last_error());
	bool same = t->dtype == CKPT_DTYPE_FLOAT32 && t->ndim == ndim;
	for (uint32_t d = 0; same && d < ndim; d++)
		same = t->shape[d] == shape[d];
	if (!same)
		return train_fail(-EINVAL,
		                  "cannot resume from epoch %" PRIu64
		                  ": tensor %s has another dtype or "
		                  "shape than the model expects",
		                  epoch, name);
	/* never go on training from damaged bytes: check the stored CRC-32 and hash first */
	rc = ckpt_tensor_verify(snap, t);
	if (rc)
		return train_fail(rc,
		                  "cannot resume from epoch %" PRIu64
		                  ": tensor %s is damaged (%s); "
		                  "resume from an earlier epoch (--resume N)",
		                  epoch, name, ckpt_last_error());
	size_t numel = 1;
	for (uint32_t d = 0; d < ndim; d++)
		numel *= shape[d];
	float *host = malloc(numel * sizeof(float));
	if (!host)
		return train_fail(-ENOMEM, "out of memory restoring %s", name);
	rc = ckpt_tensor_read(host, snap, t, 0, numel * sizeof(float));
	if (rc) {
		free(host);
		return train_fail(rc, "cannot read tensor %s of epoch %" PRIu64 " (%s)", name,
		                  epoch, ckpt_last_error());
	}
	if (device_buf)
		be->upload(be, device_buf, host, numel * sizeof(float));
	else
		*scalar = host[0];
	free(host);
	return 0;
}

static int restore_state(ckpt_snapshot *snap, const ckpt_checkpoint *c, train_mlp *model,
                         train_optimizer *opt, train_rng *rng)
{
	uint64_t epoch = ckpt_checkpoint_epoch(c);
	const void *data;
	size_t len;
	int rc = ckpt_checkpoint_extra(c, "train.rng", &data, &len);
	if (rc)
		return train_fail(rc == -ENOENT ? CKPT_ECORRUPT : rc,
		                  "cannot resume from epoch %" PRIu64 ": no RNG state (train.rng)",
		                  epoch);
	rc = rng_from_json(rng, data, len, epoch);
	if (rc)
		return rc;
	opt->steps = ckpt_checkpoint_step(c);
	char name[96], pname[64];
	uint64_t shape[2];
	for (size_t i = 0; i < train_mlp_param_count(model); i++) {
		train_mlp_param_name(model, i, pname, sizeof(pname));
		uint32_t ndim = train_mlp_param_shape(model, i, shape);
		rc = restore_tensor(snap, c, model->be, CKPT_GROUP_MODEL, pname, ndim, shape,
		                    train_mlp_param(model, i), NULL);
		if (rc)
			return rc;
		for (size_t j = 0; j < train_optimizer_state_count(opt); j++) {
			snprintf(name, sizeof(name), "%s.%s", pname,
			         train_optimizer_state_name(opt, j));
			float *buf = train_optimizer_state_buffer(opt, i, j);
			float step = 0;
			rc = restore_tensor(snap, c, model->be, CKPT_GROUP_OPTIMIZER, name,
			                    buf ? ndim : 0, shape, buf, &step);
			if (rc)
				return rc;
			if (!buf && (uint64_t)step != opt->steps)
				return train_fail(CKPT_ECORRUPT,
				                  "cannot resume from epoch %" PRIu64
				                  ": %s is %g but the "
				                  "checkpoint's step is %" PRIu64,
				                  epoch, name, step, opt->steps);
		}
	}
	return 0;
}

/* ---- the loop ----------------------------------------------------------------------------- */

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void evaluate(train_mlp *model, const float *x, const int32_t *y, const uint32_t *seq,
                     uint32_t begin, uint32_t end, double *loss, double *acc)
{
	double loss_sum = 0;
	uint64_t correct = 0;
	for (uint32_t off = begin; off < end; off += model->max_rows) {
		uint32_t rows = end - off < model->max_rows ? end - off : model->max_rows;
		train_mlp_load_batch(model, x, y, seq + off, rows);
		train_mlp_forward_eval(model, rows, &loss_sum, &correct);
	}
	*loss = loss_sum / (double)(end - begin);
	*acc = (double)correct / (double)(end - begin);
}

/* A loss for the progress lines: %.4f as usual, but a magnitude of 1e6 or more (a diverging
 * run) as %.6g, the way `ckpt log` prints it, not 30 digits and a fraction; NaN and infinity
 * as printf writes them. */
static const char *loss_text(char *buf, size_t len, double loss)
{
	if (!isfinite(loss) || fabs(loss) >= 1e6)
		snprintf(buf, len, "%.6g", loss);
	else
		snprintf(buf, len, "%.4f", loss);
	return buf;
}

static void format_eta(char *buf, size_t len, double seconds)
{
	if (!(seconds >= 0) || seconds > 1e7)
		seconds = 0;
	unsigned s = (unsigned)(seconds + 0.5);
	if (s >= 3600)
		snprintf(buf, len, "%u:%02u:%02u", s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(buf, len, "%u:%02u", s / 60, s % 60);
}

/* The stored epochs in (@p after, @p upto] as people read them, into @p buf of @p len bytes:
 * "epoch 5", "epochs 2..6", "epochs 2, 5 and 6", "1200 epochs from 3 to 4000" (bounded
 * length). @return how many there are (0: @p buf is ""; a list that cannot be read counts
 * as none). */
static size_t stored_epochs_text(char *buf, size_t len, ckpt_store *store, uint64_t after,
                                 uint64_t upto)
{
	uint64_t *epochs = NULL;
	size_t n = 0, first = 0;
	ckpt_snapshot *snap = NULL;
	buf[0] = '\0';
	if (!store || ckpt_snapshot_open(&snap, store) != 0)
		return 0;
	if (ckpt_snapshot_list(&epochs, &n, snap) != 0)
		n = 0;
	ckpt_snapshot_close(snap);
	while (first < n && epochs[first] <= after)
		first++;
	while (n > first && epochs[n - 1] > upto)
		n--;
	const uint64_t *e = epochs + first;
	n -= first;
	if (n == 1)
		snprintf(buf, len, "epoch %" PRIu64, e[0]);
	else if (n > 1 && e[n - 1] - e[0] + 1 == n) /* ascending and distinct: no gap */
		snprintf(buf, len, "epochs %" PRIu64 "..%" PRIu64, e[0], e[n - 1]);
	else if (n > 1 && n <= 6) {
		size_t o = (size_t)snprintf(buf, len, "epochs");
		for (size_t i = 0; i < n && o < len; i++)
			o += (size_t)snprintf(buf + o, len - o, "%s%" PRIu64,
			                      i == 0 ? " " : i + 1 == n ? " and " : ", ", e[i]);
	} else if (n > 6)
		snprintf(buf, len, "%zu epochs from %" PRIu64 " to %" PRIu64, n, e[0], e[n - 1]);
	free(epochs);
	return n;
}

/* Where a run that stops now leaves the store, into @p buf: "the store ends at epoch 3", or,
 * when epochs of an earlier run lie past this run's last commit (a resume from an earlier
 * epoch), which epoch this run committed last and which of the earlier run's are still
 * stored. With @p command, also the command that finishes this run's work: it resumes from
 * the epoch this run committed last (or resumed from), not from the newest stored one. */
static void where_run_stops(char *buf, size_t len, ckpt_store *store, const train_config *c,
                            uint32_t start_epoch, uint32_t last_saved, bool command)
{
	char older[96];
	size_t nolder = stored_epochs_text(older, sizeof(older), store, last_saved, UINT64_MAX);
	size_t o;
	if (nolder == 0)
		o = (size_t)snprintf(buf, len, "the store ends at epoch %u", last_saved);
	else if (last_saved > start_epoch)
		o = (size_t)snprintf(buf, len,
		                     "this run resumed from epoch %u and committed epoch %u last; %s "
		                     "of the earlier run %s still stored",
		                     start_epoch, last_saved, older, nolder == 1 ? "is" : "are");
	else
		o = (size_t)snprintf(buf, len,
		                     "this run resumed from epoch %u and committed none; %s of the "
		                     "earlier run %s still stored",
		                     start_epoch, older, nolder == 1 ? "is" : "are");
	if (!command || o >= len)
		return;
	char quoted[4 * 4096 + 3]; /* a PATH_MAX path, every byte a quote at worst */
	o += (size_t)snprintf(buf + o, len - o, ": continue with: ckpt-train --store %s",
	                      ckpt_shell_word(quoted, sizeof(quoted), c->store_path));
	/* a path given on a resume may be where the data moved: the checkpoint resumed from
	 * may record the old one */
	if (o < len && c->resume && (c->explicit_set & TRAIN_SET_DATA))
		o += (size_t)snprintf(buf + o, len - o, " --data %s",
		                      ckpt_shell_word(quoted, sizeof(quoted), c->data));
	if (o >= len)
		return;
	if (nolder)
		snprintf(buf + o, len - o, " --resume %u --epochs %u", last_saved, c->epochs);
	else
		snprintf(buf + o, len - o, " --resume --epochs %u", c->epochs);
}

/* A resume from epoch @p from with target @p epochs, in a store that holds later epochs of an
 * earlier run: a note names those this run trains again (each is replaced when its new
 * checkpoint commits; until then the old one stays), a warning those past the target. */
static void note_earlier_epochs(ckpt_store *store, uint32_t from, uint32_t epochs)
{
	char list[96];
	for (int past = 0; past < 2; past++) {
		size_t n = past ? stored_epochs_text(list, sizeof(list), store,
		                                     epochs > from ? epochs : from, UINT64_MAX)
		                : stored_epochs_text(list, sizeof(list), store, from, epochs);
		bool one = n == 1;
		if (n && !past)
			ckpt_print_line(stderr, "ckpt-train: note: ",
			                "resuming from epoch %u: stored %s of the earlier run %s "
			                "replaced as %s trained again",
			                from, list, one ? "is" : "are", one ? "it is" : "they are");
		else if (n)
			ckpt_print_line(stderr, "ckpt-train: warning: ",
			                "resuming from epoch %u; %s of the earlier run %s in the store "
			                "(raise --epochs to replace %s)",
			                from, list, one ? "stays" : "stay", one ? "it" : "them");
	}
}

/* A stop signal arrived: let the commit in flight finish (no committed epoch is lost), then
 * say where the store ends. @return the error ckpt-train exits with. */
static int stop_on_signal(train_persister *p, train_result *res, const train_config *c,
                          uint32_t start_epoch, uint32_t epoch, uint32_t batch,
                          uint32_t nbatches)
{
	int sig = stop_signal;
	res->signal = sig;
	int rc = persist_settle(p, res);
	if (rc)
		return rc;
	uint32_t last_saved = res->last_epoch;
	const char *name = sig == SIGINT    ? "SIGINT"
	                   : sig == SIGTERM ? "SIGTERM"
	                   : sig == SIGHUP  ? "SIGHUP"
	                                    : "a signal";
	/* where the signal found the run: in an epoch, or before its first batch (while the data
	 * loaded, or after the previous epoch's commit) */
	char where[64];
	if (batch == 0)
		snprintf(where, sizeof(where), "before epoch %u began", epoch);
	else
		snprintf(where, sizeof(where), "in epoch %u (batch %u/%u)", epoch, batch, nbatches);
	if (last_saved == 0)
		return train_fail(TRAIN_EINTERRUPTED,
		                  "interrupted by %s %s; nothing was saved: run the same command again "
		                  "to start over",
		                  name, where);
	char lost[48] = "";
	if (batch > 0)
		snprintf(lost, sizeof(lost), "epoch %u was not saved, ", epoch);
	char stops[3 * 4096 * 4 + 512];
	where_run_stops(stops, sizeof(stops), p->store, c, start_epoch, last_saved, true);
	return train_fail(TRAIN_EINTERRUPTED, "interrupted by %s %s; %s%s", name, where, lost,
	                  stops);
}

/* A device failure the backend recorded (a lost GPU, a faulting kernel): stop as on any
 * error, after the commit in flight, saying where the store ends. @p where: "in epoch 3
 * (batch 7/430)" and the like. @return 0 if the device is fine. */
static int check_device(train_backend *be, train_persister *p, train_result *res,
                        const train_config *c, uint32_t start_epoch, const char *where)
{
	int rc = be->status(be);
	if (!rc)
		return 0;
	char why[600];
	snprintf(why, sizeof(why), "%s", be->last_error(be));
	(void)persist_settle(p, res); /* the device's failure is the one to report */
	if (res->last_epoch == 0)
		return train_fail(rc, "%s %s; nothing was saved", why, where);
	char stops[512];
	where_run_stops(stops, sizeof(stops), p->store, c, start_epoch, res->last_epoch, false);
	return train_fail(rc, "%s %s; %s", why, where, stops);
}

/* A hyper-parameter's value as an option takes it: 0.1, 16, true, 0.9,0.999, cosine. */
static void hyperparam_text(char *buf, size_t len, const json_t *v)
{
	if (!v)
		snprintf(buf, len, "(none)");
	else if (json_is_real(v))
		train_double_text(buf, len, json_real_value(v));
	else if (json_is_integer(v))
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, len, "%s", json_is_true(v) ? "true" : "false");
	else if (json_is_string(v))
		snprintf(buf, len, "%s", json_string_value(v));
	else if (json_is_array(v)) {
		size_t o = 0, i;
		json_t *e;
		buf[0] = '\0';
		json_array_foreach(v, i, e) {
			if (o + 1 >= len)
				break;
			if (i)
				buf[o++] = ',', buf[o] = '\0';
			hyperparam_text(buf + o, len - o, e);
			o += strlen(buf + o);
		}
	} else
		snprintf(buf, len, "?");
}

/* The hyper-parameters of @p theirs (a store's run.json text) that differ from @p mine, as
 * "--lr 0.1 there, 0.5 here; --momentum 0.8 there, 0.9 here" into @p buf. @return false if
 * either text is not a JSON object (@p buf is then ""). */
static bool hyperparams_diff(char *buf, size_t len, const char *theirs, const char *mine)
{
	static const char *const options[][2] = {
	    {"lr", "--lr"},
	    {"momentum", "--momentum"},
	    {"dampening", "--dampening"},
	    {"nesterov", "--nesterov"},
	    {"betas", "--betas"},
	    {"eps", "--eps"},
	    {"weight_decay", "--weight-decay"},
	    {"batch_size", "--batch-size"},
	    {"lr_schedule", "--lr-schedule"},
	    {"T_max", "--epochs (the cosine period)"},
	    {"val_split", "--val-split"},
	};
	json_t *a = json_loads(theirs, 0, NULL), *b = json_loads(mine, 0, NULL);
	size_t o = 0;
	buf[0] = '\0';
	bool ok = json_is_object(a) && json_is_object(b);
	const char *key;
	json_t *v;
	if (ok) {
		/* a key on one side only follows from another difference (T_max from the
		 * schedule) */
		json_object_foreach(b, key, v) {
			json_t *va = json_object_get(a, key);
			if (!va || json_equal(va, v) || o >= len)
				continue;
			const char *name = key;
			for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
				if (strcmp(options[i][0], key) == 0)
					name = options[i][1];
			char there[96], here[96];
			hyperparam_text(there, sizeof(there), va);
			hyperparam_text(here, sizeof(here), v);
			o += (size_t)snprintf(buf + o, len - o, "%s%s %s there, %s here", o ? "; " : "",
			                      name, there, here);
		}
	}
	json_decref(a);
	json_decref(b);
	return ok;
}

/* How open_or_create_store() found the store: 0 reused, 1 created in an existing (empty)
 * directory, 2 created with its directory. */
enum { STORE_REUSED = 0, STORE_CREATED = 1, STORE_CREATED_DIR = 2 };

static int open_or_create_store(ckpt_store **out, train_config *c, int *how)
{
	struct stat st;
	bool dir_existed = stat(c->store_path, &st) == 0;
	*how = STORE_REUSED;
	if (!dir_existed && lstat(c->store_path, &st) == 0 && S_ISLNK(st.st_mode))
		return train_fail(-ENOENT,
		                  "cannot create store %s: it is a symbolic link to a missing "
		                  "target",
		                  c->store_path);
	char *hyper = hyperparams_json(c);
	if (!hyper)
		return train_fail(-ENOMEM, "out of memory describing the run");
	ckpt_run_meta meta = {
	    .model = "mlp",
	    .layers = c->layers,
	    .optimizer = train_opt_name(c->opt.kind),
	    .hyperparams = hyper,
	    .dataset = c->data,
	    .seed = c->seed,
	    .monitor = c->monitor,
	    .monitor_mode = strcmp(c->monitor, "val_acc") == 0 ? CKPT_MODE_MAX : CKPT_MODE_MIN,
	};
	ckpt_store_options opts = {
	    .keep_last = c->keep_last,
	    .keep_top = c->keep_top,
	    .no_sync = c->no_sync,
	};
	int rc = ckpt_store_create(out, c->store_path, &meta, &opts);
	if (rc == 0)
		*how = dir_existed ? STORE_CREATED : STORE_CREATED_DIR;
	if (rc == -EEXIST) {
		/* an existing store may be reused only if it holds no checkpoint of the same run */
		ckpt_store *store;
		int orc = ckpt_store_open(&store, c->store_path, 0);
		if (orc) {
			rc = train_fail(
			    rc, "cannot create store %s (it exists and is not a usable store: %s)",
			    c->store_path, ckpt_last_error());
			goto out;
		}
		ckpt_snapshot *snap = NULL;
		uint64_t latest = 0;
		orc = ckpt_snapshot_open(&snap, store);
		if (!orc)
			orc = ckpt_snapshot_latest(&latest, snap);
		ckpt_snapshot_close(snap);
		const ckpt_run_meta *m = ckpt_store_meta(store);
		if (orc != -ENOENT) {
			rc = train_fail(
			    -EEXIST,
			    "store %s already holds a run (use --resume to continue it, or "
			    "another --store)",
			    c->store_path);
			ckpt_store_close(store);
			goto out;
		}
		/* name every setting that differs, with the store's value and this run's */
		char seed_was[32], seed_now[32];
		snprintf(seed_was, sizeof(seed_was), "%llu", (unsigned long long)m->seed);
		snprintf(seed_now, sizeof(seed_now), "%llu", (unsigned long long)c->seed);
		const struct {
			const char *what, *was, *now;
		} fields[] = {
		    {"--layers", m->layers ? m->layers : "", c->layers},
		    {"--optimizer", m->optimizer ? m->optimizer : "", meta.optimizer},
		    {"--data", m->dataset ? m->dataset : "", c->data},
		    {"--seed", seed_was, seed_now},
		    {"--monitor", m->monitor ? m->monitor : "", c->monitor},
		};
		char all[2048] = "";
		size_t n = 0;
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			if (strcmp(fields[i].was, fields[i].now) != 0 && n < sizeof(all))
				n += (size_t)snprintf(all + n, sizeof(all) - n, "%s%s %s there, %s here",
				                      n ? "; " : "", fields[i].what, fields[i].was,
				                      fields[i].now);
		const char *was_hyper = m->hyperparams ? m->hyperparams : "";
		if (strcmp(was_hyper, hyper) != 0 && n < sizeof(all)) {
			char diff[1024];
			if (hyperparams_diff(diff, sizeof(diff), was_hyper, hyper) && diff[0])
				n += (size_t)snprintf(all + n, sizeof(all) - n, "%s%s", n ? "; " : "", diff);
			else
				n += (size_t)snprintf(all + n, sizeof(all) - n, "%shyper-parameters %s",
				                      n ? "; " : "", was_hyper);
		}
		if (n) {
			rc = train_fail(-EEXIST,
			                "store %s holds no checkpoint but was created for a run with "
			                "other settings (%s); remove it or use another --store",
			                c->store_path, all);
			ckpt_store_close(store);
			goto out;
		}
		*out = store;
		rc = 0;
	} else if (rc) {
		rc =
		    train_fail(rc, "cannot create store %s (%s)", c->store_path, ckpt_last_error());
	}
out:
	free(hyper);
	return rc;
}

/* One ckpt-train writes a store at a time: an exclusive flock(2) on the store's data.mdb
 * (LMDB itself uses fcntl locks on lock.mdb only), held until the process exits. Readers, the
 * mount and `ckpt gc` are not affected. @return 0 with *fd set (-1 where the file system
 * has no flock), or the error ckpt-train exits with. */
static int lock_store(int *fd, const char *store_path)
{
	char who[512];
	int state = ckpt_writer_lock(store_path, fd, who, sizeof(who));
	if (state < 0)
		return train_fail(state, "cannot open %s/data.mdb (%s)", store_path, strerror(-state));
	if (state == CKPT_WRITER_READERS)
		return train_fail(-EBUSY,
		                  "store %s is being read by %s without lock.mdb; a trainer cannot "
		                  "write under it: stop that reader, or give the reader a writable "
		                  "lock.mdb",
		                  store_path, who[0] ? who : "a process");
	if (state == CKPT_WRITER_BUSY)
		return train_fail(-EBUSY,
		                  "store %s is in use by another ckpt-train%s%s: one run writes a "
		                  "store at a time; wait for it or use another --store",
		                  store_path, who[0] ? ", " : "", who);
	return 0;
}

/* A run that created its store and fails before any checkpoint is committed (bad settings
 * found late, a NaN loss, a signal, a full disk) removes that store again, so the same --store
 * can be used with other settings: nothing half-written stays behind. @p committed is the
 * number of epochs this run committed, as the engine counted them: the store is not asked,
 * since after a failed map resize its environment must not be touched again. Closes @p store.
 */
static void drop_empty_store(ckpt_store *store, const char *path, int how, uint32_t committed)
{
	ckpt_store_close(store);
	if (committed)
		return;
	/* the run has said why it failed; a store it could not remove is worth a second line,
	 * since the next run at this path would find it */
	int rc = ckpt_store_discard(path, how == STORE_CREATED_DIR);
	if (rc == -ENOTEMPTY)
		ckpt_print_line(stderr, "ckpt-train: note: ",
		                "the empty store this run created at %s was removed; the directory "
		                "stays, as other files were put in it",
		                path);
	else if (rc != 0)
		ckpt_print_line(stderr, "ckpt-train: warning: ",
		                "the empty store this run created at %s was not removed (%s)", path,
		                ckpt_last_error());
}


int train_parse_resume_spec(uint64_t *out_epoch, const char *spec)
{
	*out_epoch = 0;
	if (strcmp(spec, "latest") == 0 || strcmp(spec, "best") == 0)
		return 0;
	char *end;
	errno = 0;
	if (strncmp(spec, "epoch-", 6) == 0) /* a directory name of the mount, as `ckpt` */
		spec += 6;
	unsigned long long v = strtoull(spec, &end, 10);
	if (*end || end == spec || spec[0] < '0' || spec[0] > '9' || v == 0)
		return -EINVAL;
	/* an epoch number of any size is one: past what a store holds, no store has it */
	*out_epoch = errno == ERANGE ? UINT64_MAX : v;
	return 0;
}

static uint32_t resolve_epoch(ckpt_snapshot *snap, const char *spec, int *rc)
{
	uint64_t e = 0;
	*rc = 0;
	if (strcmp(spec, "latest") == 0) {
		*rc = ckpt_snapshot_latest(&e, snap);
	} else if (strcmp(spec, "best") == 0) {
		*rc = ckpt_snapshot_best(&e, snap);
	} else {
		uint64_t v;
		if ((*rc = train_parse_resume_spec(&v, spec)) != 0)
			return 0;
		const ckpt_checkpoint *c;
		*rc = v > CKPT_MAX_EPOCH ? -ENOENT : ckpt_snapshot_checkpoint(&c, snap, v);
		e = v;
	}
	if (*rc == 0 && e > TRAIN_MAX_EPOCHS) { /* not written by ckpt-train */
		*rc = -ERANGE;
		return 0;
	}
	return (uint32_t)e;
}

/* --resume EPOCH names an epoch the store does not hold: say which it holds. */
static int epoch_not_in_store(ckpt_snapshot *snap, const train_config *c)
{
	const char *spec = c->resume_from + (strncmp(c->resume_from, "epoch-", 6) ? 0 : 6);
	uint64_t *epochs = NULL;
	size_t n = 0;
	char has[256];
	int rc = ckpt_snapshot_list(&epochs, &n, snap);
	if (rc)
		snprintf(has, sizeof(has), "its list cannot be read: %s", ckpt_last_error());
	else if (n == 0)
		snprintf(has, sizeof(has), "it has no checkpoint");
	else if (n == 1)
		snprintf(has, sizeof(has), "it has epoch-%04" PRIu64 " only", epochs[0]);
	else if (epochs[n - 1] - epochs[0] + 1 == n) /* ascending and distinct: no gap */
		snprintf(has, sizeof(has), "it has epoch-%04" PRIu64 "..epoch-%04" PRIu64,
		         epochs[0], epochs[n - 1]);
	else {
		size_t o = (size_t)snprintf(has, sizeof(has), "it has %zu checkpoints:", n);
		for (size_t i = 0; i < n && i < 6 && o < sizeof(has); i++)
			o += (size_t)snprintf(has + o, sizeof(has) - o, "%s epoch-%04" PRIu64,
			                      i ? "," : "", epochs[i]);
		if (n > 6 && o < sizeof(has))
			snprintf(has + o, sizeof(has) - o, ", ... epoch-%04" PRIu64, epochs[n - 1]);
	}
	free(epochs);
	errno = 0;
	unsigned long long e = strtoull(spec, NULL, 10);
	if (errno == ERANGE) /* its digits, as given */
		return train_fail(-ENOENT, "cannot resume: epoch %s is not in store %s (%s)", spec,
		                  c->store_path, has);
	return train_fail(-ENOENT, "cannot resume: epoch-%04llu is not in store %s (%s)", e,
	                  c->store_path, has);
}

/* A data directory or CSV file is recorded as an absolute path, so a resume from another
 * working directory finds it; names that do not resolve are kept for the loader to report. */
static void absolute_data_path(train_config *c)
{
	if (strcmp(c->data, "fashion-mnist") == 0 || strcmp(c->data, "synthetic") == 0)
		return;
	char *abs = realpath(c->data, NULL);
	if (abs && strlen(abs) < sizeof(c->data))
		memcpy(c->data, abs, strlen(abs) + 1);
	free(abs);
}

/* The run's target for a resume without --epochs: what the run that committed last aimed for
 * (the newest commit by commit time, as the mount's `latest`, not the highest epoch: after
 * --epochs 10 and then --resume 2 --epochs 3, epoch 3 is the newest commit and 3 the target).
 * @p from_target is epoch @p from's recorded target, kept when @p from is the newest commit,
 * when the newest commit's target is below @p from, or when its train.config cannot be read. */
static uint32_t latest_target(ckpt_snapshot *snap, uint32_t from, uint32_t from_target)
{
	uint64_t *epochs = NULL, newest_epoch = from;
	size_t count = 0;
	int64_t newest_ns = INT64_MIN;
	const ckpt_checkpoint *c;
	if (ckpt_snapshot_list(&epochs, &count, snap) != 0)
		return from_target;
	for (size_t i = 0; i < count; i++) { /* equal times: the higher epoch */
		if (ckpt_snapshot_checkpoint(&c, snap, epochs[i]) == 0 &&
		    ckpt_checkpoint_time_ns(c) >= newest_ns) {
			newest_ns = ckpt_checkpoint_time_ns(c);
			newest_epoch = epochs[i];
		}
	}
	free(epochs);
	const void *text;
	size_t len;
	if (newest_epoch == from || ckpt_snapshot_checkpoint(&c, snap, newest_epoch) != 0 ||
	    ckpt_checkpoint_extra(c, "train.config", &text, &len) != 0)
		return from_target;
	train_config newest_run;
	train_config_defaults(&newest_run);
	if (config_from_json(&newest_run, text, len, newest_epoch) != 0) {
		train_clear_error(); /* not this run's failure: epoch @p from's target stands */
		return from_target;
	}
	return newest_run.epochs >= from ? newest_run.epochs : from_target;
}

/* Retention and monitoring settings that could not act: a best checkpoint needs validation
 * metrics, and keeping the best K matters only when the newest N are not all kept anyway.
 * @p keep_last is the retention the run will have (on resume: the store's unless given). */
static int check_retention(const train_config *c, uint32_t keep_last)
{
	const unsigned set = c->explicit_set;
	if (c->val_split == 0 && ((set & TRAIN_SET_MONITOR) || c->keep_top > 0))
		return train_fail(-EINVAL,
		                  "%s%s needs validation samples, and %s--val-split 0 leaves none "
		                  "(no checkpoint can be best)",
		                  (set & TRAIN_SET_MONITOR) ? "--monitor " : "--keep-top",
		                  (set & TRAIN_SET_MONITOR) ? c->monitor : "",
		                  c->resume ? "the run's " : "");
	if (c->keep_top > 0 && keep_last == 0)
		return train_fail(-EINVAL,
		                  "--keep-top %u has no effect without --keep-last N (every "
		                  "checkpoint is kept)",
		                  c->keep_top);
	return 0;
}

/* A resumed run must see the data set it started with: same sample counts, image shape,
 * labels and pixels, wherever the data now lies (--data NEWPATH). The first run records them
 * (so do resumes of runs from before they were recorded, for what was not). */
static int check_data_unchanged(train_config *c, const train_data *data)
{
	uint32_t labels = 0, pixels = 0; /* = zlib's crc32(), as older stores recorded */
	const train_dataset *sets[2] = {&data->train, &data->test};
	for (int s = 0; s < 2; s++) {
		labels = ckpt_crc32(labels, sets[s]->y, (size_t)sets[s]->count * sizeof(int32_t));
		pixels = ckpt_crc32(pixels, sets[s]->x,
		                    (size_t)sets[s]->count * sets[s]->features * sizeof(float));
	}
	char diff[512] = "";
	size_t n = 0;
#define DIFFER(...)                                                                                \
	do {                                                                                       \
		if (n < sizeof(diff))                                                              \
			n += (size_t)snprintf(diff + n, sizeof(diff) - n, "%s", n ? "; " : "");    \
		if (n < sizeof(diff))                                                              \
			n += (size_t)snprintf(diff + n, sizeof(diff) - n, __VA_ARGS__);            \
	} while (0)
	if (c->resume && c->data_known) {
		if (c->data_train_count != data->train.count)
			DIFFER("%u training samples, not %u", data->train.count,
			       c->data_train_count);
		if (c->data_test_count != data->test.count)
			DIFFER("%u test samples, not %u", data->test.count, c->data_test_count);
		if (c->data_pixels_known &&
		    (c->data_rows != data->train.rows || c->data_cols != data->train.cols))
			DIFFER("images of %u x %u, not %u x %u", data->train.rows, data->train.cols,
			       c->data_rows, c->data_cols);
		if (!n && c->data_labels_crc32 != labels)
			DIFFER("other labels");
		if (!n && c->data_pixels_known && c->data_pixels_crc32 != pixels)
			DIFFER("other pixels");
	}
#undef DIFFER
	if (n && c->data_before[0])
		return train_fail(
		    -EINVAL,
		    "refusing to resume: --data %s is not the run's data set (%s): it "
		    "has %s",
		    c->data, c->data_before, diff);
	if (n)
		return train_fail(-EINVAL,
		                  "refusing to resume: the data %s has changed since the run "
		                  "started: it has %s",
		                  c->data, diff);
	c->data_known = true;
	c->data_train_count = data->train.count;
	c->data_test_count = data->test.count;
	c->data_labels_crc32 = labels;
	c->data_pixels_known = true;
	c->data_rows = data->train.rows;
	c->data_cols = data->train.cols;
	c->data_pixels_crc32 = pixels;
	return 0;
}

/* A CSV without its test file trains without a test set: say so once, as it is easy to miss
 * (the epoch lines and the checkpoints' metrics simply have no test_loss/test_acc). */
static void note_no_test_set(const char *csv)
{
	char test[4096];
	if (train_csv_test_sibling(test, sizeof(test), csv))
		ckpt_print_line(stderr, "ckpt-train: note: ",
		                "no test set: %s not found; test_loss and test_acc are "
		                "not recorded",
		                test);
	else
		ckpt_print_line(
		    stderr, "ckpt-train: note: ",
		    "no test set: the name of %s has no 'train' to replace "
		    "with 'test' for a test file; test_loss and test_acc are not recorded",
		    csv);
}

/* Notes on the training CSV @p csv and its test file, each named:
 * - line 1 holding the column indices 0,1,...,n-1 is read as pandas' header, which drops it:
 *   say so, in case it was a sample;
 * - pixels that were scaled to [0, 1] before the file was written (pandas after / 255) are
 *   divided by 255 again here and train, or test, at chance without any error: say so. A
 *   0..255 training file beside a scaled test file gives a wrong test accuracy just as
 *   silently. */
static void note_csv_files(const train_data *data, const char *csv)
{
	char test[4096];
	const char *paths[2] = {csv, train_csv_test_sibling(test, sizeof(test), csv) ? test : NULL};
	const train_dataset *sets[2] = {&data->train, &data->test};
	for (size_t i = 0; i < 2; i++) {
		if (!paths[i])
			continue;
		if (sets[i]->index_header)
			ckpt_print_line(stderr, "ckpt-train: note: ",
			                "line 1 of %s (0,1,...,%u) is read as a header of column "
			                "indices, as pandas writes, not as a sample",
			                paths[i], sets[i]->features);
		if (sets[i]->unit_range)
			ckpt_print_line(stderr, "ckpt-train: note: ",
			                "every feature value in %s lies in [0, 1]: they look scaled "
			                "already, but ckpt-train expects pixels 0..255 and divides "
			                "them by 255",
			                paths[i]);
	}
}

/* Linux overcommits: a model larger than the memory left is not refused by malloc but
 * OOM-killed when its pages are first touched, without a word. So what the run still has to
 * allocate is compared with what is available before anything large is (the data set is
 * loaded already and counted by the kernel). On a GPU the model lives in device memory (the
 * backend checks that); the host holds the staging buffers. */
/* The store's LMDB map is address space too: under RLIMIT_AS (ulimit -v) a map that cannot
 * grow fails a commit mid-run. The map holds the checkpoints the store keeps (every epoch's,
 * or keep-last + keep-top + the one being written) and grows by doubling, so it may reach
 * twice their size. @p need is the memory the run allocates; @p ckpt_bytes one checkpoint. */
static int check_map_room(const train_config *c, uint32_t start_epoch, double need,
                          double ckpt_bytes)
{
	uint64_t room;
	if (!train_memory_address_space(&room))
		return 0;
	/* Address space that is not memory yet: OpenBLAS gives every thread that runs a GEMM a
	 * 128 MiB buffer, and retries its allocation forever (at full CPU, deaf to signals) when
	 * the limit refuses it; every thread also reserves an 8 MiB stack, and the checkpoint
	 * thread's malloc a 64 MiB arena. @p need counted 64 MiB for these. Only the CPU backend
	 * runs BLAS on the host. */
	double counted = 64 << 20; /* of those mapped already, the ones @p need counts */
	if (strcmp(c->device, "cpu") == 0) {
		long online = sysconf(_SC_NPROCESSORS_ONLN);
		double threads = c->threads > 0 ? c->threads : online > 0 ? (double)online : 1;
		/* the buffer OpenBLAS maps at start stays beside those of the GEMM threads (a run
		 * of one thread at a limit that leaves room for one buffer spins) */
		double buffers = threads + 1;
		double reserved = buffers * (128 << 20) + (threads + 2) * (8 << 20) + (64 << 20);
		if (reserved > (64 << 20))
			need += reserved - (64 << 20);
		counted += buffers * (128 << 20);
	}
	/* OpenBLAS maps its buffer at start only when the limit allows it, and a thread's arena
	 * may or may not be there yet: what is mapped of these now is counted in @p need, not
	 * twice, so the same run needs the same limit whatever it was started under */
	uint64_t in_use = 0;
	double mapped = (double)train_memory_mapped_reservations(&in_use);
	struct rlimit rl;
	double limit = getrlimit(RLIMIT_AS, &rl) == 0 ? (double)rl.rlim_cur : (double)room;
	if (in_use) /* VmSize as the same reading saw it: a thread may map one meanwhile */
		room = limit > (double)in_use ? (uint64_t)(limit - (double)in_use) : 0;
	room += (uint64_t)(mapped < counted ? mapped : counted);
	/* a commit holds the pages it writes in memory until it commits (LMDB's dirty pages):
	 * up to one checkpoint's bytes */
	need += ckpt_bytes;
	double held = c->epochs > start_epoch ? c->epochs - start_epoch : 0;
	if (c->keep_last && (double)c->keep_last + c->keep_top + 1 < held)
		held = (double)c->keep_last + c->keep_top + 1;
	double map = 2 * held * ckpt_bytes;
	if (need + map <= (double)room)
		return 0;
	char s_need[32], s_map[32], s_ckpt[32], s_room[32];
	train_memory_format(s_need, sizeof(s_need), need);
	train_memory_format(s_map, sizeof(s_map), map);
	train_memory_format(s_ckpt, sizeof(s_ckpt), ckpt_bytes);
	train_memory_format(s_room, sizeof(s_room), (double)room);
	char s_total[32];
	train_memory_format(s_total, sizeof(s_total), need + map);
	/* the whole of it, and the limit that holds it beside what the process maps already
	 * (libraries, the data set), in ulimit -v's KiB: one raise of the limit is enough.
	 * Fewer checkpoints help only when training and one checkpoint's map fit. */
	/* a margin for the few KiB the libraries' start maps more or less, run to run */
	double want_kib = ceil((limit - (double)room + need + map + (8 << 20)) / 1024);
	bool fewer = held > 1 && need + 2 * ckpt_bytes <= (double)room;
	return train_fail(-ENOMEM,
	                  "not enough address space for this run under ulimit -v: it needs %s "
	                  "for training (model, buffers, BLAS and thread reservations, a commit's "
	                  "pages) and up to "
	                  "%s for the store's map (%.0f checkpoint%s of %s, the map grows by "
	                  "doubling), %s in all, and %s is left; raise it to ulimit -v %.0f%s "
	                  "(--layers %s)",
	                  s_need, s_map, held, held == 1 ? "" : "s", s_ckpt, s_total, s_room,
	                  want_kib, fewer ? ", or keep fewer checkpoints (--keep-last)" : "",
	                  c->layers);
}

/* What a run holds, in floats: parameters (and as many gradients), the largest layer,
 * activations with their gradients for batches of up to max_rows rows, and the optimizer's
 * full-size state tensors per parameter; then the bytes of the data set and of both staging
 * slots as persister_init() sizes them (Adam's step is one float per parameter tensor). */
typedef struct run_sizes {
	double params, largest, activations, states, data_bytes, staging_bytes;
} run_sizes;

static void run_sizes_of(run_sizes *z, const train_config *c, const train_data *data,
                         uint32_t max_rows)
{
	memset(z, 0, sizeof(*z));
	for (uint32_t l = 0; l + 1 < c->nsizes; l++) {
		double n = (double)c->sizes[l] * c->sizes[l + 1];
		z->params += n + c->sizes[l + 1];
		z->largest = n > z->largest ? n : z->largest;
	}
	for (uint32_t l = 0; l < c->nsizes;
	     l++) /* activations, and their gradients but the input's */
		z->activations += (double)max_rows * c->sizes[l] * (l ? 2 : 1);
	z->activations += max_rows; /* labels */
	size_t full, scalar;
	eventual_state_count(&c->opt, &full, &scalar);
	z->states = (double)full;
	const double f = sizeof(float);
	double tensors = 2.0 * (c->nsizes - 1);
	z->staging_bytes = 2 * (z->params * (1 + z->states) + tensors * scalar) * f;
	z->data_bytes = ((double)data->train.count * (data->train.features + 1) +
	                 (double)data->test.count * (data->test.features + 1)) *
	                f;
}

static bool memory_check_disabled(void)
{
	const char *off = getenv("CKPT_TRAIN_TEST_NO_MEMORY_CHECK");
	return off && strcmp(off, "1") == 0;
}

/* On a GPU the model, its gradients, optimizer state, activations and the data set live in
 * device memory: checked against what the device has free before the host's memory (the
 * host then holds only the staging slots), so a model too big for the GPU is refused naming
 * the device and the sizes, whatever the host has. The CPU backend has no device memory. */
static int check_device_memory(const train_config *c, train_backend *be, const train_data *data,
                               uint32_t max_rows)
{
	uint64_t free_b, total_b;
	if (memory_check_disabled())
		return 0;
	int rc = be->memory(be, &free_b, &total_b);
	if (rc == -ENOTSUP)
		return 0;
	if (rc)
		return train_fail(rc, "cannot read the memory of %s: %s", be->device,
		                  be->last_error(be));
	run_sizes z;
	run_sizes_of(&z, c, data, max_rows);
	const double f = sizeof(float);
	double need = (2 + z.states) * z.params * f + z.activations * f + z.data_bytes +
	              (double)max_rows * 16 /* per-row loss, hit, index */ +
	              (64 << 20) /* cuBLAS's workspace and the runtime's own buffers */;
	if (need <= (double)free_b)
		return 0;
	char s_need[32], s_free[32], s_total[32], s_params[32], s_states[32], s_act[32],
	    s_data[32];
	train_memory_format(s_need, sizeof(s_need), need);
	train_memory_format(s_free, sizeof(s_free), (double)free_b);
	train_memory_format(s_total, sizeof(s_total), (double)total_b);
	train_memory_format(s_params, sizeof(s_params), z.params * f);
	train_memory_format(s_states, sizeof(s_states), z.states * z.params * f);
	train_memory_format(s_act, sizeof(s_act), z.activations * f);
	train_memory_format(s_data, sizeof(s_data), z.data_bytes);
	return train_fail(-ENOMEM,
	                  "out of GPU memory on %s: this run needs %s there (parameters %s, "
	                  "gradients %s, optimizer state %s, activations %s, the data set %s) and "
	                  "%s has %s free of %s (--layers %s, batches of up to %u rows)",
	                  be->device, s_need, s_params, s_params, s_states, s_act, s_data,
	                  be->device, s_free, s_total, c->layers, max_rows);
}

static int check_memory(const train_config *c, const train_data *data, uint32_t max_rows,
                        uint32_t n_fit, uint32_t start_epoch)
{
	if (memory_check_disabled())
		return 0;
	bool on_host = strcmp(c->device, "cpu") == 0;
	run_sizes z;
	run_sizes_of(&z, c, data, max_rows);
	const double params = z.params, states = z.states, activations = z.activations;
	const double f = sizeof(float);
	double model = on_host ? (2 + states) * params * f + activations * f : 0;
	double staging = z.staging_bytes;
	double other = z.largest * f /* one host copy of a layer: init, resume */ +
	               ((double)n_fit + data->train.count + data->test.count) * 4 /* indices */ +
	               (64 << 20) /* threads' stacks, BLAS buffers */;
	double need = model + staging + other;
	uint64_t avail;
	char what[32];
	train_memory_available(&avail, what, sizeof(what));
	/* where ulimit -v is what limits, the address-space check is the whole one (it adds the
	 * reservations and the store's map to @p need): said alone, not after a smaller figure */
	uint64_t room;
	bool address_space_binds = train_memory_address_space(&room) && room <= avail;
	if (need <= (double)avail || address_space_binds)
		return check_map_room(c, start_epoch, need, (1 + states) * params * f);
	char s_need[32], s_avail[32], s_params[32], s_states[32], s_act[32], s_staging[32],
	    s_data[32];
	train_memory_format(s_need, sizeof(s_need), need);
	train_memory_format(s_avail, sizeof(s_avail), (double)avail);
	train_memory_format(s_params, sizeof(s_params), params * f);
	train_memory_format(s_states, sizeof(s_states), states * params * f);
	train_memory_format(s_act, sizeof(s_act), activations * f);
	train_memory_format(s_staging, sizeof(s_staging), staging);
	train_memory_format(s_data, sizeof(s_data), z.data_bytes);
	if (on_host)
		return train_fail(
		    -ENOMEM,
		    "not enough memory for this run: it needs %s more (parameters %s, "
		    "gradients %s, optimizer state %s, activations %s, 2 checkpoint "
		    "staging buffers %s; the data set's %s are loaded) and %s is "
		    "available (%s) (--layers %s, batches of up to %u rows)",
		    s_need, s_params, s_params, s_states, s_act, s_staging, s_data, s_avail, what,
		    c->layers, max_rows);
	return train_fail(-ENOMEM,
	                  "not enough host memory for this run on %s: it needs %s more of host "
	                  "memory (2 pinned checkpoint staging buffers %s; the data set's %s are "
	                  "loaded) and %s is available (%s) (--layers %s)",
	                  c->device, s_need, s_staging, s_data, s_avail, what, c->layers);
}

int train_run(train_config *cfg, train_result *res)
{
	memset(res, 0, sizeof(*res));
	res->last_test_acc = NAN;
	train_clear_error();
	stop_signal = 0;
	bool progress_shown = false; /* a progress line is on the terminal: clear it before leaving */
	stdout_store_path = cfg->store_path;
	absolute_data_path(cfg);

	ckpt_store *store = NULL;
	ckpt_snapshot *snap = NULL;
	const ckpt_checkpoint *resume_ckpt = NULL;
	train_data data = {0};
	train_backend *be = NULL;
	train_mlp *model = NULL;
	train_optimizer *opt = NULL;
	uint32_t *perm = NULL, *seq = NULL;
	const void *train_x = NULL, *train_y = NULL, *test_x = NULL, *test_y = NULL;
	uint32_t start_epoch = 0;
	train_rng rng;
	train_persister pers;
	bool pers_ready = false;
	int lock_fd = -1;
	int store_how = STORE_REUSED;
	int rc = 0;
	memset(&pers, 0, sizeof(pers));

	bool lock_file_created = false;
	bool device_from_run = false; /* --resume without --device: the run's recorded device */
	char moved_from[sizeof(cfg->device)] = ""; /* --resume --device D: the run's other device */
	if (cfg->resume) {
		char lock_file[4200];
		struct stat lock_st;
		lock_file_created =
		    (size_t)snprintf(lock_file, sizeof(lock_file), "%s/lock.mdb",
		                     cfg->store_path) < sizeof(lock_file) &&
		    lstat(lock_file, &lock_st) != 0 && errno == ENOENT;
		rc = ckpt_store_open(&store, cfg->store_path, 0);
		if (rc == -ENOENT || rc == CKPT_ENOTSTORE) {
			rc = train_fail(rc, "nothing to resume: %s is not a store (%s)",
			                cfg->store_path, ckpt_last_error());
			goto out;
		}
		if (rc == -EACCES || rc == -EPERM || rc == -EROFS) {
			/* libckpt's own hint (root working with the owner's file rights) says what
			 * to do already: no second one */
			const char *why = ckpt_last_error();
			bool hinted = strstr(why, "(as root, ") != NULL;
			rc = train_fail(rc, "cannot train into store %s: %s%s", cfg->store_path, why,
			                hinted ? "" : "; training needs write access to the store");
			goto out;
		}
		if (rc) {
			rc = train_fail(rc, "cannot open store %s (%s)", cfg->store_path,
			                ckpt_last_error());
			goto out;
		}
		/* before the resume point is read: another run may still be committing */
		rc = lock_store(&lock_fd, cfg->store_path);
		if (rc)
			goto out;
		const ckpt_run_meta *meta = ckpt_store_meta(store);
		if (strcmp(meta->model ? meta->model : "", "mlp") != 0) {
			rc = train_fail(-EINVAL,
			                "refusing to resume: store %s holds a '%s' model, not mlp",
			                cfg->store_path, meta->model ? meta->model : "");
			goto out;
		}
		rc = ckpt_snapshot_open(&snap, store);
		if (rc) {
			rc = train_fail(rc, "cannot read store %s (%s)", cfg->store_path,
			                ckpt_last_error());
			goto out;
		}
		uint32_t from = resolve_epoch(snap, cfg->resume_from, &rc);
		if (rc == -EINVAL) {
			rc = train_fail(rc,
			                "invalid --resume '%s' (expected latest, best or an epoch: "
			                "4 or epoch-0004)",
			                cfg->resume_from);
			goto out;
		}
		if (rc == -ENOENT) {
			if (strcmp(cfg->resume_from, "latest") == 0)
				rc = train_fail(
				    rc,
				    "nothing to resume: store %s has no checkpoint (run without "
				    "--resume to start)",
				    cfg->store_path);
			else if (strcmp(cfg->resume_from, "best") == 0)
				rc = train_fail(
				    rc, "cannot resume from best: store %s has no best checkpoint",
				    cfg->store_path);
			else
				rc = epoch_not_in_store(snap, cfg);
			goto out;
		}
		if (rc == -ERANGE) {
			rc =
			    train_fail(CKPT_ECORRUPT,
			               "cannot resume %s from '%s': its epoch number is beyond the "
			               "%u epochs ckpt-train writes",
			               cfg->store_path, cfg->resume_from, TRAIN_MAX_EPOCHS);
			goto out;
		}
		if (!rc)
			rc = ckpt_snapshot_checkpoint(&resume_ckpt, snap, from);
		if (rc) {
			rc = train_fail(rc, "cannot read checkpoint %u of %s (%s)", from,
			                cfg->store_path, ckpt_last_error());
			goto out;
		}
		const void *text;
		size_t len;
		if (ckpt_checkpoint_extra(resume_ckpt, "train.config", &text, &len)) {
			rc = train_fail(
			    CKPT_ECORRUPT,
			    "cannot resume from epoch %u: it was not written by ckpt-train "
			    "(no train.config)",
			    from);
			goto out;
		}
		train_config run;
		train_config_defaults(&run);
		rc = config_from_json(&run, text, len, from);
		if (!rc &&
		    (strcmp(run.layers, meta->layers ? meta->layers : "") != 0 ||
		     strcmp(train_opt_name(run.opt.kind), meta->optimizer ? meta->optimizer : "")))
			rc = train_fail(CKPT_ECORRUPT,
			                "store %s: checkpoint %u disagrees with the run "
			                "metadata (layers/optimizer)",
			                cfg->store_path, from);
		if (!rc)
			rc = config_merge_resumed(cfg, &run);
		if (rc)
			goto out;
		if (!(cfg->explicit_set & TRAIN_SET_EPOCHS))
			cfg->epochs = latest_target(snap, from, cfg->epochs);
		if (cfg->epochs < from) {
			rc = train_fail(-EINVAL,
			                "--epochs %u is below epoch %u, where the run resumes "
			                "(--epochs is the total to reach, not a count to add)",
			                cfg->epochs, from);
			goto out;
		}
		uint32_t stored_keep_last, stored_keep_top;
		ckpt_store_retention(store, &stored_keep_last, &stored_keep_top);
		rc = check_retention(cfg, (cfg->explicit_set & TRAIN_SET_KEEP) ? cfg->keep_last
		                                                               : stored_keep_last);
		/* both given on the command line: a usage error, as for a new run */
		if (rc && (cfg->explicit_set & TRAIN_SET_KEEP) && (cfg->explicit_set & TRAIN_SET_KEEP_TOP) &&
		    cfg->keep_last == 0 && cfg->keep_top > 0)
			rc = TRAIN_EUSAGE;
		if (rc)
			goto out;
		/* BLAS results depend on the thread count: keep the run's unless told otherwise */
		int run_threads = 0;
		char run_device[sizeof(cfg->device)] = "cpu";
		if (ckpt_checkpoint_extra(resume_ckpt, "train.state", &text, &len) == 0) {
			/* damaged, it is refused, never read as the defaults (a cuda run resumed on
			 * the CPU without a word) */
			json_t *st = json_loadb(text, len, 0, NULL);
			json_t *th = json_is_object(st) ? json_object_get(st, "threads") : NULL;
			json_t *dev = json_is_object(st) ? json_object_get(st, "device") : NULL;
			int idx;
			const char *why =
			    !json_is_object(st) ? "not a JSON object"
			    : th && (!json_is_integer(th) || json_integer_value(th) < 0 ||
			             json_integer_value(th) > 1024)
			        ? "its thread count is not 0..1024"
			    : dev && (!json_is_string(dev) ||
			              json_string_length(dev) >= sizeof(run_device) ||
			              (strcmp(json_string_value(dev), "cpu") != 0 &&
			               train_cuda_parse_device(&idx, json_string_value(dev)) != 0))
			        ? "its device is not cpu, cuda or cuda:N"
			        : NULL;
			if (why) {
				json_decref(st);
				rc = train_fail(CKPT_ECORRUPT,
				                "cannot resume from epoch %u: its train.state is damaged "
				                "(%s)",
				                from, why);
				goto out;
			}
			if (th && json_integer_value(th) > 0)
				run_threads = (int)json_integer_value(th);
			if (dev)
				memcpy(run_device, json_string_value(dev),
				       json_string_length(dev) + 1);
			json_decref(st);
		}
		/* a resumed run continues where it trained, as the run's tensors say; --device
		 * moves it (GEMM summation order differs between devices) */
		char given[sizeof(cfg->device)];
		if (!(cfg->explicit_set & TRAIN_SET_DEVICE)) {
			memcpy(cfg->device, run_device, sizeof(cfg->device));
			device_from_run = strcmp(run_device, "cpu") != 0;
		} else if (strcmp(device_name(given, sizeof(given), cfg->device), run_device) != 0) {
			memcpy(moved_from, run_device, sizeof(moved_from)); /* noted once it works */
		}
		if (cfg->threads <= 0 && run_threads > 0)
			cfg->threads = run_threads;
		else if (run_threads > 0 && cfg->threads != run_threads)
			ckpt_print_line(stderr, "ckpt-train: warning: ",
			                "--threads %d differs from the run's %d; the "
			                "result "
			                "will not be bit-identical to an uninterrupted run",
			                cfg->threads, run_threads);
		start_epoch = from;
	} else {
		rc = check_optimizer_options(cfg->explicit_set, cfg->opt.kind, "the");
		if (!rc)
			rc = train_opt_validate(&cfg->opt);
		if (!rc)
			rc = check_retention(cfg, cfg->keep_last);
		if (rc) { /* found in the options alone: a usage error (the message is kept) */
			rc = TRAIN_EUSAGE;
			goto out;
		}
		if (cfg->schedule == TRAIN_SCHED_COSINE)
			cfg->schedule_t_max = cfg->epochs;
	}
	if (cfg->epochs == 0) {
		rc = train_fail(-EINVAL, "--epochs must be at least 1");
		goto out;
	}
	if (cfg->batch_size == 0) {
		rc = train_fail(-EINVAL, "--batch-size must be at least 1");
		goto out;
	}

	/* data: every mismatch is found before the store is created */
	rc = train_data_load(&data, cfg->data, cfg->sizes[0], cfg->sizes[cfg->nsizes - 1]);
	if (rc == -ENOENT && cfg->resume && !(cfg->explicit_set & TRAIN_SET_DATA)) {
		char why[16384];
		snprintf(why, sizeof(why), "%s", train_last_error());
		rc = train_fail(rc, "%s; it is the run's data: if it moved, give --data NEWPATH",
		                why);
	}
	if (rc)
		goto out;
	rc = check_data_unchanged(cfg, &data);
	if (rc)
		goto out;
	/* a label beyond the last layer was refused by train_data_load(); more outputs than
	 * classes train, as nn.Linear(..., 10) on labels 0..8 does */
	if (cfg->val_split >= data.train.count) {
		rc = train_fail(-EINVAL,
		                "--val-split %u leaves no training samples (the data set has %u)",
		                cfg->val_split, data.train.count);
		goto out;
	}
	uint32_t n_fit = data.train.count - cfg->val_split;
	/* a batch larger than the training samples is one partial batch per epoch */

	uint32_t batch_rows = cfg->batch_size < n_fit ? cfg->batch_size : n_fit;
	uint32_t max_rows = batch_rows > 1024 ? batch_rows : 1024;
	if (cfg->threads <= 0) {
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		cfg->threads = ncpu > 0 ? (int)ncpu : 1;
	}
	/* before the first large allocation, and before the store is created: the backend (no
	 * large allocation), then the device's memory (a GPU's), then the host's */
	rc = train_backend_create(&be, cfg->device, cfg->threads);
	if (rc && device_from_run) {
		char why[1024];
		snprintf(why, sizeof(why), "%s", train_last_error());
		rc = train_fail(rc,
		                "the run trained on %s, and this machine has no %s (%s); pass "
		                "--device cpu to continue on the CPU",
		                cfg->device, cfg->device, why);
	}
	if (rc)
		goto out;
	if (moved_from[0])
		ckpt_print_line(stderr, "ckpt-train: note: ",
		                "--device %s differs from the run's %s; the result will not be "
		                "bit-identical to an uninterrupted run",
		                cfg->device, moved_from);
	rc = check_device_memory(cfg, be, &data, max_rows);
	if (!rc)
		rc = check_memory(cfg, &data, max_rows, n_fit, start_epoch);
	if (rc)
		goto out;
	rc = be->reserve_rows(be, max_rows);
	if (!rc)
		rc = train_mlp_create(&model, be, cfg->sizes, cfg->nsizes, max_rows);
	if (!rc)
		rc = train_optimizer_create(&opt, be, &cfg->opt, model);
	if (rc == -ENOMEM) {
		/* the backend knows which device and how many bytes, if it says */
		char why[1024];
		snprintf(why, sizeof(why), "%s",
		         be->last_error(be)[0] ? be->last_error(be) : train_last_error());
		rc = train_fail(rc, "%s (--layers %s, batches of up to %u rows)", why, cfg->layers,
		                max_rows);
		goto out;
	}
	if (!rc) {
		rc = persister_init(&pers, be, model, opt, cfg->quiet);
		pers_ready = rc == 0;
	}
	if (rc)
		goto out;
	uint32_t seq_len = data.train.count > data.test.count ? data.train.count : data.test.count;
	perm = malloc((size_t)n_fit * sizeof(uint32_t));
	seq = malloc((size_t)seq_len * sizeof(uint32_t));
	if (!perm || !seq) {
		rc = train_fail(-ENOMEM, "out of memory for %u sample indices", seq_len);
		goto out;
	}
	for (uint32_t i = 0; i < seq_len; i++)
		seq[i] = i;
	train_x =
	    be->map_host(be, data.train.x, (size_t)data.train.count * data.train.features * 4);
	train_y = be->map_host(be, data.train.y, (size_t)data.train.count * 4);
	if (data.test.count) {
		test_x =
		    be->map_host(be, data.test.x, (size_t)data.test.count * data.test.features * 4);
		test_y = be->map_host(be, data.test.y, (size_t)data.test.count * 4);
	}
	if (!train_x || !train_y || (data.test.count && (!test_x || !test_y))) {
		rc = train_fail(-ENOMEM, "out of %s memory for the data set (%zu bytes)%s%s",
		                be->device,
		                ((size_t)data.train.count * (data.train.features + 1) +
		                 (size_t)data.test.count * (data.test.features + 1)) *
		                    4,
		                be->last_error(be)[0] ? ": " : "", be->last_error(be));
		goto out;
	}
	/* last: everything that can refuse the run (the device's memory included) has been checked
	 */
	if (!cfg->resume) {
		rc = open_or_create_store(&store, cfg, &store_how);
		if (rc)
			goto out;
	}
	pers.store = store;
	if (lock_fd < 0) {
		rc = lock_store(&lock_fd, cfg->store_path);
		if (rc)
			goto out;
	}

	if (cfg->resume) {
		rc = restore_state(snap, resume_ckpt, model, opt, &rng);
		if (!rc)
			rc = check_device(be, &pers, res, cfg, start_epoch, "restoring the run");
		if (rc)
			goto out;
		ckpt_snapshot_close(snap);
		snap = NULL;
		resume_ckpt = NULL;
		if (cfg->explicit_set & (TRAIN_SET_KEEP | TRAIN_SET_KEEP_TOP)) {
			uint32_t kl, kt, deleted = 0;
			ckpt_store_retention(store, &kl, &kt);
			if (!(cfg->explicit_set & TRAIN_SET_KEEP))
				cfg->keep_last = kl;
			if (!(cfg->explicit_set & TRAIN_SET_KEEP_TOP))
				cfg->keep_top = cfg->keep_last ? kt : 0; /* keep-last 0 keeps all */
			if (cfg->keep_last == 0 && kt > 0 && !(cfg->explicit_set & TRAIN_SET_KEEP_TOP))
				ckpt_print_line(stderr, "ckpt-train: note: ",
				                "keep-last 0 keeps every checkpoint; the store's keep-top "
				                "%u no longer applies",
				                kt);
			if (kl != cfg->keep_last || kt != cfg->keep_top) {
				rc = ckpt_store_gc(store, cfg->keep_last, cfg->keep_top, &deleted);
				if (rc) {
					rc = train_fail(rc,
					                "cannot apply the new retention to %s (%s)",
					                cfg->store_path, ckpt_last_error());
					goto out;
				}
				if (!cfg->quiet && deleted)
					out_line(
					    "retention now keep-last %u keep-top %u: deleted %u "
					    "checkpoint%s\n",
					    cfg->keep_last, cfg->keep_top, deleted,
					    deleted == 1 ? "" : "s");
			}
		}
		if (!cfg->quiet)
			out_line("resuming %s from epoch %u (step %" PRIu64 ") to epoch %u\n",
			         cfg->store_path, start_epoch, opt->steps, cfg->epochs);
		if (start_epoch >= cfg->epochs && !cfg->quiet)
			out_line("nothing to do: epoch %u already reached (raise --epochs)\n",
			         start_epoch);
		note_earlier_epochs(store, start_epoch, cfg->epochs);
	} else {
		train_rng_seed(&rng, cfg->seed);
		rc = train_mlp_init(model, &rng);
		if (!rc)
			rc = check_device(be, &pers, res, cfg, start_epoch, "initializing the model");
		if (rc)
			goto out;
	}
	res->last_epoch = start_epoch;

	if (data.test.count == 0)
		note_no_test_set(cfg->data);
	note_csv_files(&data, cfg->data);
	const bool tty = !cfg->quiet && isatty(STDERR_FILENO);
	pers.tty = tty;
	const uint32_t nbatches = (n_fit + cfg->batch_size - 1) / cfg->batch_size;
	const char *eval_delay = getenv("CKPT_TRAIN_TEST_EVAL_DELAY_MS");
	const unsigned long eval_delay_ms = eval_delay ? strtoul(eval_delay, NULL, 10) : 0;
	for (uint32_t epoch = start_epoch + 1; epoch <= cfg->epochs; epoch++) {
		const double lr = train_schedule_lr(cfg, epoch - 1);
		const double t0 = now_seconds();
		for (uint32_t i = 0; i < n_fit; i++)
			perm[i] = i;
		train_rng_shuffle(&rng, perm, n_fit);
		double loss_sum = 0, last_print = t0;
		uint64_t correct = 0;
		for (uint32_t b = 0; b < nbatches; b++) {
			if (stop_signal) {
				rc = stop_on_signal(&pers, res, cfg, start_epoch, epoch, b, nbatches);
				goto out;
			}
			if (persister_failed(&pers)) {
				rc = persist_settle(&pers, res);
				goto out;
			}
			uint32_t off = b * cfg->batch_size;
			uint32_t rows =
			    n_fit - off < cfg->batch_size ? n_fit - off : cfg->batch_size;
			double batch_loss = 0;
			train_mlp_load_batch(model, train_x, train_y, perm + off, rows);
			train_mlp_forward_backward(model, rows, &batch_loss, &correct);
			if (be->status(be)) {
				char where[64];
				snprintf(where, sizeof(where), "in epoch %u (batch %u/%u)", epoch,
				         b + 1, nbatches);
				rc = check_device(be, &pers, res, cfg, start_epoch, where);
				goto out;
			}
			if (!isfinite(batch_loss)) {
				rc = persist_settle(&pers, res);
				if (rc)
					goto out;
				char hint[256];
				diverged_hint(hint, sizeof(hint), cfg, epoch,
				              res->last_epoch > 0 || store_how == STORE_REUSED);
				if (res->last_epoch == 0)
					rc = train_fail(
					    TRAIN_ENONFINITE,
					    "training loss became %s in epoch %u, batch %u "
					    "(%s); nothing was saved",
					    isnan(batch_loss) ? "NaN" : "infinite", epoch, b + 1,
					    hint);
				else {
					char stops[512];
					where_run_stops(stops, sizeof(stops), pers.store, cfg,
					                start_epoch, res->last_epoch, false);
					rc = train_fail(
					    TRAIN_ENONFINITE,
					    "training loss became %s in epoch %u, batch %u "
					    "(%s); epoch %u was not saved, %s",
					    isnan(batch_loss) ? "NaN" : "infinite", epoch, b + 1,
					    hint, epoch, stops);
				}
				goto out;
			}
			loss_sum += batch_loss;
			train_optimizer_step(opt, model, lr);
			if (tty) {
				double now = now_seconds();
				if (now - last_print >= 0.25 || b + 1 == nbatches) {
					double rate = (double)(off + rows) / (now - t0);
					char eta[32];
					/* this epoch's rest plus the epochs after it at this rate
					 */
					double left = (double)(n_fit - off - rows) +
					              (double)(cfg->epochs - epoch) * n_fit;
					format_eta(eta, sizeof(eta), left / rate);
					char line[256], loss[32];
					snprintf(
					    line, sizeof(line),
					    "epoch %u/%u  batch %u/%u  loss %s  %.0f "
					    "samples/s  ETA %s",
					    epoch, cfg->epochs, b + 1, nbatches,
					    loss_text(loss, sizeof(loss), loss_sum / (off + rows)),
					    rate, eta);
					/* never wider than the terminal: a wrapped line is not redrawn
					 * in place, and the lines would pile up */
					struct winsize ws;
					if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 1 &&
					    ws.ws_col <= sizeof(line))
						line[ws.ws_col - 1] = '\0';
					fprintf(stderr, "\r%s\033[K", line);
					fflush(stderr);
					last_print = now;
					progress_shown = true;
				}
			}
		}
		const double t_train = now_seconds() - t0;
		if (eval_delay_ms) /* CKPT_TRAIN_TEST_EVAL_DELAY_MS: a window after the last batch */
			nanosleep(&(struct timespec){eval_delay_ms / 1000,
			                             (long)(eval_delay_ms % 1000) * 1000000L},
			          NULL);
		double val_loss = NAN, val_acc = NAN, test_loss = NAN, test_acc = NAN;
		if (cfg->val_split)
			evaluate(model, train_x, train_y, seq, n_fit, data.train.count, &val_loss,
			         &val_acc);
		if (data.test.count)
			evaluate(model, test_x, test_y, seq, 0, data.test.count, &test_loss,
			         &test_acc);
		const double t_epoch = now_seconds() - t0;
		if (tty)
			fprintf(stderr, "\r\033[K");
		progress_shown = false;
		if (be->status(be)) {
			char where[64];
			snprintf(where, sizeof(where), "evaluating epoch %u", epoch);
			rc = check_device(be, &pers, res, cfg, start_epoch, where);
			goto out;
		}
		/* a stop signal that arrived after the last batch does not cost this epoch: every
		 * batch ran and it is evaluated, so it is committed like any other, and the run
		 * stops at the next batch boundary (or ends, after the last epoch) */

		if (pers.disabled) { /* benchmarks only: the same loop without any checkpoint */
			if (!cfg->quiet) {
				out_line("epoch %u/%u  %.3fs  (not checkpointed: "
				         "CKPT_TRAIN_BENCH_NO_CHECKPOINT=1)\n",
				         epoch, cfg->epochs, t_epoch);
			}
			continue;
		}
		/* snapshot now; the commit runs on the persist thread while the next epoch trains
		 */
		train_snapshot *s = NULL;
		rc = snapshot_take(&s, &pers, model, opt, epoch);
		if (!rc && be->status(be)) {
			char where[64];
			snprintf(where, sizeof(where), "taking the checkpoint of epoch %u", epoch);
			rc = check_device(be, &pers, res, cfg, start_epoch, where);
		}
		if (rc)
			goto out;
		s->test_acc = test_acc;
		const double train_loss = loss_sum / n_fit;
		snapshot_metric(s, "train_loss", train_loss);
		snapshot_metric(s, "train_acc", (double)correct / n_fit);
		if (cfg->val_split) {
			snapshot_metric(s, "val_loss", val_loss);
			snapshot_metric(s, "val_acc", val_acc);
		}
		if (data.test.count) {
			snapshot_metric(s, "test_loss", test_loss);
			snapshot_metric(s, "test_acc", test_acc);
		}
		snapshot_metric(s, "lr", lr);
		snapshot_metric(s, "epoch_seconds", t_epoch);
		snapshot_metric(s, "samples_per_second", n_fit / t_train);
		double next_lr = train_schedule_lr(cfg, epoch);
		double initial_lr = cfg->schedule == TRAIN_SCHED_NONE ? 0 : cfg->opt.lr;
		rc = snapshot_extra(s, "optimizer.name", strdup(train_opt_name(cfg->opt.kind)));
		if (!rc)
			rc = snapshot_extra(
			    s, "optimizer.param_groups",
			    train_optimizer_param_groups_json(opt, next_lr, initial_lr));
		if (!rc)
			rc = snapshot_extra(s, "train.config", config_json(cfg));
		if (!rc)
			rc =
			    snapshot_extra(s, "train.state",
			                   state_json(epoch, opt->steps, cfg->threads, be->device));
		if (!rc)
			rc = snapshot_extra(s, "train.rng", rng_json(&rng));
		if (!rc)
			rc = snapshot_extra(s, "train.lr_scheduler",
			                    scheduler_json(cfg, epoch, next_lr));
		if (rc)
			goto out;
		{
			size_t n = 0, len = sizeof(s->line);
			char loss[32];
			n += (size_t)snprintf(s->line + n, len - n,
			                      "epoch %u/%u  step %" PRIu64 "  train_loss %s", epoch,
			                      cfg->epochs, opt->steps,
			                      loss_text(loss, sizeof(loss), train_loss));
			if (cfg->val_split && n < len)
				n += (size_t)snprintf(
				    s->line + n, len - n, "  val_loss %s  val_acc %.4f",
				    loss_text(loss, sizeof(loss), val_loss), val_acc);
			if (data.test.count && n < len)
				n += (size_t)snprintf(s->line + n, len - n, "  test_acc %.4f",
				                      test_acc);
			if (n < len)
				snprintf(s->line + n, len - n, "  lr %.6g  %.3fs  %.0f samples/s",
				         lr, t_epoch, n_fit / t_train);
		}
		rc = persister_start(&pers, s);
		if (rc) {
			persist_settle(&pers, res);
			goto out;
		}
	}
	rc = persist_settle(&pers, res);
	if (rc)
		goto out;
	{
		ckpt_snapshot *check;
		if (ckpt_snapshot_open(&check, store) == 0) {
			uint64_t best;
			if (ckpt_snapshot_best(&best, check) == 0)
				res->best_epoch = (uint32_t)best;
			ckpt_snapshot_close(check);
		}
	}
	rc = 0;
out:
	/* an error or a stop signal mid-epoch: its message must not land after the progress */
	if (progress_shown)
		fprintf(stderr, "\r\033[K");
	if (pers.running) {
		if (rc == 0)
			rc = persist_settle(&pers, res);
		else
			pthread_join(pers.thread, NULL);
		pers.running = false;
	}
	if (pers_ready && pers.stats && pers.stat_commits) {
		const double n = pers.stat_commits;
		fprintf(stderr,
		        "ckpt-train: commit stats: %u commits of %.2f MB; wait for the copy "
		        "off the device %.1f ms, commit %.1f ms (max %.1f ms, %.0f MB/s) on "
		        "average; the training loop waited %.3f s in all for a commit still "
		        "running when the next epoch ended (the wait for the last commit not "
		        "counted)\n",
		        pers.stat_commits, pers.stat_bytes / 1e6, 1e3 * pers.stat_copy_s / n,
		        1e3 * pers.stat_commit_s / n, 1e3 * pers.stat_commit_max_s,
		        pers.stat_bytes / 1e6 / (pers.stat_commit_s / n), pers.stat_waited_s);
	}
	if (pers_ready)
		persister_free(&pers);
	if (be) {
		if (train_x)
			be->unmap_host(be, train_x);
		if (train_y)
			be->unmap_host(be, train_y);
		if (test_x)
			be->unmap_host(be, test_x);
		if (test_y)
			be->unmap_host(be, test_y);
	}
	free(perm);
	free(seq);
	train_optimizer_free(opt);
	train_mlp_free(model);
	train_backend_destroy(be);
	train_data_free(&data);
	ckpt_snapshot_close(snap);
	if (rc && store && store_how != STORE_REUSED)
		drop_empty_store(store, cfg->store_path, store_how, res->last_epoch);
	else
		ckpt_store_close(store);
	if (rc && lock_file_created && res->last_epoch == start_epoch)
		ckpt_drop_unused_lock_file(cfg->store_path);
	if (lock_fd >= 0)
		close(lock_fd);
	return rc;
}
