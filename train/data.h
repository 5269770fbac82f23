/* train/data.h - data sets for ckpt-train: IDX (MNIST/Fashion-MNIST), CSV, synthetic
 *
 * Every sample is a row of float features in [0, 1] (bytes / 255) and an int32 label in
 * [0, classes). Loading checks everything a file can get wrong (magic, dimensions, counts,
 * truncation, labels out of range, feature count vs the model) and fails with one line of
 * context in train_last_error(); nothing is half-loaded.
 */
#ifndef TRAIN_DATA_H
#define TRAIN_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Default location of Debian's dataset-fashion-mnist. */
#define TRAIN_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/** Samples of the built-in synthetic set (training part, then test part). */
#define TRAIN_SYNTHETIC_TRAIN 10000u
#define TRAIN_SYNTHETIC_TEST 2000u

typedef struct train_dataset {
	uint32_t count;    /**< samples */
	uint32_t features; /**< floats per sample */
	uint32_t rows;     /**< IDX images: rows x cols = features; 0 for CSV and synthetic */
	uint32_t cols;
	float *x;          /**< count * features, row-major */
	int32_t *y;        /**< count labels */
	bool index_header; /**< CSV: line 1 held the column indices 0,1,...,features and was
	                        taken as pandas' header, not as a sample */
	bool unit_range;   /**< CSV: every feature value read lay in [0, 1] and some above 0,
	                        as if scaled already (they are divided by 255 all the same) */
} train_dataset;

typedef struct train_data {
	train_dataset train; /**< training samples (validation is carved from its tail) */
	train_dataset test;  /**< test samples; count 0 if the source has none */
} train_data;

/**
 * Load the data named by @p spec: "fashion-mnist" (the Debian package's directory),
 * "synthetic", a directory holding {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz], or a
 * FILE.csv (label, then features; the test set is the sibling file named by
 * train_csv_test_sibling(), if it exists).
 * @param features expected feature count (the model's input width)
 * @param classes  labels must be below this (the model's output width)
 * @return 0, -ENOENT (missing file), -EINVAL (malformed or mismatched), -EIO, -ENOMEM.
 */
int train_data_load(train_data *out, const char *spec, uint32_t features, uint32_t classes);

/** Read one IDX file of unsigned bytes: images (3 dimensions) or labels (1 dimension), plain or
 *  gzipped (one or more gzip members and nothing after them). Images are scaled to [0,1]
 *  floats; labels checked against @p classes. */
int train_idx_load_images(train_dataset *out, const char *path);
int train_idx_load_labels(int32_t **out, uint32_t *out_count, const char *path, uint32_t classes);

/** Read a CSV file: an optional header line, then "label,f1,...,fN" rows of numbers in
 *  [0,255]. Line 1 is a header when its first field is not a number, or when its fields are
 *  the column indices 0,1,...,n-1 (n >= 2, as pandas writes them for an unnamed DataFrame).
 *  A line with a NUL byte is refused. */
int train_csv_load(train_dataset *out, const char *path, uint32_t features, uint32_t classes);

/** The name of the test file beside the training CSV @p path: in its base name, the last
 *  "train" that stands as a word (no ASCII letter right before or after it) replaced by
 *  "test", or if there is none the last "train" anywhere (train_constrained.csv:
 *  test_constrained.csv; mytrain.csv: mytest.csv). Whether that file exists is not checked.
 *  @return false if the base name holds no "train" or the name does not fit @p len. */
bool train_csv_test_sibling(char *buf, size_t len, const char *path);

/** The built-in deterministic synthetic set (independent of --seed). */
int train_synthetic_load(train_data *out, uint32_t features, uint32_t classes);

void train_dataset_free(train_dataset *d);
void train_data_free(train_data *d);

#endif
