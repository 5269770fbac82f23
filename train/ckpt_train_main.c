/* train/ckpt_train_main.c - `ckpt-train`: train an MLP, checkpointing every epoch into a store
 *
 * Parses the command line into a train_config and hands it to train_run(). Exit status: 0 done,
 * 1 failure (message on stderr), 2 bad usage, 130/143/129 stopped by SIGINT/SIGTERM/SIGHUP
 * between batches (the store keeps the last finished epoch).
 */
#include <errno.h>
#include <float.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <unistd.h>

#include "ckpt/message.h"
#include "ckpt/store.h"
#include "train/backend.h"
#include "train/data.h"
#include "train/engine.h"
#include "train/error.h"

static void usage(FILE *to)
{
	fprintf(
	    to,
	    "usage: ckpt-train --store DIR [options]\n"
	    "\n"
	    "Train an MLP and write every epoch's full state (model, optimizer, RNG, metrics)\n"
	    "into the checkpoint store DIR; --resume continues a run bit-exactly.\n"
	    "\n"
	    "data and model:\n"
	    "  --data SPEC            fashion-mnist (default; %s), synthetic,\n"
	    "                         DIR (IDX files "
	    "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz])\n"
	    "                         or FILE.csv (label,pixels 0..255; test set: the sibling "
	    "file\n"
	    "                         with its last 'train' word replaced by 'test', if present)\n"
	    "  --layers L             layer sizes, input first (default 784,256,128,10)\n"
	    "  --val-split N          last N training samples validate (default 5000)\n"
	    "training:\n"
	    "  --epochs N             total epochs to reach (default 10; on --resume the target\n"
	    "                         of the newest commit, what the last run aimed for)\n"
	    "  --batch-size N         (default 128)\n"
	    "  --optimizer NAME       sgd (default), adam or adamw, in any case (Adam, AdamW)\n"
	    "  --lr X                 learning rate (default 0.1 for sgd, 0.001 for adam/adamw)\n"
	    "  --momentum X           sgd (default 0.9)\n"
	    "  --dampening X          sgd (default 0)\n"
	    "  --nesterov             sgd: Nesterov momentum\n"
	    "  --weight-decay X       (default 0; 0.01 for adamw, as torch)\n"
	    "  --betas B1,B2          adam/adamw (default 0.9,0.999)\n"
	    "  --eps X                adam/adamw (default 1e-8)\n"
	    "  --lr-schedule S        none (default), step:EVERY:GAMMA or cosine (over --epochs)\n"
	    "  --seed N               initialization and shuffling (default 0)\n"
	    "checkpoints:\n"
	    "  --store DIR            the store (created if missing)\n"
	    "  --monitor M            val_loss (default, lower is better) or val_acc (higher)\n"
	    "  --keep-last N          keep only the newest N checkpoints (default all)\n"
	    "  --keep-top K           also keep the best K (the best is always kept)\n"
	    "  --resume [WHICH]       continue from latest (default), best or an epoch\n"
	    "                         (4 or epoch-0004)\n"
	    "other:\n"
	    "  --threads N            BLAS threads (default: online CPUs; on --resume the run's);\n"
	    "                         results are bit-identical only for the same count\n"
	    "  --device D             cpu (default), cuda or cuda:N (a GPU; needs the CUDA plug-in\n"
	    "                         ckpt-train-cuda.so, built when nvcc is installed)\n"
	    "  --quiet                no progress or per-epoch lines\n"
	    "  --help, --version\n",
	    TRAIN_FASHION_MNIST_DIR);
}

static void error_line(const char *fmt, const char *arg) __attribute__((format(printf, 1, 0)));
static void error_line(const char *fmt, const char *arg)
{
	ckpt_print_line(stderr, "ckpt-train: error: ", fmt, arg);
}

/* strtod skips leading white space; a real is refused if it starts with anything but a digit,
 * a sign or a point */
static bool starts_like_real(const char *text)
{
	unsigned char c = (unsigned char)text[0];
	return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.';
}

/* The value of the @p len characters at @p text when they are a decimal integer: digits only
 * (no sign, blanks or point), saturating at UINT64_MAX however many there are. */
static bool digits_value(uint64_t *out, const char *text, size_t len)
{
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (text[i] < '0' || text[i] > '9')
			return false;
		unsigned digit = (unsigned)(text[i] - '0');
		v = v > (UINT64_MAX - digit) / 10 ? UINT64_MAX : v * 10 + digit;
	}
	*out = v;
	return len > 0;
}

/* An integer option's value in min..max. Anything else than digits, or a value below @p min,
 * is "invalid"; a value above @p max, however many digits it has, is "too large". */
static int parse_uint(uint64_t *out, const char *text, const char *opt, uint64_t min, uint64_t max)
{
	uint64_t v;
	if (!digits_value(&v, text, strlen(text)) || v < min) {
		if (max >= UINT32_MAX) /* the type's limit, not one of the option's own */
			ckpt_print_line(stderr, "ckpt-train: error: ",
			                "invalid %s '%s' (expected an integer >= %" PRIu64 ")", opt,
			                text, min);
		else
			ckpt_print_line(stderr, "ckpt-train: error: ",
			                "invalid %s '%s' (expected an integer in %" PRIu64
			                "..%" PRIu64 ")",
			                opt, text, min, max);
		return -1;
	}
	if (v > max) {
		ckpt_print_line(stderr,
		                "ckpt-train: error: ", "%s %s is too large (at most %" PRIu64 ")",
		                opt, text, max);
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_u32(uint32_t *out, const char *text, const char *opt, uint32_t min, uint32_t max)
{
	uint64_t v;
	if (parse_uint(&v, text, opt, min, max))
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* --layers: a size above TRAIN_MAX_WIDTH is too large however many digits it has
 * (train_parse_layers, which names every other fault, reads only sizes that fit a long) */
static int check_layer_sizes(const char *text)
{
	for (const char *p = text;; p++) {
		size_t len = strcspn(p, ",");
		uint64_t v;
		if (!digits_value(&v, p, len))
			return 0;
		if (v > TRAIN_MAX_WIDTH) {
			ckpt_print_line(stderr, "ckpt-train: error: ",
			                "--layers '%s': size %.*s is too large (at most %u)", text,
			                (int)len, p, TRAIN_MAX_WIDTH);
			return -1;
		}
		p += len;
		if (!*p)
			return 0;
	}
}

/* A finite decimal real spanning all of @p text (no white space, no overflow), as Python's
 * float() reads one: hexadecimal (which strtod also takes) is refused, and a value too small
 * for a double is what it rounds to (1e-400 is 0, 4.9e-324 the least subnormal). */
static bool real_text(double *out, const char *text)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	bool underflow = errno == ERANGE && fabs(v) <= DBL_MIN;
	if ((errno && !underflow) || end == text || *end || !starts_like_real(text) ||
	    strpbrk(text, "xX") || !isfinite(v))
		return false;
	*out = v;
	return true;
}

static int parse_double(double *out, const char *text, const char *opt)
{
	if (!real_text(out, text)) {
		ckpt_print_line(stderr,
		                "ckpt-train: error: ", "invalid %s '%s' (expected a finite decimal number)",
		                opt, text);
		return -1;
	}
	return 0;
}

/* --betas B1,B2 */
static int parse_betas(train_opt_config *opt, const char *text)
{
	char first[64];
	const char *comma = strchr(text, ',');
	size_t len = comma ? (size_t)(comma - text) : 0;
	if (comma && len < sizeof(first)) {
		memcpy(first, text, len);
		first[len] = '\0';
		if (real_text(&opt->beta1, first) && real_text(&opt->beta2, comma + 1))
			return 0;
	}
	error_line("invalid --betas '%s' (expected B1,B2: two numbers)", text);
	return -1;
}

enum {
	OPT_STORE = 256,
	OPT_DATA,
	OPT_LAYERS,
	OPT_EPOCHS,
	OPT_BATCH,
	OPT_OPTIMIZER,
	OPT_LR,
	OPT_MOMENTUM,
	OPT_DAMPENING,
	OPT_NESTEROV,
	OPT_WD,
	OPT_BETAS,
	OPT_EPS,
	OPT_SCHEDULE,
	OPT_VAL_SPLIT,
	OPT_SEED,
	OPT_MONITOR,
	OPT_KEEP_LAST,
	OPT_KEEP_TOP,
	OPT_THREADS,
	OPT_DEVICE,
	OPT_RESUME,
	OPT_QUIET,
	OPT_NO_SYNC,
};

/* Re-execute once with OPENBLAS_CORETYPE set when OpenBLAS fell back to generic kernels on a
 * CPU it does not know (see train_cpu_blas_better_core()); on failure go on as we are. */
static void select_blas_kernels(char **argv)
{
	const char *core = train_cpu_blas_better_core();
	if (!core || getenv("CKPT_TRAIN_BLAS_REEXEC"))
		return;
	if (setenv("OPENBLAS_CORETYPE", core, 1) || setenv("CKPT_TRAIN_BLAS_REEXEC", "1", 1))
		return;
	/* the binary's own path, so that the process keeps its name (comm: what ps, pgrep and
	 * top show) instead of "exe"; /proc/self/exe if the path is gone */
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		execv(self, argv);
	}
	execv("/proc/self/exe", argv);
	unsetenv("OPENBLAS_CORETYPE");
}

/* 0 if everything printed to stdout reached it, else 1 with one line on stderr */
static int stdout_written(const char *what)
{
	errno = 0;
	if (fflush(stdout) == 0 && !ferror(stdout))
		return 0;
	ckpt_print_line(stderr, "ckpt-train: error: ", "cannot write %s to stdout (%s)", what,
	                errno ? strerror(errno) : "write error");
	return 1;
}

/* A run that failed has said why and closed its store: the process ends without exit()'s
 * handlers. OpenBLAS's destructor joins its worker threads, and a worker whose buffer an
 * address-space limit refused retries the allocation forever, so after an "out of memory"
 * under ulimit -v the process hung in exit(), deaf to SIGTERM. ASan builds keep exit() for
 * their leak check. */
static _Noreturn void end_failed_run(int status)
{
	fflush(stdout);
#if defined(__SANITIZE_ADDRESS__)
	exit(status);
#else
	_exit(status);
#endif
}

int main(int argc, char **argv)
{
	/* a closed stdout must not become the store's lock.mdb, which progress lines then fill */
	int fds_rc = ckpt_std_fds_open();
	if (fds_rc != 0) {
		ckpt_print_line(stderr, "ckpt-train: error: ", "a standard stream is closed and "
		                "/dev/null cannot be opened (%s)", strerror(-fds_rc));
		return 1;
	}
	select_blas_kernels(argv);
	/* past a file size limit (ulimit -f) the store's writes fail with EFBIG and the commit is
	 * reported, instead of SIGXFSZ killing the run without a word */
	signal(SIGXFSZ, SIG_IGN);
	static const struct option options[] = {
	    {"store", required_argument, NULL, OPT_STORE},
	    {"data", required_argument, NULL, OPT_DATA},
	    {"layers", required_argument, NULL, OPT_LAYERS},
	    {"epochs", required_argument, NULL, OPT_EPOCHS},
	    {"batch-size", required_argument, NULL, OPT_BATCH},
	    {"optimizer", required_argument, NULL, OPT_OPTIMIZER},
	    {"lr", required_argument, NULL, OPT_LR},
	    {"momentum", required_argument, NULL, OPT_MOMENTUM},
	    {"dampening", required_argument, NULL, OPT_DAMPENING},
	    {"nesterov", no_argument, NULL, OPT_NESTEROV},
	    {"weight-decay", required_argument, NULL, OPT_WD},
	    {"betas", required_argument, NULL, OPT_BETAS},
	    {"eps", required_argument, NULL, OPT_EPS},
	    {"lr-schedule", required_argument, NULL, OPT_SCHEDULE},
	    {"val-split", required_argument, NULL, OPT_VAL_SPLIT},
	    {"seed", required_argument, NULL, OPT_SEED},
	    {"monitor", required_argument, NULL, OPT_MONITOR},
	    {"keep-last", required_argument, NULL, OPT_KEEP_LAST},
	    {"keep-top", required_argument, NULL, OPT_KEEP_TOP},
	    {"threads", required_argument, NULL, OPT_THREADS},
	    {"device", required_argument, NULL, OPT_DEVICE},
	    {"resume", optional_argument, NULL, OPT_RESUME},
	    {"quiet", no_argument, NULL, OPT_QUIET},
	    /* tests only: commit without fsync */
	    {"no-sync", no_argument, NULL, OPT_NO_SYNC},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	train_config cfg;
	train_config_defaults(&cfg);
	bool lr_set = false, wd_set = false;
	int c;
	uint32_t u;
	/* an option given again: the later value wins, as with argparse and most Unix tools (a
	 * wrapper's defaults first, then the user's own) */
	opterr = 0; /* one error line of our own for a bad option (below) */
	while ((c = getopt_long(argc, argv, ":hV", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return stdout_written("the help");
		case 'V':
			printf("ckpt-train %s (store schema %d)\n", CKPT_VERSION,
			       CKPT_SCHEMA_VERSION);
			return stdout_written("the version");
		case OPT_STORE:
			cfg.store_path = optarg;
			break;
		case OPT_DATA:
			if (!*optarg) {
				error_line("invalid --data '%s' (expected an IDX directory, a CSV file, fashion-mnist or synthetic)", optarg);
				return 2;
			}
			if (strlen(optarg) >= sizeof(cfg.data)) {
				error_line("cannot open data %s (File name too long)", optarg);
				return 1;
			}
			snprintf(cfg.data, sizeof(cfg.data), "%s", optarg);
			cfg.explicit_set |= TRAIN_SET_DATA;
			break;
		case OPT_LAYERS:
			if (strlen(optarg) >= sizeof(cfg.layers)) {
				ckpt_print_line(stderr, "ckpt-train: error: ",
				                "invalid --layers: %zu characters, at most %zu (%d "
				                "layers at most)",
				                strlen(optarg), sizeof(cfg.layers) - 1, TRAIN_MAX_LAYERS);
				return 2;
			}
			if (check_layer_sizes(optarg))
				return 2;
			if (train_parse_layers(cfg.sizes, &cfg.nsizes, optarg)) {
				ckpt_print_line(stderr, "ckpt-train: error: ", "%s", train_last_error());
				return 2;
			}
			if (cfg.sizes[cfg.nsizes - 1] < 2) {
				error_line("invalid --layers '%s': the last size is the number of "
				           "classes and must be at least 2",
				           optarg);
				return 2;
			}
			/* as numbers print: "020,10" is stored, shown and compared as "20,10" */
			cfg.layers[0] = '\0';
			for (uint32_t i = 0; i < cfg.nsizes; i++) {
				size_t used = strlen(cfg.layers);
				snprintf(cfg.layers + used, sizeof(cfg.layers) - used, "%s%" PRIu32,
				         i ? "," : "", cfg.sizes[i]);
			}
			cfg.explicit_set |= TRAIN_SET_LAYERS;
			break;
		case OPT_EPOCHS:
			if (parse_u32(&cfg.epochs, optarg, "--epochs", 1, TRAIN_MAX_EPOCHS))
				return 2;
			cfg.explicit_set |= TRAIN_SET_EPOCHS;
			break;
		case OPT_BATCH:
			if (parse_u32(&cfg.batch_size, optarg, "--batch-size", 1, 1u << 20))
				return 2;
			cfg.explicit_set |= TRAIN_SET_BATCH;
			break;
		case OPT_OPTIMIZER:
			if (train_opt_parse(&cfg.opt.kind, optarg)) {
				ckpt_print_line(stderr, "ckpt-train: error: ", "%s",
				                train_last_error());
				return 2;
			}
			cfg.explicit_set |= TRAIN_SET_OPTIMIZER;
			break;
		case OPT_LR:
			if (parse_double(&cfg.opt.lr, optarg, "--lr"))
				return 2;
			if (!(cfg.opt.lr > 0)) {
				error_line("invalid --lr %s (the learning rate must be positive)",
				           optarg);
				return 2;
			}
			lr_set = true;
			cfg.explicit_set |= TRAIN_SET_LR;
			break;
		case OPT_MOMENTUM:
			if (parse_double(&cfg.opt.momentum, optarg, "--momentum"))
				return 2;
			cfg.explicit_set |= TRAIN_SET_MOMENTUM;
			break;
		case OPT_DAMPENING:
			if (parse_double(&cfg.opt.dampening, optarg, "--dampening"))
				return 2;
			cfg.explicit_set |= TRAIN_SET_DAMPENING;
			break;
		case OPT_NESTEROV:
			cfg.opt.nesterov = true;
			cfg.explicit_set |= TRAIN_SET_NESTEROV;
			break;
		case OPT_WD:
			if (parse_double(&cfg.opt.weight_decay, optarg, "--weight-decay"))
				return 2;
			wd_set = true;
			cfg.explicit_set |= TRAIN_SET_WEIGHT_DECAY;
			break;
		case OPT_BETAS:
			if (parse_betas(&cfg.opt, optarg))
				return 2;
			cfg.explicit_set |= TRAIN_SET_BETAS;
			break;
		case OPT_EPS:
			if (parse_double(&cfg.opt.eps, optarg, "--eps"))
				return 2;
			cfg.explicit_set |= TRAIN_SET_EPS;
			break;
		case OPT_SCHEDULE:
			if (train_parse_schedule(&cfg, optarg)) {
				ckpt_print_line(stderr, "ckpt-train: error: ", "%s",
				                train_last_error());
				return 2;
			}
			cfg.explicit_set |= TRAIN_SET_SCHEDULE;
			break;
		case OPT_VAL_SPLIT:
			if (parse_u32(&cfg.val_split, optarg, "--val-split", 0, UINT32_MAX))
				return 2;
			cfg.explicit_set |= TRAIN_SET_VAL_SPLIT;
			break;
		case OPT_SEED:
			if (parse_uint(&cfg.seed, optarg, "--seed", 0, INT64_MAX))
				return 2;
			cfg.explicit_set |= TRAIN_SET_SEED;
			break;
		case OPT_MONITOR:
			if (strcmp(optarg, "val_loss") != 0 && strcmp(optarg, "val_acc") != 0) {
				error_line("invalid --monitor '%s' (expected val_loss or val_acc)",
				           optarg);
				return 2;
			}
			snprintf(cfg.monitor, sizeof(cfg.monitor), "%s", optarg);
			cfg.explicit_set |= TRAIN_SET_MONITOR;
			break;
		case OPT_KEEP_LAST:
			if (parse_u32(&cfg.keep_last, optarg, "--keep-last", 0, UINT32_MAX))
				return 2;
			cfg.explicit_set |= TRAIN_SET_KEEP;
			break;
		case OPT_KEEP_TOP:
			if (parse_u32(&cfg.keep_top, optarg, "--keep-top", 0, UINT32_MAX))
				return 2;
			cfg.explicit_set |= TRAIN_SET_KEEP_TOP;
			break;
		case OPT_THREADS:
			if (parse_u32(&u, optarg, "--threads", 1, 1024))
				return 2;
			cfg.threads = (int)u;
			break;
		case OPT_DEVICE:
			if (strlen(optarg) >= sizeof(cfg.device)) {
				error_line("invalid --device '%s'", optarg);
				return 2;
			}
			snprintf(cfg.device, sizeof(cfg.device), "%s", optarg);
			cfg.explicit_set |= TRAIN_SET_DEVICE;
			break;
		case OPT_RESUME: {
			/* "--resume best" with a space: the next word, unless it is an option, is the
			 * value; a later --resume replaces an earlier one, a bare one means latest */
			const char *which = optarg;
			if (!which && optind < argc && argv[optind][0] != '-')
				which = argv[optind++];
			cfg.resume = true;
			if (!which)
				which = "latest";
			if (strlen(which) >= sizeof(cfg.resume_from)) {
				error_line("invalid --resume '%s'", which);
				return 2;
			}
			snprintf(cfg.resume_from, sizeof(cfg.resume_from), "%s", which);
			break;
		}
		case OPT_QUIET:
			cfg.quiet = true;
			break;
		case OPT_NO_SYNC:
			cfg.no_sync = true;
			break;
		default: {
			const char *arg = optind > 0 ? argv[optind - 1] : "";
			char shortopt[3] = {'-', (char)optopt, 0};
			if (strncmp(arg, "--", 2) != 0)
				arg = shortopt;
			int len = (int)strcspn(arg, "=");
			ckpt_print_line(
			    stderr, "ckpt-train: error: ", "%s '%.*s' (try 'ckpt-train --help')",
			    c == ':'                         ? "option needs a value:"
			    : arg[len] == '=' && optopt != 0 ? "option takes no value:"
			                                     : "unknown or ambiguous option",
			    len, arg);
			return 2;
		}
		}
	}
	if (optind < argc) {
		error_line("unexpected argument '%s' (try 'ckpt-train --help')", argv[optind]);
		return 2;
	}
	if (!cfg.store_path) {
		ckpt_print_line(stderr, "ckpt-train: error: ",
		                "--store DIR is required (try 'ckpt-train --help')");
		return 2;
	}
	/* values whose form alone is wrong are usage errors, found before any store is looked at */
	if (!*cfg.store_path) {
		error_line("invalid --store '%s' (expected a directory path)", cfg.store_path);
		return 2;
	}
	uint64_t resume_epoch;
	if (cfg.resume && train_parse_resume_spec(&resume_epoch, cfg.resume_from) != 0) {
		error_line("invalid --resume '%s' (expected latest, best or an epoch: 4 or epoch-0004)",
		           cfg.resume_from);
		return 2;
	}
	int device_index;
	if (strcmp(cfg.device, "cpu") != 0 && train_cuda_parse_device(&device_index, cfg.device)) {
		error_line("%s", train_last_error());
		return 2;
	}
	if (cfg.opt.kind != TRAIN_OPT_SGD && !lr_set)
		cfg.opt.lr = 1e-3;
	if (cfg.opt.kind == TRAIN_OPT_ADAMW && !wd_set)
		cfg.opt.weight_decay = 1e-2;
	/* a closed stdout pipe is a write error (EPIPE) to report, not a silent death */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		ckpt_print_line(stderr, "ckpt-train: error: ", "cannot ignore SIGPIPE (%s)",
		                strerror(errno));
		return 1;
	}
	if (train_install_signal_handlers()) {
		ckpt_print_line(stderr, "ckpt-train: error: ", "%s", train_last_error());
		return 1;
	}
	train_result res;
	int rc = train_run(&cfg, &res);
	if (rc == TRAIN_EINTERRUPTED) {
		ckpt_print_line(stderr, "ckpt-train: ", "%s", train_last_error());
		end_failed_run(128 + res.signal);
	}
	if (rc) {
		ckpt_print_line(stderr, "ckpt-train: error: ", "%s", train_last_error());
		end_failed_run(rc == TRAIN_EUSAGE ? 2 : 1);
	}
	if (train_stdout_failed())
		return 1; /* said once as a warning when it happened; the checkpoints are saved */
	errno = 0;
	if (fflush(stdout) != 0 || ferror(stdout)) {
		/* the checkpoints are committed; only the log lines were lost */
		ckpt_print_line(stderr, "ckpt-train: error: ",
		                "cannot write the epoch lines to stdout (%s); the "
		                "checkpoints are saved in %s",
		                errno ? strerror(errno) : "write error", cfg.store_path);
		return 1;
	}
	return 0;
}
