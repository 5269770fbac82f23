/* train/engine.h - the epoch loop of ckpt-train: train, validate, test, checkpoint, resume
 *
 * One run = one store. Every epoch ends in ONE store commit (parameters, optimizer state,
 * counters, schedule, RNG, metrics); nothing is written for an epoch that did not finish.
 * The commit of epoch N runs on a background thread while epoch N+1 trains (train/engine.c).
 *
 * Environment knobs for tests and benchmarks only:
 *   CKPT_TRAIN_TEST_PERSIST_DELAY_MS=N  hold each commit open N ms before committing
 *   CKPT_TRAIN_BENCH_NO_CHECKPOINT=1    train without snapshots or commits (the baseline of
 *                                       tests/bench/bench_gpu.sh; the store stays empty)
 *   CKPT_TRAIN_BENCH_STATS=1            at the end, one line on stderr: the commits' count and
 *                                       size, the persist thread's mean wait for the copy off
 *                                       the device and mean commit time, and how long the
 *                                       training loop waited for commits (all but the last)
 *   CKPT_TRAIN_CUDA_PLUGIN=PATH         the CUDA plug-in to load for --device cuda[:N]
 *   CKPT_TRAIN_TEST_NO_MEMORY_CHECK=1   skip the check of the memory a run needs against what
 *                                       is available (tests of the allocation failures)
 *   CKPT_TRAIN_TEST_EVAL_DELAY_MS=N     sleep N ms after each epoch's last batch, before it is
 *                                       evaluated (tests of a signal arriving then)
 *
 * What a checkpoint holds besides tensors (extra-state keys, all JSON text except none):
 *   optimizer.name          "sgd" | "adam" | "adamw"
 *   optimizer.param_groups  torch 1.13 optimizer.state_dict()['param_groups']
 *   train.config            the run's exact configuration (doubles at full precision): what a
 *                           resume restores and checks the command line against; also the
 *                           data set's identity (sample counts, image shape, CRC-32s of the
 *                           labels and the pixels), checked on resume: the same data set
 *                           may move (--data NEWPATH), a changed one is refused
 *   train.state             {"epoch", "global_step", "optimizer_steps", "threads", "device"}
 *   train.rng               {"algorithm":"xoshiro256**","state":[4 x "16 hex digits"]}: the
 *                           shuffling RNG after the epoch
 *   train.lr_scheduler      {"name", "last_epoch", "base_lr", "step_size"/"gamma"/"T_max",
 *                           "eta_min", "last_lr"}: torch's LR scheduler state_dict fields
 */
#ifndef TRAIN_ENGINE_H
#define TRAIN_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "train/model.h"
#include "train/optim.h"

/** The most epochs a run may reach (--epochs): far beyond any use, and far from wrapping the
 *  loop's 32-bit epoch counter. */
#define TRAIN_MAX_EPOCHS 1000000u

/** Returned by train_run() when SIGINT/SIGTERM/SIGHUP stopped it (see train_result.signal). */
#define TRAIN_EINTERRUPTED (-30001)
/** Returned by train_run() when the loss became NaN or infinite. */
#define TRAIN_ENONFINITE (-30002)
/** Returned by train_run() when the command line alone is wrong (an option value out of
 * range, options that contradict each other whatever the data and store): exit status 2. */
#define TRAIN_EUSAGE (-30003)

typedef enum train_schedule_kind {
	TRAIN_SCHED_NONE = 0,
	TRAIN_SCHED_STEP = 1,   /**< StepLR(step_size=every, gamma), stepped once per epoch */
	TRAIN_SCHED_COSINE = 2, /**< CosineAnnealingLR(T_max=epochs of the first run, eta_min=0) */
} train_schedule_kind;

/* Bits of train_config.explicit_set: options given on the command line. On resume, explicit
 * options must agree with the stored run; the others are taken from it. */
enum {
	TRAIN_SET_DATA = 1u << 0,
	TRAIN_SET_LAYERS = 1u << 1,
	TRAIN_SET_BATCH = 1u << 2,
	TRAIN_SET_OPTIMIZER = 1u << 3,
	TRAIN_SET_LR = 1u << 4,
	TRAIN_SET_MOMENTUM = 1u << 5,
	TRAIN_SET_DAMPENING = 1u << 6,
	TRAIN_SET_NESTEROV = 1u << 7,
	TRAIN_SET_WEIGHT_DECAY = 1u << 8,
	TRAIN_SET_BETAS = 1u << 9,
	TRAIN_SET_EPS = 1u << 10,
	TRAIN_SET_SCHEDULE = 1u << 11,
	TRAIN_SET_VAL_SPLIT = 1u << 12,
	TRAIN_SET_SEED = 1u << 13,
	TRAIN_SET_MONITOR = 1u << 14,
	TRAIN_SET_KEEP = 1u << 15,     /**< --keep-last */
	TRAIN_SET_KEEP_TOP = 1u << 16, /**< --keep-top */
	TRAIN_SET_EPOCHS = 1u << 17,
	TRAIN_SET_DEVICE = 1u << 18, /**< --device; a resume without it keeps the run's device */
};

typedef struct train_config {
	const char *store_path;
	char data[4096];  /**< "fashion-mnist", "synthetic", DIR or FILE.csv */
	char layers[512]; /**< "784,256,128,10" */
	uint32_t sizes[TRAIN_MAX_LAYERS + 1];
	uint32_t nsizes;
	uint32_t epochs; /**< total to reach (on resume without --epochs: the run's target) */
	uint32_t batch_size;
	uint32_t val_split;
	train_opt_config opt;
	train_schedule_kind schedule;
	uint32_t schedule_every; /**< step: epochs per decay */
	double schedule_gamma;   /**< step: factor */
	uint32_t schedule_t_max; /**< cosine: period in epochs (the first run's --epochs) */
	uint64_t seed;
	char monitor[16]; /**< "val_loss" or "val_acc" */
	uint32_t keep_last, keep_top;
	int threads; /**< BLAS threads; 0 = online CPUs */
	char device[32];
	bool resume;
	char resume_from[32]; /**< "latest", "best" or an epoch number */
	bool quiet;
	bool no_sync; /**< store without fsync (tests) */
	/* what the data set held when the run started (recorded, then compared on resume so a
	 * changed data set is not trained on silently); data_known is false for stores written
	 * before they were recorded */
	bool data_known;
	uint32_t data_train_count, data_test_count;
	uint32_t data_labels_crc32; /**< CRC-32 of the training then the test labels (int32) */
	/* recorded since: the image shape (0 x 0 for CSV and synthetic data) and a CRC-32 of the
	 * pixels (training then test features, as float32); false for older stores */
	bool data_pixels_known;
	uint32_t data_rows, data_cols;
	uint32_t data_pixels_crc32;
	/* on resume with --data naming another place than the run's data: the run's (the data
	 * there must be the same data set); "" otherwise */
	char data_before[4096];
	unsigned explicit_set; /**< TRAIN_SET_* */
} train_config;

/** Fill @p cfg with the defaults of ckpt-train (no store path). */
void train_config_defaults(train_config *cfg);

/** Parse a --lr-schedule value: "none", "step:EVERY:GAMMA", "cosine". */
int train_parse_schedule(train_config *cfg, const char *text);

/** Learning rate of the epoch with 0-based index @p epoch_index. */
double train_schedule_lr(const train_config *cfg, uint32_t epoch_index);

typedef struct train_result {
	uint32_t last_epoch;  /**< last epoch committed (0 if none) */
	uint32_t best_epoch;  /**< the store's best after the run (0 if none) */
	double last_test_acc; /**< test_acc of the last epoch trained (NaN if none) */
	int signal;           /**< SIGINT/SIGTERM/SIGHUP that stopped the run, else 0 */
} train_result;

/**
 * Run (or resume) training as @p cfg says. Progress goes to stderr on a terminal, one line
 * per epoch to stdout otherwise (nothing with cfg->quiet).
 * @return 0, TRAIN_EINTERRUPTED, TRAIN_ENONFINITE, or a negative error code; the message is
 *         in train_last_error().
 */
int train_run(train_config *cfg, train_result *result);

/**
 * Parse a --resume value: "latest", "best", an epoch number N >= 1 or "epoch-N" (a directory
 * name of the mount). @p out_epoch receives N, or 0 for latest/best.
 * @return 0, or -EINVAL for anything else.
 */
int train_parse_resume_spec(uint64_t *out_epoch, const char *spec);

/** True once a write to stdout failed during train_run() (reported once on stderr as a
 *  warning; training went on without stdout). */
bool train_stdout_failed(void);

/** Install SIGINT/SIGTERM/SIGHUP handlers that make train_run() stop at the next batch
 *  boundary (an ignored SIGHUP, as under nohup, stays ignored). */
int train_install_signal_handlers(void);

#endif
