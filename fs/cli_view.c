/* fs/cli_view.c - `ckpt ls` and `ckpt cat`: the mount's view without a mount
 *
 * Both open the store read-only and go through include/ckpt/view.h, so they show exactly what
 * ckptfs shows (same names, sizes, bytes). Paths are relative to the mount root; `best` and
 * `latest` are followed like the kernel follows them.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ckpt/view.h"
#include "fs/cli.h"
#include "fs/view_int.h"


/* One line for a path of the view that failed: "CMD: PATH: why (detail)", the detail left out
 * where it only says the path is missing again. */
static void path_error(const char *cmd, const char *path, int rc)
{
	const char *detail = ckpt_view_last_error();
	if (rc == -ENOENT && strncmp(detail, "no such file", 12) == 0)
		cli_error("%s: %s: %s", cmd, path, ckpt_strerror(rc));
	else
		cli_error("%s: %s: %s (%s)", cmd, path, ckpt_strerror(rc), detail);
}

/* PATH as the view names it: a first component that is an epoch number ("8/model.pt", as
 * EPOCH is written elsewhere) becomes its directory ("epoch-0008/model.pt"); the root holds
 * no other name of digits. Written into @p buf (@p cap bytes); @p path itself otherwise. */
static const char *view_path(char *buf, size_t cap, const char *path)
{
	const char *at = path; /* past a leading "/" or "./", which name the root as well */
	while (*at == '/' || (at[0] == '.' && (at[1] == '/' || at[1] == '\0')))
		at += *at == '/' ? 1 : 1 + (at[1] == '/');
	size_t len = strcspn(at, "/");
	char first[32];
	uint64_t e;
	if (len == 0 || len >= sizeof(first))
		return path;
	memcpy(first, at, len);
	first[len] = '\0';
	if (cli_parse_u64(&e, first) != 0 || e > CKPT_MAX_EPOCH)
		return path;
	char name[32];
	view_epoch_name(name, sizeof(name), e);
	if ((size_t)snprintf(buf, cap, "%.*s%s%s", (int)(at - path), path, name, at + len) >= cap)
		return path;
	return buf;
}

static void quiet_log(void *ctx, const char *line)
{
	(void)ctx, (void)line;
}

static int open_view(ckpt_store **store, ckpt_view **view, const char *path,
                     const char *map_location)
{
	int rc = ckpt_store_open(store, path, CKPT_OPEN_READONLY);
	if (rc) {
		cli_error("cannot open store '%s' (%s)", path,
		          ckpt_last_error()[0] ? ckpt_last_error() : ckpt_strerror(rc));
		return rc;
	}
	/* errors reach the user through cli_error(): no separate log line */
	ckpt_view_options opts = {.map_location = map_location, .log = quiet_log};
	rc = ckpt_view_new(view, *store, &opts);
	if (rc) {
		cli_error("%s", ckpt_view_last_error());
		ckpt_store_close(*store);
		*store = NULL;
	}
	return rc;
}

/* One "ls -l" line; an entry whose attributes cannot be read is named on stderr as ls does
 * ("ls: DIR/NAME: why"), keeps its row with '?' for what is unknown (its kind is known, as
 * GNU ls's "d????????? ? ... NAME"), and makes the exit status 1. @return 0 or 1. */
static int print_long(const ckpt_view_attr *a, int attr_rc, const char *dir, const char *name,
                      ckpt_view *view)
{
	char type = a->kind == CKPT_VIEW_DIR ? 'd' : a->kind == CKPT_VIEW_SYMLINK ? 'l' : '-';
	if (attr_rc) {
		/* the listing keeps only the error code: resolving the entry once more gives the
		 * reason, as ckpt cat says it */
		size_t len = strlen(dir);
		char *full = NULL;
		if (asprintf(&full, "%s%s%s", dir, len && dir[len - 1] != '/' ? "/" : "", name) <
		    0) {
			full = NULL;
			cli_error("ls: %s: %s", name, ckpt_strerror(attr_rc));
		} else {
			ckpt_view_attr again;
			if (ckpt_view_resolve(&again, view, full, false) == attr_rc)
				path_error("ls", full, attr_rc);
			else
				cli_error("ls: %s: %s", full, ckpt_strerror(attr_rc));
		}
		free(full);
		printf("%c????????? %12s %19s %s\n", type, "?", "?", name);
		return 1;
	}
	char when[32] = "?";
	time_t secs = (time_t)(a->mtime_ns / 1000000000);
	struct tm tm;
	if (localtime_r(&secs, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	const char *perm = a->kind == CKPT_VIEW_DIR       ? "r-xr-xr-x"
	                   : a->kind == CKPT_VIEW_SYMLINK ? "rwxrwxrwx"
	                                                  : "r--r--r--";
	printf("%c%s %12" PRIu64 " %19s %s", type, perm, a->size, when, name);
	if (a->kind == CKPT_VIEW_SYMLINK) {
		char target[64];
		if (ckpt_view_readlink(target, sizeof(target), view, a->ino) == 0)
			printf(" -> %s", target);
	}
	putchar('\n');
	return 0;
}

int cli_ls(int argc, char **argv)
{
	static const struct option options[] = {
	    {"long", no_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	bool long_format = false;
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":lh", options, NULL)) != -1) {
		switch (c) {
		case 'l':
			long_format = true;
			break;
		case 'h':
			printf("usage: ckpt " CLI_USAGE_LS "\n"
			       "List PATH (default: the root) of the view ckptfs mounts, one name per line\n"
			       "(a file PATH: its name). An epoch's directory may be named by its\n"
			       "number (4/model).\n"
			       "  -l, --long   type, permissions, size, modification time\n"
			       "Exit status: 0; 1 when PATH or the store cannot be read (an entry that\n"
			       "cannot be read is named on stderr and listed, with -l its unknown fields\n"
			       "as '?'); 2 for bad usage.\n");
			return 0;
		default:
			return cli_bad_option(c, argv, options, CLI_USAGE_LS);
		}
	}
	if (cli_check_arg_count(argv, argc - optind, 1, 2, CLI_USAGE_LS))
		return 2;
	const char *store_path = cli_trim_store_path(argv[optind]);
	char path_buf[4200];
	const char *path =
	    view_path(path_buf, sizeof(path_buf), optind + 1 < argc ? argv[optind + 1] : "");
	ckpt_store *store = NULL;
	ckpt_view *view = NULL;
	if (open_view(&store, &view, store_path, NULL))
		return 1;
	int status = 1;
	ckpt_view_attr attr;
	/* like ls: a symlink argument is listed as the directory it points to, unless -l */
	int rc = ckpt_view_resolve(&attr, view, path, !long_format);
	if (rc) {
		path_error("ls", path, rc);
		goto out;
	}
	if (attr.kind != CKPT_VIEW_DIR) {
		const char *base = strrchr(path, '/');
		base = base ? base + 1 : path;
		if (long_format)
			(void)print_long(&attr, 0, "", base, view);
		else
			printf("%s\n", base);
		status = 0;
		goto out;
	}
	ckpt_view_listing listing;
	rc = ckpt_view_list(&listing, view, attr.ino);
	if (rc) {
		path_error("ls", path, rc);
		goto out;
	}
	/* like ls: an entry that cannot be read is named on stderr, the others are listed */
	status = 0;
	for (size_t i = 0; i < listing.count; i++) {
		const ckpt_view_dirent *d = &listing.entries[i];
		if (long_format)
			status |= print_long(&d->attr, d->attr_rc, path, d->name, view);
		else
			printf("%s\n", d->name);
	}
	ckpt_view_listing_free(&listing);
out:
	/* output that cannot be written is reported once, by main() */
	ckpt_view_free(view);
	ckpt_store_close(store);
	return status;
}

int cli_cat(int argc, char **argv)
{
	static const struct option options[] = {
	    {"map-location", required_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *map_location = NULL;
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (c) {
		case 'm':
			map_location = optarg;
			break;
		case 'h':
			printf("usage: ckpt " CLI_USAGE_CAT "\n"
			       "Write file PATH of the view ckptfs mounts to standard output, byte for\n"
			       "byte as the mount serves it. An epoch's directory may be named by\n"
			       "its number (4/model.pt).\n"
			       "Exit status: 0; 1 when PATH or the store cannot be read or the output\n"
			       "cannot be written (a damaged tensor: nothing past it is written); 2 for\n"
			       "bad usage.\n");
			return 0;
		default:
			return cli_bad_option(c, argv, options, CLI_USAGE_CAT);
		}
	}
	if (cli_check_arg_count(argv, argc - optind, 2, 2, CLI_USAGE_CAT))
		return 2;
	const char *store_path = cli_trim_store_path(argv[optind]);
	char path_buf[4200];
	const char *path = view_path(path_buf, sizeof(path_buf), argv[optind + 1]);
	if (map_location && ckpt_view_check_map_location(map_location)) {
		cli_error("cat: %s", ckpt_view_last_error());
		return 2;
	}
	/* ckpt cat S FILE >> S/data.mdb: the output would grow the store it reads */
	if (cli_refuse_store_file("cat", store_path, "/proc/self/fd/1", "stdout"))
		return 1;
	ckpt_store *store = NULL;
	ckpt_view *view = NULL;
	if (open_view(&store, &view, store_path, map_location))
		return 1;
	int status = 1;
	ckpt_view_file *f = NULL;
	char *buf = NULL;
	ckpt_view_attr attr;
	int rc = ckpt_view_resolve(&attr, view, path, true);
	if (!rc && attr.kind == CKPT_VIEW_DIR) {
		cli_error("cat: %s is a directory (ckpt cat reads files; try 'ckpt ls %s%s%s')",
		          *path ? path : "the root", store_path, *path ? " " : "", path);
		goto out;
	}
	if (!rc)
		rc = ckpt_view_open(&f, NULL, view, attr.ino);
	if (rc) {
		path_error("cat", path, rc);
		goto out;
	}
	const size_t bufsize = 1 << 20;
	buf = malloc(bufsize);
	if (!buf) {
		cli_error("cat: out of memory");
		goto out;
	}
	uint64_t size = ckpt_view_file_size(f);
	for (uint64_t off = 0; off < size;) {
		size_t got;
		rc = ckpt_view_file_read(f, off, buf, bufsize, &got);
		if (rc) {
			cli_error("cat: %s: %s (%s)", path, ckpt_strerror(rc),
			          ckpt_view_last_error());
			goto out;
		}
		if (got == 0)
			break;
		rc = cli_write_all(STDOUT_FILENO, buf, got);
		if (rc) {
			cli_error("cat: cannot write to standard output (%s)", strerror(-rc));
			goto out;
		}
		off += got;
	}
	status = 0;
out:
	free(buf);
	ckpt_view_file_close(f);
	ckpt_view_free(view);
	ckpt_store_close(store);
	return status;
}
