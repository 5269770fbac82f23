/* store/error.c - error codes, their texts and the per-thread error message
 *
 * Every failing libckpt call leaves one message with context in a thread-local buffer; LMDB
 * return codes are translated here and nowhere else.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "store/store_int.h"

/* room for a message naming a few PATH_MAX paths: never cut off before its reason */
static __thread char last_error[16384];

const char *ckpt_last_error(void)
{
	return last_error;
}

int store_error(int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return rc;
}

const char *ckpt_strerror(int rc)
{
	switch (rc) {
	case 0:
		return "success";
	case CKPT_ENOTSTORE:
		return "not a ckpt store";
	case CKPT_ESCHEMA:
		return "store written by a newer schema version";
	case CKPT_ECORRUPT:
		return "corrupt record";
	case CKPT_ECHECKSUM:
		return "checksum mismatch";
	default:
		break;
	}
	if (rc < 0 && rc > -4096)
		return strerror(-rc);
	return "unknown error";
}

int store_lmdb_rc(int mdb_rc)
{
	switch (mdb_rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_MAP_FULL:
		return STORE_EMAPFULL;
	case STORE_EOUTSIDE:
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_BAD_VALSIZE:
		return CKPT_ECORRUPT;
	case MDB_INVALID:
		return CKPT_ENOTSTORE;
	case MDB_VERSION_MISMATCH:
		return CKPT_ESCHEMA;
	case MDB_READERS_FULL:
	case MDB_MAP_RESIZED:
		return -EAGAIN;
	case MDB_TXN_FULL:
	case MDB_CURSOR_FULL:
	case MDB_PAGE_FULL:
		return -E2BIG;
	case MDB_PANIC:
	case MDB_BAD_TXN:
		return -EIO;
	case EDQUOT:
		return -ENOSPC;
	default:
		break;
	}
	if (mdb_rc > 0 && mdb_rc < 4096)
		return -mdb_rc;
	return -EIO;
}

int store_lmdb_error(int mdb_rc, const char *fmt, ...)
{
	if (mdb_rc == STORE_EOUTSIDE) /* store_map_check() has named the damaged record */
		return CKPT_ECORRUPT;
	char what[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	int rc = store_lmdb_rc(mdb_rc);
	struct rlimit rl;
	if (rc == -EFBIG && getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		snprintf(last_error, sizeof(last_error),
		         "%s: file too large: the file size limit (ulimit -f) is %llu bytes", what,
		         (unsigned long long)rl.rlim_cur);
	else if (rc == -EFBIG)
		snprintf(last_error, sizeof(last_error), "%s: file too large (%s)", what,
		         mdb_strerror(mdb_rc));
	else if (rc == -ENOSPC && mdb_rc != MDB_MAP_FULL)
		snprintf(last_error, sizeof(last_error), "%s: no space left on device (%s)", what,
		         mdb_strerror(mdb_rc));
	else
		snprintf(last_error, sizeof(last_error), "%s: %s", what, mdb_strerror(mdb_rc));
	return rc;
}

int store_write_errno(const char *dir, int mdb_rc, uint64_t need)
{
	if (mdb_rc != EIO && mdb_rc != ENOSPC)
		return mdb_rc;
	char data[4096];
	struct stat st;
	struct rlimit rl;
	snprintf(data, sizeof(data), "%s/data.mdb", dir);
	if (stat(data, &st) == 0 && getrlimit(RLIMIT_FSIZE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY && (uint64_t)st.st_size + need >= (uint64_t)rl.rlim_cur)
		return EFBIG;
	struct statvfs vfs;
	if (mdb_rc == EIO && statvfs(dir, &vfs) == 0 &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < need + (1u << 20))
		return ENOSPC;
	return mdb_rc;
}
