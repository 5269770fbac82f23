/* tests/fuzz/fuzz_records.c - libFuzzer harness for libckpt's record decoders (store/records.h)
 *
 * The first input byte picks the decoder (run, settings, index, blob, checkpoint, best), the
 * rest is the record. A decoder must return 0 or CKPT_ECORRUPT with a reason, never read out of
 * bounds. A record that decodes must encode back and decode again to the same fields (blob
 * and checkpoint), so decoders accept nothing the encoders could not have written.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/records.h"

static void check_ckpt_round_trip(const store_ckpt_rec *r)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	char why[256];
	if (store_ckpt_encode(&buf, &len, r) != 0)
		return; /* e.g. out of memory */
	store_ckpt_rec *again = NULL;
	int rc = store_ckpt_decode(&again, buf, len, why, sizeof(why));
	assert(rc == 0);
	assert(again->epoch == r->epoch && again->step == r->step && again->time_ns == r->time_ns);
	assert(again->ntensors == r->ntensors && again->nmetrics == r->nmetrics &&
	       again->nextras == r->nextras && again->nbytes == r->nbytes);
	for (size_t i = 0; i < r->ntensors; i++) {
		assert(strcmp(again->tensors[i].name, r->tensors[i].name) == 0);
		assert(again->tensors[i].nbytes == r->tensors[i].nbytes);
		assert(again->tensors[i].crc32 == r->tensors[i].crc32);
	}
	store_ckpt_free(again);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *rec = data + 1;
	size_t len = size - 1;
	char why[256];
	int rc;
	switch (data[0] % 6) {
	case 0: {
		store_run_rec r;
		memset(&r, 0, sizeof(r));
		rc = store_run_decode(&r, rec, len, why, sizeof(why));
		assert(rc == 0 || rc == CKPT_ECORRUPT || rc == -ENOMEM);
		if (rc == 0)
			store_run_free(&r);
		break;
	}
	case 1: {
		store_settings_rec r;
		rc = store_settings_decode(&r, rec, len, why, sizeof(why));
		assert(rc == 0 || rc == CKPT_ECORRUPT);
		break;
	}
	case 2: {
		store_index_rec r;
		rc = store_index_decode(&r, rec, len, why, sizeof(why));
		assert(rc == 0 || rc == CKPT_ECORRUPT);
		break;
	}
	case 3: {
		store_blob_rec r;
		rc = store_blob_decode(&r, rec, len, why, sizeof(why));
		assert(rc == 0 || rc == CKPT_ECORRUPT);
		if (rc == 0) {
			uint32_t sum = 0;
			for (uint32_t i = 0; i < r.nchunks; i++)
				sum += store_blob_crc(&r, i); /* every CRC is inside the buffer */
			(void)sum;
			assert(r.nchunks == store_nchunks(r.nbytes, r.chunk_size));
		}
		break;
	}
	case 5: {
		store_best_rec r;
		rc = store_best_decode(&r, rec, len, why, sizeof(why));
		assert(rc == 0 || rc == CKPT_ECORRUPT);
		break;
	}
	default: {
		store_ckpt_rec *r = NULL;
		rc = store_ckpt_decode(&r, rec, len, why, sizeof(why));
		assert(rc == 0 || rc == CKPT_ECORRUPT || rc == -ENOMEM);
		if (rc == 0) {
			check_ckpt_round_trip(r);
			store_ckpt_free(r);
		}
		break;
	}
	}
	return 0;
}
