/* fs/fuse_ops.h - the FUSE low-level adapter over the view (fs/fuse_ops.c)
 *
 * Thin: every decision about names, attributes and bytes is the view's; this layer maps view
 * attributes to struct stat, picks cache timeouts and keep_cache, and replies.
 */
#ifndef FS_FUSE_OPS_H
#define FS_FUSE_OPS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "ckpt/view.h"

typedef struct ckptfs_ctx {
	ckpt_view *view; /* set before the session loop starts */
	uid_t uid;       /* owner of every node: the mounting user */
	gid_t gid;
	unsigned max_read;      /* 0: libfuse's default */
	const char *store_path; /* for statfs: the size of its data.mdb */
} ckptfs_ctx;

/** The last mount at absolute @p path in /proc/self/mountinfo: its "maj:min" and file system
 *  type ("fuse.ckptfs"). @return true if there is one. */
bool ckptfs_find_mount(const char *path, char *majmin, size_t mcap, char *fstype, size_t fcap);

/** The mount whose file system holds the directory at absolute, resolved @p path, whose
 *  device (stat's st_dev) is @p dev: of the mounts of that device in /proc/self/mountinfo at
 *  @p path or above it, the deepest. Its mountpoint goes to @p mountpoint (@p mcap bytes) and
 *  its file system type to @p fstype. @return true if there is one. */
bool ckptfs_find_mount_holding(const char *path, dev_t dev, char *mountpoint, size_t mcap,
                               char *fstype, size_t fcap);

/** Seconds the kernel may cache entries/attributes of nodes that never change. */
#define CKPTFS_IMMUTABLE_TIMEOUT 300.0
/** Seconds for what changes with each commit: the root, best, latest, history, metrics (their
 *  names; and the root's attributes, which a permission check reads on every path walk). */
#define CKPTFS_LIVE_TIMEOUT 0.5
/** Seconds for the attributes of live files and symlinks: none, so that a stat always gives the
 *  size a read of a new open returns (tail, wc -c and rsync trust st_size). */
#define CKPTFS_LIVE_ATTR_TIMEOUT 0.0

/** True if open files of attributes @p a and @p b are different incarnations of one inode
 *  (an epoch committed again keeps its files' names and inode numbers; commit time or size
 *  tell them apart) whose bytes could meet in the kernel's page cache of that inode. Only
 *  immutable files: live ones (history.csv, metrics.json) change at every commit and are read
 *  direct_io anyway, so two opens of them at different commits are not mixed. */
bool ckptfs_incarnations_mixed(const ckpt_view_attr *a, const ckpt_view_attr *b);

/** The longest name a lookup accepts (statfs's f_namemax); longer ones fail with ENAMETOOLONG
 *  (the view's decision: ckpt_view_lookup()). */
#define CKPTFS_NAME_MAX CKPT_VIEW_NAME_MAX

/** Default seconds an open file may sit idle before its snapshot is released. */
#define CKPTFS_SNAPSHOT_IDLE 300

/**
 * Start the thread that parks open files idle for @p idle_s seconds or more (0: never), so a
 * forgotten open file does not hold an LMDB read transaction forever. @return 0 or -errno.
 */
int ckptfs_reaper_start(unsigned idle_s);

/** Stop and join the reaper (no-op if not running). Call before the view is freed. */
void ckptfs_reaper_stop(void);

/**
 * Start the thread that tells the kernel (notify_inval_entry) when retention deletes an epoch
 * directory, twice a second. @return 0 or -errno.
 */
int ckptfs_watcher_start(struct fuse_session *se, ckpt_view *view);

/** Stop and join the watcher (no-op if not running). Call before unmounting. */
void ckptfs_watcher_stop(void);

/** After the session loop: close every file still open (their snapshots) before the store. */
void ckptfs_close_all_files(void);

/**
 * Answer the kernel's INIT request, the first a new mount sends (no other request can come
 * before it is answered). Called once after mounting and before daemonizing, so that when
 * ckptfs returns the mount is initialized. @return 0, -EPROTO if the first request is not INIT,
 * or the receive error.
 */
int ckptfs_session_init(struct fuse_session *se, ckptfs_ctx *ctx);

/**
 * Set the readahead of the mount at absolute @p mountpoint to @p kb KiB (0: leave it) by
 * writing /sys/class/bdi/MAJ:MIN/read_ahead_kb, which only root may: the INIT reply caps it at
 * what the kernel offered (128 KiB), and 1 MiB gives 2-3x the cold read throughput. @p path
 * (@p pathcap bytes) receives the file written, for a message.
 * @return 0, -ENOENT if no mount is at @p mountpoint, or the open or write error (-EACCES
 * without root).
 */
int ckptfs_set_readahead(const char *mountpoint, unsigned kb, char *path, size_t pathcap);

/** The operations table; userdata is a ckptfs_ctx. */
const struct fuse_lowlevel_ops *ckptfs_ops(void);

#endif
