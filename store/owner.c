/* store/owner.c - a store's files touched as root with the file rights of its directory's owner
 *
 * LMDB opens data.mdb and lock.mdb by path and follows symbolic links; the lstat checks before
 * (store_check_data_file()) cannot close the window in which a user who can write the store
 * directory exchanges a file for a link. Run as root, a link would lead LMDB to any file of the
 * system. So a process with euid 0 works in a directory owned by another user with that user's
 * file-system uid and gid (setfsuid/setfsgid: per thread, so other threads keep root's): a link
 * can lead only to files that user could open anyway. In a root-owned directory that others may
 * write (no sticky bit) nothing is safe: root refuses it. Other processes are unaffected.
 */
#include <errno.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_int.h"

/* The directory @p path names, or when it does not exist (a store or backup to create) its
 * parent's, followed through links (the store directory may be a link the user made). */
static int stat_dir(struct stat *st, const char *path)
{
	if (stat(path, st) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	int rc = stat(dirname(copy), st) == 0 ? 0 : -errno;
	free(copy);
	return rc;
}

int store_owner_enter(store_owner *saved, const char *path)
{
	struct stat st;
	*saved = (store_owner){0};
	if (geteuid() != 0 || !path || !*path)
		return 0;
	if (stat_dir(&st, path) != 0 || !S_ISDIR(st.st_mode))
		return 0; /* the caller's own checks say what is wrong */
	if (st.st_uid == 0) {
		/* writable by others (a group other than root's, or everyone) without the sticky
		 * bit: they could replace any file in it by a link, as logrotate refuses such a
		 * parent */
		bool unsafe =
		    ((st.st_mode & S_IWOTH) || ((st.st_mode & S_IWGRP) && st.st_gid != 0)) &&
		    !(st.st_mode & S_ISVTX);
		if (unsafe)
			return store_error(
			    -EPERM,
			    "%s: refused as root: the directory is owned by root but "
			    "writable by %s (mode %04o), who could replace its files by "
			    "links to any file; chmod go-w it, or run as another user",
			    path, (st.st_mode & S_IWOTH) ? "every user" : "its group",
			    (unsigned)(st.st_mode & 07777));
		return 0;
	}
	/* nested (a store opened inside a compaction or backup): already that user's rights, and
	 * the outer leave says what a refusal means, once */
	if ((uid_t)setfsuid((uid_t)-1) == st.st_uid)
		return 0;
	uid_t uid = (uid_t)setfsuid(st.st_uid);
	if ((uid_t)setfsuid(st.st_uid) != st.st_uid) { /* glibc returns the previous fsuid */
		setfsuid(uid);
		return store_error(-EPERM, "%s: cannot take the file rights of its owner (uid %u)",
		                   path, (unsigned)st.st_uid);
	}
	gid_t gid = (gid_t)setfsgid(st.st_gid);
	if ((gid_t)setfsgid(st.st_gid) != st.st_gid) {
		setfsgid(gid);
		setfsuid(uid);
		return store_error(-EPERM, "%s: cannot take the file rights of its owner (gid %u)",
		                   path, (unsigned)st.st_gid);
	}
	*saved = (store_owner){.switched = true, .uid = uid, .gid = gid, .owner = st.st_uid};
	return 0;
}

int store_owner_leave(store_owner *saved, int rc, const char *path)
{
	if (!saved->switched)
		return rc;
	/* still with the owner's rights: can they reach the directory at all? */
	struct stat st;
	bool unreachable = rc == -EACCES && stat(path, &st) != 0 && errno == EACCES;
	setfsgid(saved->gid);
	setfsuid(saved->uid);
	saved->switched = false;
	if (rc != -EACCES && rc != -EPERM)
		return rc;
	char why[8192], name[256] = "";
	struct passwd pw, *found = NULL;
	char buf[1024];
	if (getpwuid_r(saved->owner, &pw, buf, sizeof(buf), &found) == 0 && found)
		snprintf(name, sizeof(name), "%s, ", found->pw_name);
	snprintf(why, sizeof(why), "%s", ckpt_last_error());
	if (unreachable)
		return store_error(rc,
		                   "%s (as root, %s is opened with the file rights of its owner "
		                   "(%suid %u), which cannot reach it (a parent directory may be "
		                   "closed to them): run as that user with access to the path, or "
		                   "move the store)",
		                   why, path, name, (unsigned)saved->owner);
	return store_error(rc,
	                   "%s (as root, files in %s, owned by another user (%suid %u), are opened "
	                   "with that user's rights, so that no link in it leads elsewhere: run as "
	                   "that user, or chown the store's files to them)",
	                   why, path, name, (unsigned)saved->owner);
}
