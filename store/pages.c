/* store/pages.c - what LMDB takes on trust: checked reads, and a walk over every page
 *
 * LMDB believes its pages. A damaged node size makes it return a value that reaches past the
 * end of data.mdb, and touching the map there raises SIGBUS; a writer that deletes or moves
 * such a node corrupts memory inside LMDB. So:
 *   - every key and value LMDB returns to store/ goes through store_get() or
 *     store_cursor_get(), which refuse one that does not lie inside data.mdb before anything
 *     reads it. The check is arithmetic on the map's address (found in /proc/self/maps when
 *     the map is made or moved) and the file's size (cached; fstat only when a check would
 *     fail, since a writer may have grown the file). Values outside the map are a write
 *     transaction's own dirty pages in the heap, which are fine;
 *   - a process that writes first walks every B-tree of the newest commit with pread
 *     (store_walk_pages() with full checks): branch and leaf pages whole, one header per
 *     overflow value, never tensor data. A page or node that LMDB could trip on refuses the
 *     write before anything changes;
 *   - every reader runs the same walk without value sizes when it opens the store
 *     (STORE_WALK_READ). Both compare each database's record (md_entries, the leaf and branch
 *     page counts, the free list's overflow pages) with what its pages hold: LMDB's compacting
 *     copy trusts those counts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "store/store_int.h"

/* ---- checked reads ---- */

void store_map_locate(store_map *m, MDB_env *env)
{
	atomic_store_explicit(&m->base, 0, memory_order_relaxed);
	int fd;
	struct stat st;
	MDB_envinfo info;
	if (mdb_env_get_fd(env, &fd) != 0 || fstat(fd, &st) != 0 || mdb_env_info(env, &info) != 0)
		return;
	m->fd = fd;
	atomic_store_explicit(&m->file_size, (uint64_t)st.st_size, memory_order_relaxed);
	FILE *maps = fopen("/proc/self/maps", "re");
	if (!maps)
		return; /* no /proc: nothing can be checked */
	/* LMDB maps data.mdb whole from offset 0; one environment per file in a process
	 * (store.c's registry), but a mapping of the same file of another length is no match.
	 * A mapping the kernel shows in several adjacent pieces is joined. */
	uint64_t base = 0, end = 0, best_base = 0, best_end = 0;
	char line[4608];
	while (fgets(line, sizeof(line), maps)) {
		unsigned long long lo, hi, off, ino;
		unsigned maj, mnr;
		if (sscanf(line, "%llx-%llx %*s %llx %x:%x %llu", &lo, &hi, &off, &maj, &mnr, &ino) !=
		        6 ||
		    ino != (unsigned long long)st.st_ino || makedev(maj, mnr) != st.st_dev) {
			base = end = 0;
			continue;
		}
		if (base && lo == end && off == end - base) {
			end = hi;
		} else if (off == 0) {
			base = lo;
			end = hi;
		} else {
			base = end = 0;
			continue;
		}
		if (!best_base || end - base == info.me_mapsize) {
			best_base = base;
			best_end = end;
		}
	}
	fclose(maps);
	atomic_store_explicit(&m->len, best_end - best_base, memory_order_relaxed);
	atomic_store_explicit(&m->base, (uintptr_t)best_base, memory_order_relaxed);
}

/* Whether @p v lies inside data.mdb, or outside the map (a dirty page of a write txn). */
static bool inside(store_map *m, const MDB_val *v, uintptr_t base, uint64_t size)
{
	uint64_t at = (uintptr_t)v->mv_data - base; /* wraps to huge below the map */
	return at >= atomic_load_explicit(&m->len, memory_order_relaxed) || at + v->mv_size <= size;
}

bool store_map_inside(store_map *m, const MDB_val *v)
{
	uintptr_t base = atomic_load_explicit(&m->base, memory_order_relaxed);
	if (!base || inside(m, v, base, atomic_load_explicit(&m->file_size, memory_order_relaxed)))
		return true;
	/* a writer may have grown the file since it was last measured */
	struct stat st;
	if (fstat(m->fd, &st) != 0)
		return false;
	uint64_t size = (uint64_t)st.st_size;
	atomic_store_explicit(&m->file_size, size, memory_order_relaxed);
	return inside(m, v, base, size);
}

/* what @p key of database @p db names: "the checkpoint record of epoch 12", "chunk 3 of blob
 * 0f1e2d3c4b5a6978", ...; @p key NULL or cleared: "a key of the 'ckpt' database" */
static void describe_record(char *out, size_t len, const char *db, const MDB_val *key)
{
	const uint8_t *k = key ? key->mv_data : NULL;
	char hex[17] = "";
	for (size_t i = 0; k && i < 8 && i < key->mv_size; i++)
		snprintf(hex + 2 * i, 3, "%02x", k[i]);
	bool epoch_key = k && key->mv_size == 8;
	if (!k)
		snprintf(out, len, "a key of the '%s' database", db);
	else if (strcmp(db, "ckpt") == 0 && epoch_key)
		snprintf(out, len, "the checkpoint record of epoch %llu",
		         (unsigned long long)store_epoch_from_key(key));
	else if (strcmp(db, "index") == 0 && epoch_key)
		snprintf(out, len, "the index record of epoch %llu",
		         (unsigned long long)store_epoch_from_key(key));
	else if (strcmp(db, "blobs") == 0)
		snprintf(out, len, "the record of blob %s", hex);
	else if (strcmp(db, "chunks") == 0 && key->mv_size == STORE_CHUNK_KEY_LEN)
		snprintf(out, len, "chunk %u of blob %s",
		         (unsigned)k[16] << 24 | (unsigned)k[17] << 16 | (unsigned)k[18] << 8 | k[19], hex);
	else if (strcmp(db, "meta") == 0 && key->mv_size < 32)
		snprintf(out, len, "the meta record '%.*s'", (int)key->mv_size, (const char *)k);
	else
		snprintf(out, len, "the record %s... of the '%s' database", hex, db);
}

int store_map_check(store_map *m, const char *path, const char *db, MDB_val *key, MDB_val *val)
{
	bool key_ok = !key || store_map_inside(m, key);
	if (key_ok && (!val || store_map_inside(m, val)))
		return 0;
	MDB_val *bad = key_ok ? val : key;
	uintptr_t base = atomic_load_explicit(&m->base, memory_order_relaxed);
	char what[128];
	describe_record(what, sizeof(what), db, key_ok ? key : NULL);
	store_error(CKPT_ECORRUPT,
	            "store %s: %s (%zu bytes at offset %llu of data.mdb) reaches past the end of "
	            "the file (%llu bytes): data.mdb is damaged",
	            path, what, bad->mv_size, (unsigned long long)((uintptr_t)bad->mv_data - base),
	            (unsigned long long)atomic_load_explicit(&m->file_size, memory_order_relaxed));
	*bad = (MDB_val){0, NULL};
	return STORE_EOUTSIDE;
}

static const char *db_name(const ckpt_store *s, MDB_dbi dbi)
{
	return dbi == s->db_ckpt     ? "ckpt"
	       : dbi == s->db_index  ? "index"
	       : dbi == s->db_blobs  ? "blobs"
	       : dbi == s->db_chunks ? "chunks"
	       : dbi == s->db_meta   ? "meta"
	                             : "main";
}

int store_get(ckpt_store *s, MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val)
{
	int mrc = mdb_get(txn, dbi, key, val);
	if (mrc)
		return mrc;
	return store_map_check(&s->map, s->path, db_name(s, dbi), key, val); /* key: the caller's */
}

int store_map_cursor_get(store_map *m, const char *path, const char *db, MDB_cursor *cur,
                         MDB_val *key, MDB_val *val, MDB_cursor_op op)
{
	MDB_val ignored;
	int mrc = mdb_cursor_get(cur, key, val ? val : &ignored, op);
	if (mrc)
		return mrc;
	return store_map_check(m, path, db, key, val);
}

int store_cursor_get(ckpt_store *s, MDB_cursor *cur, MDB_val *key, MDB_val *val, MDB_cursor_op op)
{
	return store_map_cursor_get(&s->map, s->path, db_name(s, mdb_cursor_dbi(cur)), cur, key, val,
	                            op);
}

/* ---- the page walk ---- */

#define LMDB_META_FREE_DB 40 /* mm_dbs[FREE_DBI] (page header 16 + MDB_meta offset 24) */
#define LMDB_META_MAIN_DB 88 /* mm_dbs[MAIN_DBI] */
/* page header: mp_pgno 8, mp_pad 2, mp_flags 2, mp_lower/mp_upper 2+2 (mp_pages 4) */
#define LMDB_PAGEHDR 16
#define LMDB_P_BRANCH 0x01
#define LMDB_P_LEAF 0x02
#define LMDB_P_OVERFLOW 0x04
/* node: mn_lo 2, mn_hi 2, mn_flags 2, mn_ksize 2, then key and data */
#define LMDB_NODEHDR 8
#define LMDB_F_BIGDATA 0x01
#define LMDB_F_SUBDATA 0x02
#define LMDB_F_DUPDATA 0x04
#define LMDB_MAX_KEY 511 /* MDB_MAXKEYSIZE of a default build */
/* MDB_db (48 bytes): md_pad 4, md_flags 2, md_depth 2, three page counts, md_entries, md_root */
#define LMDB_DB_DEPTH 6
#define LMDB_DB_BRANCH_PAGES 8
#define LMDB_DB_LEAF_PAGES 16
#define LMDB_DB_OVERFLOW_PAGES 24
#define LMDB_DB_ENTRIES 32
#define LMDB_DB_ROOT 40
#define LMDB_DB_SIZE 48
#define LMDB_MAX_DEPTH 64

static uint16_t load_u16le(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint64_t load_u64le(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

typedef struct node_span {
	uint16_t off;
	uint32_t size;
} node_span;

struct page_walk {
	int fd;
	uint32_t psize;
	uint64_t npages; /* pages in the file */
	uint64_t highest;
	uint64_t visited;
	bool full;  /* STORE_WALK_FULL */
	bool strict; /* STORE_WALK_READ or _FULL: every page's structure */
	uint8_t *seen; /* strict: a bit per page of the file, set once a tree uses it */
	node_span *spans; /* full: one page's nodes, by offset */
	char *why;
	size_t why_len;
	uint8_t *buf[LMDB_MAX_DEPTH];
};

/* the counts an MDB_db record keeps of its tree, or that a walk finds in it */
typedef struct tree_counts {
	uint64_t entries, branch_pages, leaf_pages, overflow_pages;
} tree_counts;

/* a tree to walk: its root and depth (from its MDB_db record) and its name, for messages */
typedef struct walk_tree_of {
	uint64_t root;
	unsigned depth;
	unsigned level; /* of its root in the whole walk (a named database's is below the main's) */
	bool named; /* the main database: its leaves name the named databases */
	unsigned key_len; /* the length of every key of a store database (0: any) */
	char name[40];
	bool free_list;       /* its overflow pages are counted by every strict walk */
	tree_counts recorded; /* what its MDB_db record says */
	tree_counts found;    /* what the walk finds */
} walk_tree_of;

/* the counts of the MDB_db record at @p rec */
static tree_counts recorded_counts(const uint8_t *rec)
{
	return (tree_counts){.entries = load_u64le(rec + LMDB_DB_ENTRIES),
	                     .branch_pages = load_u64le(rec + LMDB_DB_BRANCH_PAGES),
	                     .leaf_pages = load_u64le(rec + LMDB_DB_LEAF_PAGES),
	                     .overflow_pages = load_u64le(rec + LMDB_DB_OVERFLOW_PAGES)};
}

/* The key length of each store database whose keys have one: an epoch (u64), a content hash,
 * a hash and a chunk index. LMDB's own checks pass a damaged key size that stays inside its
 * page; readers then found keys of 0 or 72 bytes where epochs should be. */
static unsigned store_key_len(const uint8_t *name, size_t len)
{
	static const struct {
		const char *name;
		unsigned key_len;
	} fixed[] = {{"ckpt", 8}, {"index", 8}, {"blobs", 16}, {"chunks", STORE_CHUNK_KEY_LEN}};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (strlen(fixed[i].name) == len && memcmp(fixed[i].name, name, len) == 0)
			return fixed[i].key_len;
	return 0;
}

static int walk_fail(struct page_walk *w, const walk_tree_of *t, uint64_t pgno, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));

static int walk_fail(struct page_walk *w, const walk_tree_of *t, uint64_t pgno, const char *fmt,
                     ...)
{
	if (!w->why)
		return -1;
	int n = snprintf(w->why, w->why_len, "page %llu of the %s: ", (unsigned long long)pgno,
	                 t->name);
	if (n >= 0 && (size_t)n < w->why_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(w->why + n, w->why_len - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* pages [pgno, pgno + npages) are used by the newest commit: inside the file, and (full)
 * used once */
static int walk_page_ref(struct page_walk *w, uint64_t pgno, uint64_t npages)
{
	if (pgno >= w->npages || npages > w->npages - pgno)
		return -1;
	if (pgno + npages > w->highest)
		w->highest = pgno + npages;
	for (uint64_t p = pgno; w->seen && p < pgno + npages; p++) {
		if (w->seen[p / 8] & (1u << (p % 8)))
			return -1;
		w->seen[p / 8] |= (uint8_t)(1u << (p % 8));
	}
	return 0;
}

static int span_cmp(const void *a, const void *b)
{
	const node_span *x = a, *y = b;
	return (x->off > y->off) - (x->off < y->off);
}

/* full: the nodes of a page fill [upper, psize) exactly, each once, as LMDB keeps them */
static int check_packed(struct page_walk *w, const walk_tree_of *t, uint64_t pgno, unsigned n,
                        uint16_t upper)
{
	qsort(w->spans, n, sizeof(*w->spans), span_cmp);
	uint64_t at = upper;
	for (unsigned i = 0; i < n; i++) {
		if (w->spans[i].off != at)
			return walk_fail(w, t, pgno,
			                 "its nodes do not tile it (a node at %u, expected at %llu)",
			                 w->spans[i].off, (unsigned long long)at);
		at += w->spans[i].size;
	}
	if (at != w->psize)
		return walk_fail(w, t, pgno, "its nodes end at %llu, not at the page's end",
		                 (unsigned long long)at);
	return 0;
}

/* a reader's walk: the nodes' headers and keys lie apart (their values, whose sizes a reader
 * does not trust here, lie in between) */
static int check_apart(struct page_walk *w, const walk_tree_of *t, uint64_t pgno, unsigned n)
{
	qsort(w->spans, n, sizeof(*w->spans), span_cmp);
	for (unsigned i = 0; i + 1 < n; i++)
		if ((uint64_t)w->spans[i].off + w->spans[i].size > w->spans[i + 1].off)
			return walk_fail(w, t, pgno, "the key of the node at %u runs into the node "
			                 "at %u", w->spans[i].off, w->spans[i + 1].off);
	return 0;
}

/* Strict: a tree's MDB_db record counts what its pages hold (LMDB keeps the counts exact).
 * mdb_env_copy2's compaction trusts them: an entry count damaged by one bit passed verify and
 * info, and backup and gc --compact then wrote a copy that did not read back, blaming the
 * copy. Overflow pages are compared for the free list only, whose count compaction uses to
 * place the copy's root: a named database's would cost a reader a read of every overflow
 * value's header, and nothing but statistics uses it. */
static int check_counts(struct page_walk *w, const walk_tree_of *t)
{
	const tree_counts *r = &t->recorded, *f = &t->found;
	const struct {
		const char *what, *holds;
		uint64_t recorded, found;
		bool compared;
	} counts[] = {
	    {"entries", "its pages hold", r->entries, f->entries, true},
	    {"leaf pages", "its tree has", r->leaf_pages, f->leaf_pages, true},
	    {"branch pages", "its tree has", r->branch_pages, f->branch_pages, true},
	    {"overflow pages", "its values use", r->overflow_pages, f->overflow_pages, t->free_list},
	};
	for (size_t i = 0; w->strict && i < sizeof(counts) / sizeof(counts[0]); i++) {
		if (!counts[i].compared || counts[i].recorded == counts[i].found)
			continue;
		if (w->why)
			snprintf(w->why, w->why_len, "the %s records %llu %s, %s %llu", t->name,
			         (unsigned long long)counts[i].recorded, counts[i].what, counts[i].holds,
			         (unsigned long long)counts[i].found);
		return -1;
	}
	return 0;
}

static int walk_tree(struct page_walk *w, walk_tree_of *t, uint64_t pgno, unsigned depth,
                     const uint8_t *lo, const uint8_t *hi);

/* a leaf node's data: an overflow value's pages, or a named database's tree */
static int walk_leaf_data(struct page_walk *w, walk_tree_of *t, uint64_t pgno, unsigned level,
                          const uint8_t *node, unsigned i, size_t room)
{
	uint16_t nflags = load_u16le(node + 4), ksize = load_u16le(node + 6);
	uint64_t dsize = load_u16le(node) | (uint64_t)load_u16le(node + 2) << 16;
	const uint8_t *data = node + LMDB_NODEHDR + ksize;
	if (nflags & LMDB_F_BIGDATA) {
		uint64_t ov = load_u64le(data);
		uint8_t head[LMDB_PAGEHDR];
		if (ov < w->npages && !w->full && w->strict && !t->free_list)
			return 0; /* a reader: LMDB reads the value from its node's size, which
				   * store_map_check() checks, never the overflow page's header (the
				   * free list's few are read: their count is checked) */
		if (ov >= w->npages ||
		    pread(w->fd, head, sizeof(head), (off_t)(ov * w->psize)) != (ssize_t)sizeof(head))
			return walk_fail(w, t, pgno, "node %u: its overflow page %llu is past the end "
			                 "of the file", i, (unsigned long long)ov);
		uint16_t oflags = load_u16le(head + 10);
		uint32_t count = (uint32_t)load_u16le(head + 12) | (uint32_t)load_u16le(head + 14) << 16;
		if (load_u64le(head) != ov || !(oflags & LMDB_P_OVERFLOW) ||
		    (w->full && (oflags != LMDB_P_OVERFLOW || count == 0)))
			return walk_fail(w, t, pgno, "node %u: page %llu is not its overflow page", i,
			                 (unsigned long long)ov);
		if (w->full && dsize + LMDB_PAGEHDR > (uint64_t)count * w->psize)
			return walk_fail(w, t, pgno, "node %u: its value of %llu bytes is longer than "
			                 "its %u overflow pages", i, (unsigned long long)dsize, count);
		if (walk_page_ref(w, ov, count))
			return walk_fail(w, t, pgno, "node %u: its %u overflow pages from %llu are past "
			                 "the end of the file or used twice", i, count,
			                 (unsigned long long)ov);
		t->found.overflow_pages += count;
		return 0;
	}
	if (nflags & LMDB_F_SUBDATA) {
		if (!t->named || (size_t)LMDB_NODEHDR + ksize + LMDB_DB_SIZE > room ||
		    (w->strict && dsize != LMDB_DB_SIZE))
			return walk_fail(w, t, pgno, "node %u: not a database record", i);
		walk_tree_of sub = {.root = load_u64le(data + LMDB_DB_ROOT),
		                    .depth = load_u16le(data + LMDB_DB_DEPTH),
		                    .level = level + 1,
		                    .key_len = store_key_len(node + LMDB_NODEHDR, ksize),
		                    .recorded = recorded_counts(data)};
		snprintf(sub.name, sizeof(sub.name), "'%.*s' database", ksize < 24 ? (int)ksize : 24,
		         (const char *)node + LMDB_NODEHDR);
		return walk_tree(w, &sub, sub.root, 0, NULL, NULL) || check_counts(w, &sub) ? -1 : 0;
	}
	if (nflags & LMDB_F_DUPDATA)
		return walk_fail(w, t, pgno, "node %u: duplicate data, which no store database has",
		                 i);
	return 0;
}

/* Keys of a store database with fixed-size keys (LMDB compares them as bytes): a page's keys
 * ascend, and each lies in [@p lo, @p hi) that its parent's separators give (NULL: no bound).
 * A flipped bit in a key that keeps its size reordered the tree: lookups missed an epoch that
 * listings showed, or a key turned into its neighbour's and an epoch vanished silently. A
 * branch page's first key is not compared (LMDB leaves it empty or stale). */
static int check_key_order(struct page_walk *w, const walk_tree_of *t, uint64_t pgno,
                           const uint8_t *pg, unsigned n, bool leaf, const uint8_t *lo,
                           const uint8_t *hi)
{
	const uint8_t *prev = lo;
	for (unsigned i = leaf ? 0 : 1; i < n; i++) {
		const uint8_t *key = pg + load_u16le(pg + LMDB_PAGEHDR + 2 * i) + LMDB_NODEHDR;
		int c = prev ? memcmp(prev, key, t->key_len) : -1;
		if (prev == lo ? c > 0 : c >= 0) /* at least the bound; past the key before */
			return walk_fail(w, t, pgno, "node %u: its key is out of order", i);
		if (hi && memcmp(key, hi, t->key_len) >= 0)
			return walk_fail(w, t, pgno, "node %u: its key is past its parent's bound", i);
		prev = key;
	}
	return 0;
}

static int walk_tree(struct page_walk *w, walk_tree_of *t, uint64_t pgno, unsigned depth,
                     const uint8_t *lo, const uint8_t *hi)
{
	if (pgno == UINT64_MAX) /* P_INVALID: an empty tree */
		return w->strict && depth == 0 && t->depth != 0
		           ? walk_fail(w, t, pgno, "an empty tree of depth %u", t->depth)
		           : 0;
	unsigned level = t->level + depth; /* this page's buffer */
	if (level >= LMDB_MAX_DEPTH || (w->strict && depth >= t->depth))
		return walk_fail(w, t, pgno, "deeper than the tree's depth %u", t->depth);
	if (++w->visited > w->npages || walk_page_ref(w, pgno, 1))
		return walk_fail(w, t, pgno, "past the end of the file or used twice");
	uint8_t *pg = w->buf[level];
	if (pread(w->fd, pg, w->psize, (off_t)(pgno * w->psize)) != (ssize_t)w->psize)
		return walk_fail(w, t, pgno, "cannot be read");
	uint16_t flags = load_u16le(pg + 10), lower = load_u16le(pg + 12),
	         upper = load_u16le(pg + 14);
	bool leaf = w->strict ? flags == LMDB_P_LEAF : (flags & LMDB_P_LEAF) != 0;
	if (load_u64le(pg) != pgno || !(flags & (LMDB_P_BRANCH | LMDB_P_LEAF)))
		return walk_fail(w, t, pgno, "not a B-tree page (page number %llu, flags 0x%x)",
		                 (unsigned long long)load_u64le(pg), flags);
	if (lower < LMDB_PAGEHDR || lower > w->psize)
		return walk_fail(w, t, pgno, "a bad page header (lower %u, upper %u)", lower, upper);
	if (w->strict && ((!leaf && flags != LMDB_P_BRANCH) || lower > upper || upper > w->psize ||
	                lower == LMDB_PAGEHDR || leaf != (depth + 1 == t->depth)))
		return walk_fail(w, t, pgno, "a bad %s page (flags 0x%x, lower %u, upper %u, at "
		                 "level %u of %u)", leaf ? "leaf" : "branch", flags, lower, upper,
		                 depth + 1, t->depth);
	unsigned n = (lower - LMDB_PAGEHDR) / 2;
	if (leaf) {
		t->found.leaf_pages++;
		t->found.entries += n;
	} else {
		t->found.branch_pages++;
	}
	for (unsigned i = 0; i < n; i++) {
		uint16_t off = load_u16le(pg + LMDB_PAGEHDR + 2 * i);
		if (off < lower || (size_t)off + LMDB_NODEHDR > w->psize || (w->strict && off < upper))
			return walk_fail(w, t, pgno, "node %u at %u is outside the page's nodes", i,
			                 off);
		const uint8_t *node = pg + off;
		uint16_t nflags = load_u16le(node + 4), ksize = load_u16le(node + 6);
		uint64_t dsize = load_u16le(node) | (uint64_t)load_u16le(node + 2) << 16;
		/* what the node takes: header, key, and its data inline or an overflow page number
		 * (a branch node holds a page number in its header) */
		uint64_t end = (uint64_t)off + LMDB_NODEHDR + ksize +
		               (!leaf                         ? 0
		                : (nflags & LMDB_F_BIGDATA) ? 8
		                : w->full                   ? dsize
		                                            : 0); /* a reader: store_map_check() */
		/* a branch page's first key may be empty (the leftmost pointer) */
		if (w->strict && t->key_len && ksize != t->key_len && (leaf || i != 0 || ksize != 0))
			return walk_fail(w, t, pgno, "node %u: a key of %u bytes, not %u", i, ksize,
			                 t->key_len);
		if (w->strict && (ksize > LMDB_MAX_KEY || end > w->psize ||
		                (leaf && (nflags & ~(LMDB_F_BIGDATA | LMDB_F_SUBDATA)))))
			return walk_fail(w, t, pgno, "node %u: its %u-byte key and %llu bytes of data "
			                 "(flags 0x%x) do not fit in the page", i, ksize,
			                 (unsigned long long)dsize, nflags);
		if (w->strict) /* a reader's end leaves the value out */
			w->spans[i] = (node_span){off, (uint32_t)((end - off + 1) & ~1ull)};
		if (leaf && (uint64_t)off + LMDB_NODEHDR + ksize +
		                    ((nflags & LMDB_F_BIGDATA) ? 8 : 0) > w->psize)
			return walk_fail(w, t, pgno, "node %u does not fit in the page", i);
	}
	if (w->full && check_packed(w, t, pgno, n, upper))
		return -1;
	if (w->strict && !w->full && check_apart(w, t, pgno, n))
		return -1;
	if (w->strict && t->key_len && check_key_order(w, t, pgno, pg, n, leaf, lo, hi))
		return -1;
	/* what the nodes lead to, once the page is known sound: the walks below use the buffers
	 * of the levels below this one (and w->spans); a child's keys lie between the separators
	 * around it, which stay in this page's buffer meanwhile */
	for (unsigned i = 0; i < n; i++) {
		uint16_t off = load_u16le(pg + LMDB_PAGEHDR + 2 * i);
		const uint8_t *node = pg + off;
		uint64_t child = load_u16le(node) | (uint64_t)load_u16le(node + 2) << 16 |
		                 (uint64_t)load_u16le(node + 4) << 32;
		const uint8_t *clo = i == 0 ? lo : node + LMDB_NODEHDR;
		const uint8_t *chi =
		    i + 1 < n ? pg + load_u16le(pg + LMDB_PAGEHDR + 2 * (i + 1)) + LMDB_NODEHDR : hi;
		if (leaf ? walk_leaf_data(w, t, pgno, level, node, i, w->psize - off)
		         : walk_tree(w, t, child, depth + 1, clo, chi))
			return -1;
	}
	return 0;
}

int store_walk_pages(int fd, uint32_t psize, uint64_t size, const uint8_t *meta,
                     store_walk_mode mode, uint64_t *highest, char *why, size_t why_len)
{
	bool full = mode == STORE_WALK_FULL;
	struct page_walk w = {.fd = fd, .psize = psize, .npages = size / psize, .highest = 2,
	                      .full = full, .strict = mode != STORE_WALK_QUICK, .why = why,
	                      .why_len = why_len};
	int rc = 0;
	if (why && why_len)
		why[0] = 0;
	for (int i = 0; i < LMDB_MAX_DEPTH && !rc; i++)
		if (!(w.buf[i] = malloc(psize)))
			rc = -ENOMEM;
	if (!rc && w.strict && !(w.seen = calloc(w.npages / 8 + 1, 1)))
		rc = -ENOMEM;
	if (!rc && w.strict && !(w.spans = malloc(psize * sizeof(node_span))))
		rc = -ENOMEM;
	if (!rc && w.strict)
		w.seen[0] |= 3; /* the meta pages */
	/* the main DB's leaves name the named DBs; their own leaves name none */
	walk_tree_of free_db = {.root = load_u64le(meta + LMDB_META_FREE_DB + LMDB_DB_ROOT),
	                        .depth = load_u16le(meta + LMDB_META_FREE_DB + LMDB_DB_DEPTH),
	                        .name = "free list",
	                        .free_list = true,
	                        .recorded = recorded_counts(meta + LMDB_META_FREE_DB)};
	walk_tree_of main_db = {.root = load_u64le(meta + LMDB_META_MAIN_DB + LMDB_DB_ROOT),
	                        .depth = load_u16le(meta + LMDB_META_MAIN_DB + LMDB_DB_DEPTH),
	                        .named = true,
	                        .name = "main database",
	                        .recorded = recorded_counts(meta + LMDB_META_MAIN_DB)};
	if (!rc)
		rc = walk_tree(&w, &free_db, free_db.root, 0, NULL, NULL) ||
		             check_counts(&w, &free_db) ||
		             walk_tree(&w, &main_db, main_db.root, 0, NULL, NULL) ||
		             check_counts(&w, &main_db)
		         ? CKPT_ECORRUPT
		         : 0;
	for (int i = 0; i < LMDB_MAX_DEPTH; i++)
		free(w.buf[i]);
	free(w.seen);
	free(w.spans);
	*highest = w.highest;
	return rc;
}
