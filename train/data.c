/* train/data.c - loading IDX, CSV and synthetic data sets
 *
 * IDX files may be gzipped (one or more gzip members, and nothing after them) or plain. Samples
 * are converted to floats once at load; the epoch loop only gathers rows.
 */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "train/data.h"
#include "train/error.h"
#include "train/rng.h"

#define IDX_MAGIC_LABELS 0x00000801u
#define IDX_MAGIC_IMAGES 0x00000803u

void train_dataset_free(train_dataset *d)
{
	if (!d)
		return;
	free(d->x);
	free(d->y);
	memset(d, 0, sizeof(*d));
}

void train_data_free(train_data *d)
{
	if (!d)
		return;
	train_dataset_free(&d->train);
	train_dataset_free(&d->test);
}

/* An IDX file being read, gzipped or plain. zlib's gzread is not used: it silently ignores
 * whatever follows the last gzip member, while a plain file with bytes after its data is
 * refused. Here the gzip members are inflated one after another (concatenated members are
 * legal gzip, as `gzip -d` reads them) and anything else after them is an error. */
typedef struct idx_file {
	FILE *file;
	const char *path;
	bool gzip;   /* the file starts with the gzip magic 1f 8b */
	bool at_end; /* gzip: the last member ended with the file */
	z_stream z;  /* gzip: z.next_in/z.avail_in are the unread bytes of `in` */
	unsigned char *in;
	size_t in_len; /* plain: the bytes read into `in` to look for the gzip magic */
	size_t in_pos; /* plain: how many of them were returned */
} idx_file;

#define IDX_INPUT_SIZE ((size_t)1 << 17)

static void idx_close(idx_file *f)
{
	if (!f)
		return;
	if (f->gzip)
		inflateEnd(&f->z);
	if (f->file)
		fclose(f->file);
	free(f->in);
	free(f);
}

static int idx_read_error(const idx_file *f)
{
	int e = errno ? errno : EIO;
	return train_fail(-e, "cannot read %s (%s)", f->path, strerror(e));
}

/* gzip: have at least @p want unread input bytes at z.next_in, unless the file ends first */
static int idx_input_ensure(idx_file *f, size_t want)
{
	if (f->z.avail_in >= want)
		return 0;
	memmove(f->in, f->z.next_in, f->z.avail_in);
	f->z.next_in = f->in;
	while (f->z.avail_in < want) {
		errno = 0;
		size_t n = fread(f->in + f->z.avail_in, 1, IDX_INPUT_SIZE - f->z.avail_in, f->file);
		if (n == 0) {
			if (ferror(f->file))
				return idx_read_error(f);
			break;
		}
		f->z.avail_in += (uInt)n;
	}
	return 0;
}

/* gzip: a member ended; the file ends too, or another member follows, or it is refused */
static int idx_member_end(idx_file *f)
{
	int rc = idx_input_ensure(f, 2);
	if (rc)
		return rc;
	if (f->z.avail_in == 0) {
		f->at_end = true;
		return 0;
	}
	if (f->z.avail_in < 2 || f->z.next_in[0] != 0x1f || f->z.next_in[1] != 0x8b)
		return train_fail(-EINVAL,
		                  "%s has trailing bytes after its gzip data (not another gzip "
		                  "member)",
		                  f->path);
	if (inflateReset(&f->z) != Z_OK)
		return train_fail(-EIO, "cannot read %s (zlib's inflateReset failed)", f->path);
	return 0;
}

/* Read up to @p len bytes; fewer (*got) only where the data ends. */
static int idx_read_some(idx_file *f, unsigned char *buf, size_t len, size_t *got)
{
	*got = 0;
	if (!f->gzip) {
		size_t peeked = f->in_len - f->in_pos < len ? f->in_len - f->in_pos : len;
		memcpy(buf, f->in + f->in_pos, peeked);
		f->in_pos += peeked;
		errno = 0;
		size_t n = peeked < len ? fread(buf + peeked, 1, len - peeked, f->file) : 0;
		if (peeked + n < len && ferror(f->file))
			return idx_read_error(f);
		*got = peeked + n;
		return 0;
	}
	while (*got < len && !f->at_end) {
		int rc = idx_input_ensure(f, 1);
		if (rc)
			return rc;
		if (f->z.avail_in == 0) /* the file ends inside a member */
			return train_fail(-EINVAL, "cannot read %s (its gzip data is truncated)",
			                  f->path);
		size_t want = len - *got;
		f->z.next_out = buf + *got;
		f->z.avail_out = want > UINT_MAX ? UINT_MAX : (uInt)want;
		uInt room = f->z.avail_out;
		int ret = inflate(&f->z, Z_NO_FLUSH);
		*got += room - f->z.avail_out;
		if (ret == Z_STREAM_END) {
			rc = idx_member_end(f);
			if (rc)
				return rc;
		} else if (ret == Z_MEM_ERROR) {
			return train_fail(-ENOMEM, "out of memory reading %s", f->path);
		} else if (ret != Z_OK && ret != Z_BUF_ERROR) {
			return train_fail(-EINVAL, "cannot read %s (its gzip data is damaged: %s)",
			                  f->path, f->z.msg ? f->z.msg : "inflate failed");
		}
	}
	return 0;
}

/* Open @p path, gzipped or plain (idx_path picks path or path.gz). */
static int idx_open(idx_file **out, const char *path)
{
	idx_file *f = calloc(1, sizeof(*f));
	unsigned char *in = malloc(IDX_INPUT_SIZE);
	if (!f || !in) {
		free(f);
		free(in);
		return train_fail(-ENOMEM, "out of memory opening %s", path);
	}
	f->path = path;
	f->in = in;
	f->file = fopen(path, "rb");
	if (!f->file) {
		int e = errno;
		idx_close(f);
		return train_fail(-e, "cannot open %s (%s)", path, strerror(e));
	}
	errno = 0;
	f->in_len = fread(in, 1, 2, f->file);
	if (f->in_len < 2 && ferror(f->file)) {
		int rc = idx_read_error(f);
		idx_close(f);
		return rc;
	}
	if (f->in_len == 2 && in[0] == 0x1f && in[1] == 0x8b) {
		f->z.next_in = in;
		f->z.avail_in = 2;
		if (inflateInit2(&f->z, 16 + MAX_WBITS) != Z_OK) {
			idx_close(f);
			return train_fail(-ENOMEM, "out of memory opening %s", path);
		}
		f->gzip = true;
	}
	*out = f;
	return 0;
}

static int idx_read(idx_file *f, void *buf, size_t len, const char *what)
{
	size_t got;
	int rc = idx_read_some(f, buf, len, &got);
	if (!rc && got < len)
		rc = train_fail(-EINVAL, "%s is truncated (%s: expected %zu bytes, got %zu)",
		                f->path, what, len, got);
	return rc;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* the element type an IDX magic's third byte names, NULL if none */
static const char *idx_type_name(unsigned type)
{
	switch (type) {
	case 0x08:
		return "unsigned-byte";
	case 0x09:
		return "signed-byte";
	case 0x0B:
		return "int16";
	case 0x0C:
		return "int32";
	case 0x0D:
		return "float32";
	case 0x0E:
		return "float64";
	default:
		return NULL;
	}
}

/* Refuse @p magic, read from @p path where @p expected was wanted: the file is the other kind
 * of IDX file ckpt-train reads, an IDX file of a kind it does not read, or no IDX file. */
static int idx_refuse_magic(const char *path, uint32_t magic, uint32_t expected, const char *kind)
{
	const char *type = idx_type_name(magic >> 8 & 0xff);
	unsigned dims = magic & 0xff;
	if (magic == IDX_MAGIC_IMAGES || magic == IDX_MAGIC_LABELS)
		return train_fail(-EINVAL,
		                  "%s is not an IDX %s file: it is an IDX %s file (magic 0x%08x, "
		                  "expected 0x%08x)",
		                  path, kind, magic == IDX_MAGIC_IMAGES ? "image" : "label", magic,
		                  expected);
	if (magic >> 16 == 0 && type)
		return train_fail(
		    -EINVAL,
		    "%s is an IDX file of %s elements with %u dimension%s: only "
		    "unsigned-byte images (3 dimensions) and labels (1 dimension) are "
		    "supported",
		    path, type, dims, dims == 1 ? "" : "s");
	return train_fail(-EINVAL, "%s is not an IDX %s file (magic 0x%08x, expected 0x%08x)", path,
	                  kind, magic, expected);
}

/* Open an IDX file and read its @p hdr_len-byte header, which must start with @p magic
 * (@p kind names the file in messages: "image", "label"). On error nothing stays open. */
static int idx_open_header(idx_file **out, const char *path, unsigned char *hdr, size_t hdr_len,
                           uint32_t magic, const char *kind)
{
	idx_file *f = NULL;
	int rc = idx_open(&f, path);
	if (rc)
		return rc;
	/* the magic alone first: the header of another kind of IDX file may be shorter */
	rc = idx_read(f, hdr, 4, "header");
	if (!rc && be32(hdr) != magic)
		rc = idx_refuse_magic(path, be32(hdr), magic, kind);
	if (!rc)
		rc = idx_read(f, hdr + 4, hdr_len - 4, "header");
	if (rc) {
		idx_close(f);
		return rc;
	}
	*out = f;
	return 0;
}

/* Read @p len bytes into a buffer that grows with the data actually read, so that a small
 * or truncated file whose header claims gigabytes fails before gigabytes are allocated. */
static int idx_read_alloc(idx_file *f, unsigned char **out, size_t len, const char *what)
{
	size_t cap = len < (16u << 20) ? len : (16u << 20), done = 0;
	unsigned char *buf = malloc(cap);
	if (!buf)
		return train_fail(-ENOMEM, "out of memory loading %s", f->path);
	for (;;) {
		size_t got;
		int rc = idx_read_some(f, buf + done, cap - done, &got);
		if (!rc && got < cap - done) /* say how much the header promised */
			rc = train_fail(-EINVAL, "%s is truncated (%s: expected %zu bytes)",
			                f->path, what, len);
		if (rc) {
			free(buf);
			return rc;
		}
		done = cap;
		if (done == len)
			break;
		cap = len - cap < cap ? len : cap * 2;
		unsigned char *nb = realloc(buf, cap);
		if (!nb) {
			free(buf);
			return train_fail(-ENOMEM, "out of memory loading %s", f->path);
		}
		buf = nb;
	}
	*out = buf;
	return 0;
}

static int idx_expect_end(idx_file *f)
{
	unsigned char c;
	size_t got;
	int rc = idx_read_some(f, &c, 1, &got);
	if (!rc && got > 0)
		rc = train_fail(-EINVAL, "%s has trailing bytes after its data", f->path);
	return rc;
}

int train_idx_load_images(train_dataset *out, const char *path)
{
	memset(out, 0, sizeof(*out));
	idx_file *f;
	unsigned char hdr[16];
	int rc = idx_open_header(&f, path, hdr, sizeof(hdr), IDX_MAGIC_IMAGES, "image");
	if (rc)
		return rc;
	unsigned char *raw = NULL;
	float *x = NULL;
	uint32_t count = be32(hdr + 4), rows = be32(hdr + 8), cols = be32(hdr + 12);
	if (count == 0 || rows == 0 || cols == 0 || (uint64_t)rows * cols > 1u << 24 ||
	    (uint64_t)count * rows * cols > (uint64_t)1 << 34) {
		rc = train_fail(-EINVAL, "%s has implausible dimensions %u x %u x %u", path, count,
		                rows, cols);
		goto out;
	}
	size_t features = (size_t)rows * cols, total = (size_t)count * features;
	rc = idx_read_alloc(f, &raw, total, "pixels");
	if (rc)
		goto out;
	rc = idx_expect_end(f);
	if (rc)
		goto out;
	x = malloc(total * sizeof(float));
	if (!x) {
		rc = train_fail(-ENOMEM, "out of memory loading %s (%zu samples)", path,
		                (size_t)count);
		goto out;
	}
	float scale[256];
	for (int i = 0; i < 256; i++)
		scale[i] = (float)i / 255.0f;
	for (size_t i = 0; i < total; i++)
		x[i] = scale[raw[i]];
	out->count = count;
	out->features = (uint32_t)features;
	out->rows = rows;
	out->cols = cols;
	out->x = x;
	x = NULL;
out:
	free(raw);
	free(x);
	idx_close(f);
	return rc;
}

int train_idx_load_labels(int32_t **out, uint32_t *out_count, const char *path, uint32_t classes)
{
	*out = NULL;
	*out_count = 0;
	idx_file *f;
	unsigned char hdr[8];
	int rc = idx_open_header(&f, path, hdr, sizeof(hdr), IDX_MAGIC_LABELS, "label");
	if (rc)
		return rc;
	unsigned char *raw = NULL;
	int32_t *y = NULL;
	uint32_t count = be32(hdr + 4);
	if (count == 0 || count > (1u << 30)) {
		rc = train_fail(-EINVAL, "%s has an implausible label count %u", path, count);
		goto out;
	}
	rc = idx_read_alloc(f, &raw, count, "labels");
	if (rc)
		goto out;
	rc = idx_expect_end(f);
	if (rc)
		goto out;
	y = malloc((size_t)count * sizeof(*y));
	if (!y) {
		rc = train_fail(-ENOMEM, "out of memory loading %s", path);
		goto out;
	}
	for (uint32_t i = 0; i < count; i++) {
		if (raw[i] >= classes) {
			rc = train_fail(-EINVAL,
			                "%s: label %u of sample %u is out of range for %u classes "
			                "(the last --layers size)",
			                path, raw[i], i, classes);
			goto out;
		}
		y[i] = raw[i];
	}
	*out = y;
	*out_count = count;
	y = NULL;
out:
	free(raw);
	free(y);
	idx_close(f);
	return rc;
}

/* DIR/name, or DIR/name.gz when only that exists */
static int idx_path(char *buf, size_t len, const char *dir, const char *name)
{
	struct stat st;
	int n = snprintf(buf, len, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= len)
		return train_fail(-ENAMETOOLONG, "data directory path too long: %s", dir);
	if (stat(buf, &st) == 0)
		return 0;
	n = snprintf(buf, len, "%s/%s.gz", dir, name);
	if (n < 0 || (size_t)n >= len)
		return train_fail(-ENAMETOOLONG, "data directory path too long: %s", dir);
	if (stat(buf, &st) == 0)
		return 0;
	return train_fail(-ENOENT, "missing data file %s/%s[.gz]", dir, name);
}

/* Load DIR/PREFIX-{images-idx3,labels-idx1}-ubyte[.gz]. The test split passes the training
 * split as @p train (else NULL): its images must have the same rows x cols, not merely the same
 * pixel count, or the model would be tested on pixels laid out otherwise than it learned. */
static int idx_load_split(train_dataset *out, const char *dir, const char *prefix,
                          uint32_t features, uint32_t classes, const train_dataset *train)
{
	char path[4096], name[64];
	train_dataset d;
	int32_t *y = NULL;
	uint32_t ny = 0;
	snprintf(name, sizeof(name), "%s-images-idx3-ubyte", prefix);
	int rc = idx_path(path, sizeof(path), dir, name);
	if (rc)
		return rc;
	rc = train_idx_load_images(&d, path);
	if (rc)
		return rc;
	if (train && (d.rows != train->rows || d.cols != train->cols)) {
		char train_path[4096];
		rc = idx_path(train_path, sizeof(train_path), dir, "train-images-idx3-ubyte");
		if (!rc)
			rc = train_fail(-EINVAL,
			                "the test and training images differ in shape: %s holds "
			                "%u x %u images, %s holds %u x %u",
			                path, d.rows, d.cols, train_path, train->rows, train->cols);
		goto fail;
	}
	if (d.features != features) {
		rc = train_fail(-EINVAL,
		                "layer sizes don't match the data: %s has %u features per sample, "
		                "--layers starts with %u",
		                path, d.features, features);
		goto fail;
	}
	snprintf(name, sizeof(name), "%s-labels-idx1-ubyte", prefix);
	rc = idx_path(path, sizeof(path), dir, name);
	if (rc)
		goto fail;
	rc = train_idx_load_labels(&y, &ny, path, classes);
	if (rc)
		goto fail;
	if (ny != d.count) {
		rc = train_fail(-EINVAL, "%s has %u labels but its images file has %u samples",
		                path, ny, d.count);
		goto fail;
	}
	d.y = y;
	*out = d;
	return 0;
fail:
	free(y);
	train_dataset_free(&d);
	return rc;
}

/* ---- CSV ---------------------------------------------------------------------------------- */

/* Whether the first field of @p s is a number as a whole, even one out of a double's range
 * (refused later with that reason): "information" or "1st_label" are not ("inf", "1"). */
static bool csv_is_number(const char *s)
{
	char *end;
	strtod(s, &end);
	if (end == s)
		return false;
	end += strspn(end, " \t");
	return *end == ',' || *end == '\0';
}

/* What line 1 of a CSV is. */
enum { CSV_SAMPLE, CSV_HEADER, CSV_INDEX_HEADER };

/* Line 1 is a header when its first field is not a number, or when its fields are the column
 * indices 0,1,...,n-1 with n = @p features + 1 (a label and the pixels): what pandas writes
 * for a DataFrame built from an array (np.column_stack([y, X])) saved with index=False.
 * Blanks around a field are allowed, as around values. */
static int csv_line1_kind(const char *line, uint32_t features)
{
	if (!csv_is_number(line)) /* strtod stops at the first comma */
		return CSV_HEADER;
	unsigned long index = 0;
	for (const char *p = line;; index++) {
		p += strspn(p, " \t");
		char *end;
		errno = 0;
		unsigned long v = strtoul(p, &end, 10);
		if (end == p || *p < '0' || *p > '9' || errno || v != index ||
		    (*p == '0' && end - p > 1) || index > features)
			return CSV_SAMPLE;
		end += strspn(end, " \t");
		if (*end == '\0')
			return index == features ? CSV_INDEX_HEADER : CSV_SAMPLE;
		if (*end != ',')
			return CSV_SAMPLE;
		p = end + 1;
	}
}

int train_csv_load(train_dataset *out, const char *path, uint32_t features, uint32_t classes)
{
	memset(out, 0, sizeof(*out));
	FILE *f = fopen(path, "r");
	if (!f) {
		int e = errno;
		return train_fail(-e, "cannot open %s (%s)", path, strerror(e));
	}
	char *line = NULL;
	size_t cap = 0, rows = 0, rows_cap = 0;
	float *x = NULL;
	int32_t *y = NULL;
	int rc = 0;
	unsigned long lineno = 0;
	bool above_one = false;  /* a value no scaled pixel has */
	bool above_zero = false; /* all zeros look like neither */
	ssize_t n;
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (lineno == 1 && n >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
			/* a UTF-8 byte order mark (spreadsheet exports) is not part of the data */
			memmove(line, line + 3, (size_t)n - 2);
			n -= 3;
		}
		if (memchr(line, '\0', (size_t)n)) {
			/* getline reads past it, but the fields would end there */
			rc = train_fail(-EINVAL,
			                "%s:%lu: contains a NUL byte (at byte %zu of the line)",
			                path, lineno, strlen(line) + 1);
			goto out;
		}
		if (n == 0)
			continue;
		if (lineno == 1) {
			int kind = csv_line1_kind(line, features);
			out->index_header = kind == CSV_INDEX_HEADER;
			if (kind != CSV_SAMPLE)
				continue;
		}
		if (rows == rows_cap) {
			size_t ncap = rows_cap ? rows_cap * 2 : 1024;
			float *nx = realloc(x, ncap * features * sizeof(float));
			if (!nx) {
				rc = train_fail(-ENOMEM, "out of memory reading %s", path);
				goto out;
			}
			x = nx;
			int32_t *ny = realloc(y, ncap * sizeof(int32_t));
			if (!ny) {
				rc = train_fail(-ENOMEM, "out of memory reading %s", path);
				goto out;
			}
			y = ny;
			rows_cap = ncap;
		}
		char *p = line;
		uint32_t field = 0;
		for (;;) {
			char *end;
			errno = 0;
			double v = strtod(p, &end);
			/* a value below the normal range is what it rounds to (1e-400 is 0), as
			 * Python's float() reads it; one too large for a double is not a pixel */
			bool underflow = errno == ERANGE && fabs(v) <= DBL_MIN;
			bool overflow = errno == ERANGE && !underflow;
			/* blanks around a value are allowed on both sides, as numpy.loadtxt does;
			 * hexadecimal (which strtod also reads) is not a CSV number */
			bool hex = false;
			for (const char *q = p; q < end && !hex; q++)
				hex = *q == 'x' || *q == 'X';
			while (end != p && (*end == ' ' || *end == '\t'))
				end++;
			bool number = end != p && !hex && (*end == ',' || *end == '\0');
			if (!number || (errno != 0 && !underflow) || !isfinite(v)) {
				size_t flen = strcspn(p, ",");
				rc = train_fail(-EINVAL, "%s:%lu: field %u '%.*s' %s", path, lineno,
				                field + 1, (int)(flen > 40 ? 40 : flen), p,
				                number && overflow
				                    ? "is out of range (too large for a number)"
				                    : "is not a number");
				goto out;
			}
			if (field == 0) {
				if (v < 0 || v != floor(v) || v >= classes) {
					rc = train_fail(
					    -EINVAL,
					    "%s:%lu: label %g is not an integer in [0, %u) "
					    "(the last --layers size)",
					    path, lineno, v, classes);
					goto out;
				}
				y[rows] = (int32_t)v;
			} else if (field <= features) {
				if (v < 0 || v > 255) {
					rc = train_fail(
					    -EINVAL,
					    "%s:%lu: field %u value %g is outside [0, 255]", path,
					    lineno, field + 1, v);
					goto out;
				}
				above_one |= v > 1;
				above_zero |= v > 0;
				x[rows * features + field - 1] = (float)(v / 255.0);
			}
			field++;
			if (*end == '\0')
				break;
			p = end + 1;
		}
		if (field != features + 1) {
			rc = train_fail(
			    -EINVAL,
			    "%s:%lu: expected %u fields (label + %u features from --layers), "
			    "got %u",
			    path, lineno, features + 1, features, field);
			goto out;
		}
		rows++;
		if (rows > INT32_MAX) {
			rc = train_fail(-EINVAL, "%s: too many rows", path);
			goto out;
		}
	}
	if (ferror(f)) {
		rc = train_fail(-EIO, "cannot read %s (%s)", path, strerror(errno));
		goto out;
	}
	if (rows == 0) {
		rc = train_fail(-EINVAL, "%s holds no samples", path);
		goto out;
	}
	out->count = (uint32_t)rows;
	out->features = features;
	out->unit_range = above_zero && !above_one;
	out->x = x;
	out->y = y;
	x = NULL;
	y = NULL;
out:
	free(line);
	free(x);
	free(y);
	fclose(f);
	return rc;
}

/* ---- synthetic ---------------------------------------------------------------------------- */

int train_synthetic_load(train_data *out, uint32_t features, uint32_t classes)
{
	memset(out, 0, sizeof(*out));
	train_rng rng;
	/* a fixed seed: the data set is the same for every run, whatever --seed says */
	train_rng_seed(&rng, 0x5EED5EEDu);
	float *centers = malloc((size_t)classes * features * sizeof(float));
	if (!centers)
		return train_fail(-ENOMEM, "out of memory building the synthetic data set");
	for (size_t i = 0; i < (size_t)classes * features; i++)
		centers[i] = train_rng_uniform(&rng);
	uint32_t counts[2] = {TRAIN_SYNTHETIC_TRAIN, TRAIN_SYNTHETIC_TEST};
	train_dataset *sets[2] = {&out->train, &out->test};
	for (int s = 0; s < 2; s++) {
		train_dataset *d = sets[s];
		d->count = counts[s];
		d->features = features;
		d->x = malloc((size_t)d->count * features * sizeof(float));
		d->y = malloc((size_t)d->count * sizeof(int32_t));
		if (!d->x || !d->y) {
			free(centers);
			train_data_free(out);
			return train_fail(-ENOMEM, "out of memory building the synthetic data set");
		}
		for (uint32_t i = 0; i < d->count; i++) {
			int32_t label = (int32_t)train_rng_below(&rng, classes);
			d->y[i] = label;
			for (uint32_t j = 0; j < features; j++) {
				double v = centers[(size_t)label * features + j] +
				           0.6 * train_rng_normal(&rng);
				d->x[(size_t)i * features + j] = (float)(v < 0 ? 0 : v > 1 ? 1 : v);
			}
		}
	}
	free(centers);
	return 0;
}

/* ---- dispatch ----------------------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static bool is_ascii_letter(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool train_csv_test_sibling(char *buf, size_t len, const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	/* the last "train" that stands as a word (no ASCII letter on either side: digits, '_',
	 * '-' and '.' separate words), else the last one anywhere: train_constrained.csv has
	 * test_constrained.csv beside it, mytrain.csv has mytest.csv */
	const char *hit = NULL, *word = NULL;
	for (const char *p = base; (p = strstr(p, "train")) != NULL; p++) {
		hit = p;
		if ((p == base || !is_ascii_letter(p[-1])) && !is_ascii_letter(p[5]))
			word = p;
	}
	if (word)
		hit = word;
	if (!hit)
		return false;
	int n = snprintf(buf, len, "%.*stest%s", (int)(hit - path), path, hit + 5);
	return n >= 0 && (size_t)n < len;
}

#define FASHION_MNIST_HINT                                                                         \
	"install it with apt-get install dataset-fashion-mnist, or 'make deps' in the ckptfs "     \
	"source tree"

/* True if @p spec names the Fashion-MNIST package's directory: the built-in name, or its path
 * however spelled (a trailing '/', through a link). */
static bool is_fashion_mnist(const char *spec)
{
	if (strcmp(spec, "fashion-mnist") == 0)
		return true;
	char *real = realpath(spec, NULL), *home = realpath(TRAIN_FASHION_MNIST_DIR, NULL);
	bool same = real && home && strcmp(real, home) == 0;
	if (!real && !home) { /* neither exists (yet): the names must match */
		size_t n = strlen(spec);
		while (n > 1 && spec[n - 1] == '/')
			n--;
		same = n == strlen(TRAIN_FASHION_MNIST_DIR) &&
		       memcmp(spec, TRAIN_FASHION_MNIST_DIR, n) == 0;
	}
	free(real);
	free(home);
	return same;
}

/* Add the install hint to the message of a data file missing from the Fashion-MNIST package's
 * directory (empty, or half removed); returns @p rc. */
static int hint_fashion_mnist(int rc)
{
	char *why = strdup(train_last_error());
	if (why) /* else the message stays without the hint */
		train_fail(rc, "%s; " FASHION_MNIST_HINT, why);
	free(why);
	return rc;
}

int train_data_load(train_data *out, const char *spec, uint32_t features, uint32_t classes)
{
	memset(out, 0, sizeof(*out));
	if (strcmp(spec, "synthetic") == 0)
		return train_synthetic_load(out, features, classes);
	const char *dir = strcmp(spec, "fashion-mnist") == 0 ? TRAIN_FASHION_MNIST_DIR : spec;
	int rc;
	if (ends_with(spec, ".csv")) {
		rc = train_csv_load(&out->train, spec, features, classes);
		if (rc)
			return rc;
		char test[4096];
		struct stat st;
		if (train_csv_test_sibling(test, sizeof(test), spec) && stat(test, &st) == 0) {
			rc = train_csv_load(&out->test, test, features, classes);
			if (rc) {
				train_data_free(out);
				return rc;
			}
		}
		return 0;
	}
	bool fashion = is_fashion_mnist(spec);
	struct stat st;
	if (stat(dir, &st) != 0) {
		int e = errno;
		if (fashion)
			return train_fail(-e, "cannot open %s (%s; " FASHION_MNIST_HINT ")", dir,
			                  strerror(e));
		return train_fail(-e, "cannot open data %s (%s)", dir, strerror(e));
	}
	if (!S_ISDIR(st.st_mode))
		return train_fail(
		    -EINVAL, "data %s is neither a directory of IDX files nor a .csv file", spec);
	rc = idx_load_split(&out->train, dir, "train", features, classes, NULL);
	if (!rc)
		rc = idx_load_split(&out->test, dir, "t10k", features, classes, &out->train);
	if (rc) {
		train_data_free(out);
		return rc == -ENOENT && fashion ? hint_fashion_mnist(rc) : rc;
	}
	return 0;
}
