/* tests/tools/record_offset.c - where a record lies in a store's data.mdb, found through LMDB
 *
 *   record_offset STORE DB KEY   prints "OFFSET LENGTH": the byte offset in STORE/data.mdb of the
 *                                value stored under KEY in database DB and its length. KEY is
 *                                an epoch number for "ckpt" and "index", a name ("run",
 *                                "settings", "best", "schema") for "meta", and for "blobs"
 *                                #N: the Nth blob record in key order (from 0).
 * Tests damage the bytes of one record with it instead of guessing offsets. The store is opened
 * read-only without a lock file (nothing is created or changed). Exit 0, or 1 with a message.
 */
#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the value of the @p n th record of @p dbi in key order */
static int nth_value(MDB_txn *txn, MDB_dbi dbi, unsigned long n, MDB_val *val)
{
	MDB_cursor *cur;
	MDB_val k;
	int rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc)
		return rc;
	rc = mdb_cursor_get(cur, &k, val, MDB_FIRST);
	while (!rc && n-- > 0)
		rc = mdb_cursor_get(cur, &k, val, MDB_NEXT);
	mdb_cursor_close(cur);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: record_offset STORE DB KEY\n");
		return 1;
	}
	uint8_t epoch_key[8];
	MDB_val key = {strlen(argv[3]), argv[3]}, val;
	if (strcmp(argv[2], "ckpt") == 0 || strcmp(argv[2], "index") == 0) {
		char *end;
		unsigned long long e = strtoull(argv[3], &end, 10);
		if (*end || end == argv[3]) {
			fprintf(stderr, "record_offset: bad epoch '%s'\n", argv[3]);
			return 1;
		}
		for (int i = 0; i < 8; i++)
			epoch_key[i] = (uint8_t)(e >> (56 - 8 * i));
		key = (MDB_val){8, epoch_key};
	}
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	int rc;
	if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_maxdbs(env, 8)) ||
	    (rc = mdb_env_open(env, argv[1], MDB_RDONLY | MDB_NOLOCK, 0644))) {
		fprintf(stderr, "record_offset: %s: %s\n", argv[1], mdb_strerror(rc));
		return 1;
	}
	bool nth = argv[3][0] == '#';
	if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) ||
	    (rc = mdb_dbi_open(txn, argv[2], 0, &dbi)) ||
	    (rc = nth ? nth_value(txn, dbi, strtoul(argv[3] + 1, NULL, 10), &val)
	              : mdb_get(txn, dbi, &key, &val))) {
		fprintf(stderr, "record_offset: %s %s: %s\n", argv[2], argv[3], mdb_strerror(rc));
		mdb_env_close(env);
		return 1;
	}
	/* a read-only environment maps data.mdb whole from offset 0: find that mapping */
	uintptr_t at = (uintptr_t)val.mv_data, offset = 0;
	bool found = false;
	char line[4608];
	FILE *maps = fopen("/proc/self/maps", "r");
	while (maps && !found && fgets(line, sizeof(line), maps)) {
		unsigned long long lo, hi, off;
		if (sscanf(line, "%llx-%llx %*s %llx", &lo, &hi, &off) == 3 && at >= lo && at < hi &&
		    strstr(line, "/data.mdb")) {
			offset = (uintptr_t)(at - lo + off);
			found = true;
		}
	}
	if (maps)
		fclose(maps);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	if (!found) {
		fprintf(stderr, "record_offset: the value is not in a mapping of data.mdb\n");
		return 1;
	}
	printf("%ju %zu\n", (uintmax_t)offset, val.mv_size);
	return 0;
}
