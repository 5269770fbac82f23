/* include/ckpt/holders.h - which processes hold a flock(2) on a store file
 *
 * A refusal that says "in use" should say by whom: ckpt-train and ckpt gc name the processes
 * whose flock on data.mdb keeps them out (another trainer, or a reader without lock.mdb).
 */
#ifndef CKPT_HOLDERS_H
#define CKPT_HOLDERS_H

#include <stddef.h>

/**
 * Describe the processes other than this one that hold a FLOCK lock on @p file, as listed in
 * /proc/locks by the file's device and inode: "pid 1234 (ckptfs), pid 99" (the command name
 * from /proc/PID/comm, or the pid alone where that cannot be read).
 * @param out   receives the text, NUL-terminated; "" when none is found (no /proc, or the
 *              holders have gone)
 * @param len   size of @p out; a longer list ends in ", ..."
 * @param file  path of the locked file
 * @return the number of holders found (0 when @p file or /proc/locks cannot be read)
 */
int ckpt_flock_holders(char *out, size_t len, const char *file);

#endif
