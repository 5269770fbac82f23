/* store/error.c - error codes, their texts and the per-thread error message
 *
 * Every failing libckpt call leaves one message with context for its thread; LMDB return codes
 * are translated here and nowhere else. The message is as long as its text (no length cuts off
 * its reason): a heap buffer per thread, freed when the thread exits. Out of memory, a short
 * per-thread buffer keeps the start of the text with a marker saying it was cut.
 */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "store/store_int.h"

#define CUT_MARKER " [message cut short: out of memory]"

#ifdef CKPT_TESTING
/* unit tests set this to reach the out-of-memory path */
int store_test_error_alloc_fails;
#else
static const int store_test_error_alloc_fails = 0;
#endif

/* the thread's message: last_error_heap (registered under last_error_key, so the thread's exit
 * frees it) or, when memory ran out, last_error_short */
static __thread char *last_error_heap;
static __thread char last_error_short[1024];
static __thread const char *last_error;
static pthread_key_t last_error_key;
static pthread_once_t last_error_once = PTHREAD_ONCE_INIT;
static bool last_error_key_made;

/* the key's destructor: a call into libckpt from a later thread-exit destructor starts anew */
static void free_last_error(void *text)
{
	free(text);
	last_error_heap = NULL;
	last_error = NULL;
}

static void make_last_error_key(void)
{
	last_error_key_made = pthread_key_create(&last_error_key, free_last_error) == 0;
}

const char *ckpt_last_error(void)
{
	return last_error ? last_error : "";
}

/* Replace the thread's message with @p fmt formatted. The arguments may point into the current
 * message (a caller quoting ckpt_last_error()), so it is freed only after the new one is made. */
static void set_last_error(const char *fmt, va_list ap)
{
	va_list again;
	va_copy(again, ap);
	char *text = NULL;
	int n = vsnprintf(NULL, 0, fmt, ap);
	pthread_once(&last_error_once, make_last_error_key);
	if (n >= 0 && last_error_key_made && !store_test_error_alloc_fails &&
	    (text = malloc((size_t)n + 1)) && pthread_setspecific(last_error_key, text) == 0) {
		vsnprintf(text, (size_t)n + 1, fmt, again);
		free(last_error_heap);
		last_error_heap = text;
		last_error = text;
		va_end(again);
		return;
	}
	free(text); /* NULL, or not registered for the thread's exit */
	char cut[sizeof(last_error_short)];
	size_t room = sizeof(cut) - sizeof(CUT_MARKER) + 1;
	n = vsnprintf(cut, room, fmt, again);
	va_end(again);
	size_t len = n < 0 ? 0 : strlen(cut);
	memcpy(last_error_short, cut, len);
	if (n < 0 || (size_t)n >= room) {
		memcpy(last_error_short + len, CUT_MARKER, sizeof(CUT_MARKER) - 1);
		len += sizeof(CUT_MARKER) - 1;
	}
	last_error_short[len] = '\0';
	if (last_error_key_made)
		pthread_setspecific(last_error_key, NULL);
	free(last_error_heap);
	last_error_heap = NULL;
	last_error = last_error_short;
}

int store_error(int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	set_last_error(fmt, ap);
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
	va_list ap;
	va_start(ap, fmt);
	set_last_error(fmt, ap); /* "what" failed, quoted below (store_error() may quote it) */
	va_end(ap);
	const char *what = ckpt_last_error();
	int rc = store_lmdb_rc(mdb_rc);
	struct rlimit rl;
	if (rc == -EFBIG && getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		return store_error(
		    rc, "%s: file too large: the file size limit (ulimit -f) is %llu bytes", what,
		    (unsigned long long)rl.rlim_cur);
	if (rc == -EFBIG)
		return store_error(rc, "%s: file too large (%s)", what, mdb_strerror(mdb_rc));
	if (rc == -ENOSPC && mdb_rc != MDB_MAP_FULL)
		return store_error(rc, "%s: no space left on device (%s)", what,
		                   mdb_strerror(mdb_rc));
	return store_error(rc, "%s: %s", what, mdb_strerror(mdb_rc));
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
