/* tests/tools/mkstore_many.c - write many small checkpoints fast (benchmarks, live-mount tests)
 *
 * usage: mkstore_many STORE --epochs N [--interval-ms M] [--keep-last K] [--params P] [--stdin]
 *
 * Each epoch holds P float32 model tensors "fcI.weight" [8,8] (values differ per epoch), their
 * momentum buffers, param groups and metrics val_loss/train_loss/val_acc. val_loss mostly falls
 * with a bump every 7th epoch, so `best` moves but is not always the latest. Commits skip fsync.
 * With --stdin, each epoch waits for a line on stdin (a test paces the commits; EOF stops), and
 * "epoch N" is printed once it is committed.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ckpt/store.h"

static void die(const char *what, int rc)
{
	fprintf(stderr, "mkstore_many: error: %s (%s: %s)\n", what, ckpt_strerror(rc),
	        ckpt_last_error());
	exit(1);
}

static unsigned long parse_number(const char *opt, const char *s)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || end == s) {
		fprintf(stderr, "mkstore_many: error: %s wants a number, got '%s'\n", opt, s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
	    {"epochs", required_argument, NULL, 'e'},
	    {"interval-ms", required_argument, NULL, 'i'},
	    {"keep-last", required_argument, NULL, 'k'},
	    {"params", required_argument, NULL, 'p'},
	    {"stdin", no_argument, NULL, 's'},
	    {NULL, 0, NULL, 0},
	};
	unsigned long epochs = 10, interval_ms = 0, keep_last = 0, params = 2;
	bool paced = false;
	int c;
	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case 'e':
			epochs = parse_number("--epochs", optarg);
			break;
		case 'i':
			interval_ms = parse_number("--interval-ms", optarg);
			break;
		case 'k':
			keep_last = parse_number("--keep-last", optarg);
			break;
		case 'p':
			params = parse_number("--params", optarg);
			break;
		case 's':
			paced = true;
			break;
		default:
			fprintf(stderr, "usage: mkstore_many STORE --epochs N [--interval-ms M] "
			                "[--keep-last K] [--params P]\n");
			return 2;
		}
	}
	if (optind + 1 != argc || params == 0 || params > 1000) {
		fprintf(stderr, "usage: mkstore_many STORE --epochs N [--interval-ms M] "
		                "[--keep-last K] [--params P<=1000]\n");
		return 2;
	}
	ckpt_run_meta meta = {
	    .model = "mlp",
	    .layers = "8,8",
	    .optimizer = "sgd",
	    .hyperparams = "{\"lr\":0.1,\"momentum\":0.9}",
	    .dataset = "synthetic-many",
	    .monitor = "val_loss",
	    .monitor_mode = CKPT_MODE_MIN,
	};
	ckpt_store_options opts = {.no_sync = true, .keep_last = (uint32_t)keep_last};
	ckpt_store *store;
	int rc = ckpt_store_create(&store, argv[optind], &meta, &opts);
	if (rc)
		die("cannot create the store", rc);
	/* one group over the P parameters: "params":[0,1,...,P-1] */
	static char groups[512 + 5 * 1000];
	int glen = snprintf(groups, sizeof(groups),
	                    "[{\"lr\":0.1,\"momentum\":0.9,\"dampening\":0,\"weight_decay\":0,"
	                    "\"nesterov\":false,\"maximize\":false,\"foreach\":null,"
	                    "\"differentiable\":false,\"params\":[");
	for (unsigned long p = 0; p < params; p++)
		glen += snprintf(groups + glen, sizeof(groups) - (size_t)glen, "%s%lu", p ? "," : "", p);
	snprintf(groups + glen, sizeof(groups) - (size_t)glen, "]}]");
	/* the writer borrows tensor bytes until commit: one buffer per tensor */
	float *w = malloc(params * 64 * sizeof(float)), *m = malloc(params * 64 * sizeof(float));
	if (!w || !m) {
		fprintf(stderr, "mkstore_many: error: out of memory\n");
		return 1;
	}
	uint64_t shape[2] = {8, 8};
	for (unsigned long e = 1; e <= epochs; e++) {
		char line[64];
		if (paced && !fgets(line, sizeof(line), stdin))
			break;
		ckpt_writer *wr;
		rc = ckpt_writer_begin(&wr, store, e);
		if (rc)
			die("begin", rc);
		for (unsigned long p = 0; p < params; p++) {
			char name[64], buf_name[96];
			float *pw = w + p * 64, *pm = m + p * 64;
			for (int i = 0; i < 64; i++) {
				pw[i] = (float)e * 0.001f + (float)p + (float)i * 0.01f;
				pm[i] = -pw[i];
			}
			snprintf(name, sizeof(name), "fc%lu.weight", p + 1);
			snprintf(buf_name, sizeof(buf_name), "%s.momentum_buffer", name);
			rc = ckpt_writer_put_tensor(wr, name, CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32,
			                            2, shape, NULL, pw, 64 * sizeof(float));
			if (!rc)
				rc = ckpt_writer_put_tensor(wr, buf_name, CKPT_GROUP_OPTIMIZER,
				                            CKPT_DTYPE_FLOAT32, 2, shape, NULL, pm,
				                            64 * sizeof(float));
			if (rc)
				die("put tensor", rc);
		}
		double val_loss = 1.0 / (double)e + (e % 7 == 0 ? 0.5 : 0.0);
		ckpt_writer_set_step(wr, e * 100);
		if ((rc = ckpt_writer_set_metric(wr, "val_loss", val_loss)) ||
		    (rc = ckpt_writer_set_metric(wr, "train_loss", 1.5 / (double)e)) ||
		    (rc = ckpt_writer_set_metric(wr, "val_acc", 1.0 - val_loss / 2)) ||
		    (rc = ckpt_writer_set_extra(wr, "optimizer.param_groups", groups,
		                                strlen(groups))) ||
		    (rc = ckpt_writer_set_extra(wr, "optimizer.name", "sgd", 3)))
			die("metrics", rc);
		rc = ckpt_writer_commit(wr);
		if (rc)
			die("commit", rc);
		if (paced) { /* the test waits for this line */
			printf("epoch %lu\n", e);
			fflush(stdout);
		}
		if (interval_ms) {
			struct timespec ts = {(time_t)(interval_ms / 1000),
			                      (long)(interval_ms % 1000) * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	ckpt_store_close(store);
	free(w);
	free(m);
	return 0;
}
