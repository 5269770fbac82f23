/* tests/tools/store_names.c - writes a store whose strings are hostile, for CLI tests
 *
 *   store_names DIR    run metadata with a newline (dataset "synthetic\nbest: epoch-0042"),
 *                      a tab (model), a space (monitor "val loss") and a cut UTF-8 sequence
 *                      (optimizer "sgd\xc3": not UTF-8, as old stores can hold); 2 epochs,
 *                      epoch 1 the best, each with metrics "val loss", "best", "epoch", "a\nb"
 *                      and "acc\xff" (not UTF-8) and one tensor "w 1" [2] float32
 * Exit 0 on success, 1 with a message on stderr otherwise.
 */
#include <stdio.h>

#include "ckpt/store.h"

static int fail(const char *what)
{
	fprintf(stderr, "store_names: %s: %s\n", what, ckpt_last_error());
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: store_names DIR\n");
		return 1;
	}
	/* the other strings read as "" */
	ckpt_run_meta meta = {.model = "mlp\tx",
	                      .optimizer = "sgd\xc3",
	                      .dataset = "synthetic\nbest: epoch-0042",
	                      .monitor = "val loss"};
	ckpt_store_options opts = {.no_sync = true};
	ckpt_store *s;
	if (ckpt_store_create(&s, argv[1], &meta, &opts))
		return fail("create");
	for (int e = 1; e <= 2; e++) {
		float w[2] = {1, (float)e};
		uint64_t shape[1] = {2};
		ckpt_writer *wr;
		if (ckpt_writer_begin(&wr, s, (uint64_t)e))
			return fail("begin");
		ckpt_writer_set_step(wr, (uint64_t)e * 10);
		if (ckpt_writer_put_tensor(wr, "w 1", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 1,
		                           shape, NULL, w, sizeof(w)) ||
		    ckpt_writer_set_metric(wr, "val loss", 0.5 * e) ||
		    ckpt_writer_set_metric(wr, "best", 7) ||
		    ckpt_writer_set_metric(wr, "epoch", 8) ||
		    ckpt_writer_set_metric(wr, "a\nb", 9) ||
		    ckpt_writer_set_metric(wr, "acc\xff", 1)) {
			ckpt_writer_abort(wr);
			return fail("epoch");
		}
		if (ckpt_writer_commit(wr))
			return fail("commit");
	}
	ckpt_store_close(s);
	return 0;
}
