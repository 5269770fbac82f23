/* include/ckpt/view.h - the virtual tree a checkpoint store is shown as (ckptfs, `ckpt ls/cat`)
 *
 * The view decides everything the mount shows: which nodes exist, their names, attributes and
 * bytes. Front ends (the FUSE daemon, the CLI) only translate. Tree:
 *
 *   /best -> epoch-NNNN       relative symlink to the best checkpoint (absent without one)
 *   /latest -> epoch-NNNN     relative symlink to the newest checkpoint (absent when empty)
 *   /run.json                 run metadata (and "npy_bfloat16": "<f4", how .npy shows bfloat16)
 *   /history.csv              epoch,step,time,<metrics sorted>,best: one row per checkpoint
 *   /epoch-NNNN/              "epoch-%04llu": one per stored checkpoint
 *       metrics.json          epoch, step, time, time_ns, metrics, device(s), is_best
 *       model/<name>.npy      one per model tensor (CKPT_GROUP_MODEL)
 *       optimizer/<name>.npy  one per optimizer tensor ("<param>.<buffer>")
 *       optimizer/param_groups.json   the "optimizer.param_groups" extra, pretty-printed
 *       model.safetensors, model.pt, checkpoint.pt   whole-checkpoint files
 *
 * Names: a tensor name becomes a file name by percent-encoding (%XX, upper-case hex) of '/',
 * '%', bytes below 0x20 and 0x7f, and a leading '.', then appending ".npy". Decoding %XX gives
 * the name back. A name whose encoding would make a file name longer than 255 bytes is cut to
 * a prefix of whole escapes/UTF-8 sequences followed by "%~" and 16 hex digits of a 64-bit hash
 * of the full name ("%~" never appears in an ordinary encoding, so no collision with one).
 *
 * Inode numbers are computed from (epoch, entry), so they are the same across remounts of the
 * same store content: 1 root, 2 run.json, 3 history.csv, 4 best, 5 latest; an epoch's nodes are
 * ((epoch + 1) << 24) | entry with entry 0 the directory, 1..15 fixed files, and 16 + i the
 * i-th tensor of the checkpoint (insertion order). Epochs must be below 2^39.
 *
 * Threads: every function may be called from any thread concurrently, except that one
 * ckpt_view_file is read by one thread at a time (callers serialize; the FUSE layer locks).
 * Errors: 0 or a negative error code (-errno or CKPT_E*); ckpt_view_last_error() has the context.
 */
#ifndef CKPT_VIEW_H
#define CKPT_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "ckpt/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ckpt_view ckpt_view;
typedef struct ckpt_view_file ckpt_view_file;

/** Message about the last failed view call on this thread ("" if none). */
const char *ckpt_view_last_error(void);

/** Inode number of the root directory (equal to FUSE_ROOT_ID). */
#define CKPT_VIEW_ROOT_INO 1u

typedef enum ckpt_view_kind {
	CKPT_VIEW_DIR = 1,
	CKPT_VIEW_FILE = 2,
	CKPT_VIEW_SYMLINK = 3,
} ckpt_view_kind;

/** Attributes of a node. */
typedef struct ckpt_view_attr {
	uint64_t ino;
	ckpt_view_kind kind;
	unsigned mode;    /**< permission bits: 0555 dirs and symlinks' 0777, 0444 files */
	uint32_t nlink;   /**< 2 + subdirectories for dirs, 1 otherwise */
	uint64_t size;    /**< exact byte length (link text length for symlinks, 0 for dirs) */
	int64_t mtime_ns; /**< commit time of the node's checkpoint (root: the latest commit) */
	bool immutable;   /**< content never changes while the node exists: cache it long */
} ckpt_view_attr;

/** Options for ckpt_view_new(); zero/NULL fields mean the default. */
typedef struct ckpt_view_options {
	/** Where .pt files place storages: "cpu" (default), "keep" or a device like "cuda:1". */
	const char *map_location;
	/** Where one-line reports go (checksum failures); NULL: stderr. */
	void (*log)(void *log_ctx, const char *line);
	void *log_ctx;
} ckpt_view_options;

/**
 * Check a map_location value ("cpu", "keep", "cuda", "cuda:N").
 * @return 0 or -EINVAL (with a message).
 */
int ckpt_view_check_map_location(const char *value);

/**
 * Make a view of @p store (borrowed: it must outlive the view; open it CKPT_OPEN_READONLY).
 * @return 0, -EINVAL for bad options, -ENOMEM.
 */
int ckpt_view_new(ckpt_view **out, ckpt_store *store, const ckpt_view_options *opts);

/** Free a view. Every file opened from it must be closed first. Accepts NULL. */
void ckpt_view_free(ckpt_view *view);

/** The longest name of a node (bytes); longer tensor names end in a hash (see README). */
#define CKPT_VIEW_NAME_MAX 255

/**
 * Look up @p name in directory @p parent.
 * @return 0, -ENAMETOOLONG if @p name is longer than CKPT_VIEW_NAME_MAX (as a local file
 *         system answers), -ENOENT if there is no such entry, -ENOTDIR if @p parent is not a
 *         directory, or the error rendering the node failed with (its size could not be
 *         computed).
 */
int ckpt_view_lookup(ckpt_view_attr *out, ckpt_view *view, uint64_t parent, const char *name);

/** Attributes of node @p ino. @return 0, -ENOENT if it does not exist (any more). */
int ckpt_view_getattr(ckpt_view_attr *out, ckpt_view *view, uint64_t ino);

/**
 * Resolve a path relative to the root ("", "/", "best/model/fc1.weight.npy"). Symlinks in the
 * middle of the path are followed (they only point at epoch directories); a final symlink is
 * followed only if @p follow. "." and empty components are skipped; ".." is refused.
 * @return 0, -ENOENT, -ENOTDIR, -ENAMETOOLONG (a component longer than CKPT_VIEW_NAME_MAX).
 */
int ckpt_view_resolve(ckpt_view_attr *out, ckpt_view *view, const char *path, bool follow);

/** One directory entry (with its attributes when they could be computed). */
typedef struct ckpt_view_dirent {
	char *name;          /**< owned by the listing */
	ckpt_view_attr attr; /**< attr.ino is always set; */
	int attr_rc;         /**< 0, or why attr (other than ino and kind) is unknown */
} ckpt_view_dirent;

typedef struct ckpt_view_listing {
	ckpt_view_dirent *entries; /**< without "." and ".." */
	size_t count;
	ckpt_view_attr self; /**< the directory's own attributes */
} ckpt_view_listing;

/**
 * List directory @p ino as of one snapshot, sorted as the mount shows it.
 * @return 0, -ENOENT, -ENOTDIR, -ENOMEM. The listing is freed with ckpt_view_listing_free().
 */
int ckpt_view_list(ckpt_view_listing *out, ckpt_view *view, uint64_t ino);

/**
 * Epochs shown at the root right now, ascending (cheap: no checkpoint is decoded).
 * @param out receives a malloc'd array the caller frees (NULL when *out_count is 0).
 * @return 0, -ENOMEM, -EIO.
 */
int ckpt_view_epochs(uint64_t **out, size_t *out_count, ckpt_view *view);

/**
 * Epochs shown at the root right now, ascending, each with its commit time (ns; -1 when its
 * record cannot be read). A changed time means the epoch was committed again (a run resumed
 * from an earlier checkpoint replaces the epochs after it): its files changed. Decodes every
 * checkpoint record, so it costs about what listing the root does.
 * @param out_epochs, out_times receive malloc'd arrays the caller frees (NULL when
 *        *out_count is 0).
 * @return 0, -ENOMEM, -EIO.
 */
int ckpt_view_epoch_times(uint64_t **out_epochs, int64_t **out_times, size_t *out_count,
                          ckpt_view *view);

/** Free a listing's entries (the struct itself is the caller's). Accepts NULL. */
void ckpt_view_listing_free(ckpt_view_listing *listing);

/**
 * Text of symlink @p ino ("epoch-0007"), NUL-terminated into @p buf of @p cap bytes.
 * @return 0, -ENOENT (no best yet), -EINVAL if @p ino is not a symlink, -ERANGE if too small.
 */
int ckpt_view_readlink(char *buf, size_t cap, ckpt_view *view, uint64_t ino);

/**
 * Open file @p ino: takes a read snapshot of the store and renders the file's layout. The
 * file reads that snapshot until closed, whatever is committed or deleted meanwhile (but for
 * history.csv and metrics.json: ckpt_view_file_follow(), ckpt_view_file_reread()).
 * @param out_attr if not NULL, receives the attributes as of the snapshot (exact size).
 * @return 0, -ENOENT, -EISDIR, -EINVAL (a symlink), or the rendering error.
 */
int ckpt_view_open(ckpt_view_file **out, ckpt_view_attr *out_attr, ckpt_view *view, uint64_t ino);

/**
 * Size of an open file (as rendered at open, or when ckpt_view_file_follow() or
 * ckpt_view_file_reread() moved it).
 */
uint64_t ckpt_view_file_size(const ckpt_view_file *f);

/**
 * Copy up to @p len bytes at @p offset into @p buf; *out_read is fewer only at end of file.
 * @return 0, -EIO if stored bytes fail their CRC-32 (logged once, naming the tensor), -ESTALE
 *         for a parked file whose content is gone (see ckpt_view_file_park()).
 */
int ckpt_view_file_read(ckpt_view_file *f, uint64_t offset, void *buf, size_t len,
                        size_t *out_read);

/**
 * Zero-copy read: fill up to @p cap iovecs describing the bytes at [offset, offset+len)
 * (pointers into the store's map or the layout; valid until the file is closed). Bytes that
 * must be converted (bfloat16 widening) are copied into @p scratch (of @p len bytes); with a
 * NULL @p scratch the iovecs stop before such bytes.
 * *out_count receives the number of iovecs, *out_read the total bytes (short only at EOF,
 * or when @p cap iovecs were not enough: then the caller asks again for the rest).
 * @return 0 or -EIO as ckpt_view_file_read().
 */
int ckpt_view_file_iov(ckpt_view_file *f, uint64_t offset, size_t len, struct iovec *iov,
                       size_t cap, size_t *out_count, void *scratch, size_t *out_read);

/**
 * Release an idle open file's snapshot (long read transactions stop LMDB from reusing pages).
 * The next read takes a new snapshot and continues only if the file renders to exactly the
 * same bytes (same size, synthesized bytes and tensor contents); otherwise reads fail with
 * -ESTALE (its epoch was deleted or rewritten while the file was parked). A file whose
 * content is already gone from the store (its epoch deleted or rewritten since it was opened)
 * is never parked: it keeps reading its snapshot until closed. A file whose bytes are all
 * synthesized (history.csv, metrics.json, run.json, param_groups.json) is an exception to both:
 * it gives up only its snapshot, keeps its bytes and reads on from them whatever the store
 * holds (no new snapshot, never -ESTALE); a history.csv still follows the store
 * (ckpt_view_file_follow()). @return 0.
 */
int ckpt_view_file_park(ckpt_view_file *f);

/**
 * True once the store's data.mdb is no longer the file the view opened (a backup restored in
 * its place, or removed): the view goes on showing the store it opened. Logs one line the first
 * time it finds so. A watcher calls it now and then.
 */
bool ckpt_view_check_store_file(ckpt_view *view);

/** The store's generation now (ckpt_store_generation()): it changes with every commit and gc. */
int ckpt_view_generation(uint64_t *out, ckpt_view *view);

/**
 * Move an open file onto a snapshot of the store as of now when it renders to exactly the same
 * bytes there, and give back the snapshot it read: files kept open across commits then share
 * the newest snapshot instead of holding one LMDB reader slot (and the pages deleted since)
 * per commit. A file whose content is gone from the store (its epoch deleted or rewritten)
 * keeps its snapshot and is pinned (see ckpt_view_file_park()). Only between reads: no reply
 * may point into the file. @return 0 (moved, or left as it was), or the error of taking the
 * new snapshot (-EAGAIN when the reader table is full).
 */
int ckpt_view_file_rebase(ckpt_view_file *f);

/**
 * A read of @p f at or past its end: history.csv follows the store while it only grows, so
 * that `tail -f` and readline followers see new rows. The first such read after a read of
 * bytes leaves @p f as it is (one read sequence from 0 to the end is one whole version); a
 * later one, when the store's history.csv now is @p f's bytes with rows appended (rows'
 * `best` fields may have flipped between 0 and 1 in place), moves @p f onto a snapshot of the
 * store as of now and its longer history.csv, and gives back the snapshot it read. Rows
 * deleted or rewritten (retention, a run resumed from an earlier epoch), and every other file:
 * left as they are (until read again from 0: ckpt_view_file_reread()). A parked history.csv
 * follows too (it kept its bytes). Only between reads: no reply may point into the file.
 * @param out_attr receives the attributes as of the new snapshot when *out_moved is set.
 * @return 0 (moved or not), or the error of taking a snapshot or rendering (left as it was).
 */
int ckpt_view_file_follow(ckpt_view_file *f, ckpt_view_attr *out_attr, bool *out_moved);

/**
 * A read of @p f from offset 0 again (a reader rewinding: `tail -f` after "file truncated",
 * `lseek(fd, 0)`), not the first read of the open file; the caller decides which reads those
 * are. history.csv and metrics.json, which change in place (rows deleted or rewritten by
 * retention, `ckpt gc`, a run resumed from an earlier epoch; `is_best` flipped), move onto a
 * snapshot of the store as of now and their bytes there, whatever they are, as a local file
 * rewritten in place reads anew: the bytes then read agree with the size `stat` reports. The
 * snapshot it read is given back. Unchanged bytes, a deleted epoch (its metrics.json keeps its
 * bytes) and every other file: left as they are. A parked file moves too (it kept its bytes).
 * Only between reads: no reply may point into the file.
 * @param out_attr receives the attributes as of the new snapshot when *out_moved is set.
 * @return 0 (moved or not), or the error of taking a snapshot or rendering (left as it was).
 */
int ckpt_view_file_reread(ckpt_view_file *f, ckpt_view_attr *out_attr, bool *out_moved);

/** True while @p f is parked. */
bool ckpt_view_file_is_parked(const ckpt_view_file *f);

/** Close an open file and its snapshot. Accepts NULL. */
void ckpt_view_file_close(ckpt_view_file *f);

/**
 * Escape a tensor name into a file name stem (without ".npy"): see the naming rules above.
 * @param cap bytes at @p out; 256 is always enough. @return 0, -ERANGE, -EINVAL (empty name).
 */
int ckpt_view_escape_name(char *out, size_t cap, const char *name, size_t suffix_len);

/**
 * Decode a stem made by ckpt_view_escape_name() (%XX sequences). Hashed (truncated) stems
 * cannot be decoded: -EINVAL. @return 0, -EINVAL (malformed), -ERANGE.
 */
int ckpt_view_unescape_name(char *out, size_t cap, const char *stem);

#ifdef __cplusplus
}
#endif
#endif
