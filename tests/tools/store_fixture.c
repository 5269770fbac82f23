/* tests/tools/store_fixture.c - writes small, known stores through libckpt for CLI tests
 *
 *   store_fixture create DIR [EPOCHS]      val_loss (min) 0.9,0.5,0.7,0.6,0.65,... best epoch 2;
 *                                          chunk size 64; tensors fc1.weight [4,3] float32 on
 *                                          cuda:0, fc1.bias [4] = 1,2,3,4, frozen [64] (same
 *                                          bytes every epoch), optimizer
 *                                          fc1.weight.momentum_buffer, step (0-dim)
 *   store_fixture corrupt DIR EPOCH NAME   flip one bit in chunk 0 of model tensor NAME
 *   store_fixture schema DIR N             overwrite the stored schema version
 *   store_fixture set-extra DIR EPOCH KEY VALUE
 *                                          commit EPOCH again, the same but for extra KEY
 *                                          (a damaged train.state or train.rng, as a resume
 *                                          must refuse it)
 * Exit 0 on success, 1 with a message on stderr otherwise.
 */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/store.h"

static int fail(const char *what)
{
	fprintf(stderr, "store_fixture: %s: %s\n", what, ckpt_last_error());
	return 1;
}

static int create(const char *dir, int epochs)
{
	ckpt_run_meta meta = {
	    .model = "mlp",
	    .layers = "3,4",
	    .optimizer = "sgd",
	    .hyperparams = "{\"lr\":0.1,\"momentum\":0.9}",
	    .dataset = "synthetic",
	    .seed = 7,
	    .monitor = "val_loss",
	    .monitor_mode = CKPT_MODE_MIN,
	};
	ckpt_store_options opts = {.chunk_size = 64, .no_sync = true};
	ckpt_store *s;
	if (ckpt_store_create(&s, dir, &meta, &opts))
		return fail("create");
	static const double losses[] = {0.9, 0.5, 0.7, 0.6, 0.65, 0.8, 0.75, 0.55};
	float frozen[64];
	for (int i = 0; i < 64; i++)
		frozen[i] = (float)i * 0.5f;
	for (int e = 1; e <= epochs; e++) {
		float weight[12], bias[4] = {1, 2, 3, 4}, mom[12], step = (float)(e * 100);
		for (int i = 0; i < 12; i++) {
			weight[i] = (float)(i + 1) / (float)e;
			mom[i] = (float)i * 0.01f * (float)e;
		}
		uint64_t wshape[2] = {4, 3}, bshape[1] = {4}, fshape[1] = {64};
		ckpt_writer *w;
		if (ckpt_writer_begin(&w, s, (uint64_t)e))
			return fail("begin");
		if (ckpt_writer_put_tensor(w, "fc1.weight", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 2,
		                           wshape, "cuda:0", weight, sizeof(weight)) ||
		    ckpt_writer_put_tensor(w, "fc1.bias", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 1,
		                           bshape, "cuda:0", bias, sizeof(bias)) ||
		    ckpt_writer_put_tensor(w, "frozen", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 1,
		                           fshape, NULL, frozen, sizeof(frozen)) ||
		    ckpt_writer_put_tensor(w, "fc1.weight.momentum_buffer", CKPT_GROUP_OPTIMIZER,
		                           CKPT_DTYPE_FLOAT32, 2, wshape, "cuda:0", mom,
		                           sizeof(mom)) ||
		    ckpt_writer_put_tensor(w, "fc1.weight.step", CKPT_GROUP_OPTIMIZER,
		                           CKPT_DTYPE_FLOAT32, 0, NULL, NULL, &step,
		                           sizeof(step))) {
			ckpt_writer_abort(w);
			return fail("put");
		}
		ckpt_writer_set_step(w, (uint64_t)e * 100);
		double loss = losses[(e - 1) % 8] + (e > 8 ? 1.0 : 0.0);
		if (ckpt_writer_set_metric(w, "val_loss", loss) ||
		    ckpt_writer_set_metric(w, "train_loss", loss + 0.1) ||
		    ckpt_writer_set_extra(w, "rng", "seed", 4)) {
			ckpt_writer_abort(w);
			return fail("metric");
		}
		if (ckpt_writer_commit(w))
			return fail("commit");
	}
	ckpt_store_close(s);
	return 0;
}

static int raw_update(const char *dir, const char *db, MDB_val *key, int (*edit)(MDB_val *v))
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val val;
	int rc;
	if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_maxdbs(env, 8)) ||
	    (rc = mdb_env_open(env, dir, 0, 0644)) || (rc = mdb_txn_begin(env, NULL, 0, &txn))) {
		fprintf(stderr, "store_fixture: %s: %s\n", dir, mdb_strerror(rc));
		return 1;
	}
	if ((rc = mdb_dbi_open(txn, db, 0, &dbi)) || (rc = mdb_get(txn, dbi, key, &val))) {
		fprintf(stderr, "store_fixture: %s: %s\n", db, mdb_strerror(rc));
		mdb_txn_abort(txn);
		mdb_env_close(env);
		return 1;
	}
	void *copy = malloc(val.mv_size);
	memcpy(copy, val.mv_data, val.mv_size);
	MDB_val nv = {val.mv_size, copy};
	edit(&nv);
	rc = mdb_put(txn, dbi, key, &nv, 0);
	if (!rc)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	free(copy);
	mdb_env_close(env);
	if (rc) {
		fprintf(stderr, "store_fixture: writing: %s\n", mdb_strerror(rc));
		return 1;
	}
	return 0;
}

static int flip_bit(MDB_val *v)
{
	((unsigned char *)v->mv_data)[v->mv_size / 2] ^= 0x10;
	return 0;
}

static unsigned new_schema;

static int set_schema(MDB_val *v)
{
	unsigned char *p = v->mv_data;
	p[0] = (unsigned char)new_schema;
	p[1] = p[2] = p[3] = 0;
	return 0;
}

static int corrupt(const char *dir, uint64_t epoch, const char *name)
{
	ckpt_store *s;
	ckpt_snapshot *snap;
	const ckpt_checkpoint *c;
	const ckpt_tensor_info *t;
	if (ckpt_store_open(&s, dir, CKPT_OPEN_READONLY))
		return fail("open");
	if (ckpt_snapshot_open(&snap, s) || ckpt_snapshot_checkpoint(&c, snap, epoch) ||
	    ckpt_checkpoint_find_tensor(&t, c, CKPT_GROUP_MODEL, name))
		return fail("find tensor");
	unsigned char key[20];
	memcpy(key, t->hash, 16);
	memset(key + 16, 0, 4);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	MDB_val k = {20, key};
	return raw_update(dir, "chunks", &k, flip_bit);
}

static int set_extra(const char *dir, uint64_t epoch, const char *key, const char *value)
{
	ckpt_store *s;
	ckpt_snapshot *snap;
	const ckpt_checkpoint *c;
	ckpt_writer *w;
	if (ckpt_store_open(&s, dir, 0))
		return fail("open");
	if (ckpt_snapshot_open(&snap, s) || ckpt_snapshot_checkpoint(&c, snap, epoch))
		return fail("find epoch");
	if (ckpt_writer_begin(&w, s, epoch))
		return fail("begin");
	size_t n = ckpt_checkpoint_tensor_count(c);
	void **bufs = calloc(n ? n : 1, sizeof(*bufs)); /* borrowed by the writer until commit */
	for (size_t i = 0; bufs && i < n; i++) {
		const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(c, i);
		if (!(bufs[i] = malloc(t->nbytes ? t->nbytes : 1)) ||
		    ckpt_tensor_read(bufs[i], snap, t, 0, t->nbytes) ||
		    ckpt_writer_put_tensor(w, t->name, t->group, t->dtype, t->ndim, t->shape,
		                           t->device, bufs[i], t->nbytes))
			return fail("copy tensor");
	}
	for (size_t i = 0; i < ckpt_checkpoint_metric_count(c); i++) {
		const char *name;
		double v;
		if (ckpt_checkpoint_metric_at(c, i, &name, &v) || ckpt_writer_set_metric(w, name, v))
			return fail("copy metric");
	}
	for (size_t i = 0; i < ckpt_checkpoint_extra_count(c); i++) {
		const char *k;
		const void *d;
		size_t len;
		if (ckpt_checkpoint_extra_at(c, i, &k, &d, &len))
			return fail("copy extra");
		if (strcmp(k, key) == 0) {
			d = value;
			len = strlen(value);
		}
		if (ckpt_writer_set_extra(w, k, d, len))
			return fail("copy extra");
	}
	ckpt_writer_set_step(w, ckpt_checkpoint_step(c));
	if (ckpt_writer_commit(w))
		return fail("commit");
	ckpt_snapshot_close(snap);
	for (size_t i = 0; bufs && i < n; i++)
		free(bufs[i]);
	free(bufs);
	ckpt_store_close(s);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "set-extra") == 0)
		return set_extra(argv[2], strtoull(argv[3], NULL, 10), argv[4], argv[5]);
	if (argc >= 3 && strcmp(argv[1], "create") == 0)
		return create(argv[2], argc > 3 ? atoi(argv[3]) : 5);
	if (argc == 5 && strcmp(argv[1], "corrupt") == 0)
		return corrupt(argv[2], strtoull(argv[3], NULL, 10), argv[4]);
	if (argc == 4 && strcmp(argv[1], "schema") == 0) {
		new_schema = (unsigned)atoi(argv[3]);
		MDB_val k = {6, "schema"};
		return raw_update(argv[2], "meta", &k, set_schema);
	}
	fprintf(stderr, "usage: store_fixture create DIR [EPOCHS] | corrupt DIR EPOCH NAME | "
	                "schema DIR N | set-extra DIR EPOCH KEY VALUE\n");
	return 1;
}
