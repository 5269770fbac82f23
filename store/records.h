/* store/records.h - encoders and decoders of every record libckpt stores (pure functions)
 *
 * All records are little-endian and versioned (first u16 is the record version; the checkpoint
 * record's follows its magic number). Version 2, the one written, ends every record in a u32le
 * CRC-32 (zip polynomial, ckpt_crc32) of all the bytes before it: decoders check it before
 * they parse anything, so a damaged byte anywhere in a record is an error, never a changed
 * metric, shape, name or offset (a CRC-32 detects every error burst of up to 32 bits, so any
 * damage within 4 consecutive bytes, and other damage with probability 1 - 2^-32). Version 1
 * records (written before the trailer) are still decoded, unchecked; a version 2 record whose
 * version field is damaged to 1 is 4 bytes too long for version 1 and fails its length checks.
 * Decoders never trust a length: every count and length is checked against the buffer,
 * trailing bytes are an error, and on failure they return CKPT_ECORRUPT with a reason in
 * @p why (no store context: the caller adds path and epoch). Decoders touch no global state,
 * so they can be fuzzed on their own (tests/fuzz/).
 */
#ifndef STORE_RECORDS_H
#define STORE_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ckpt/store.h"

#define STORE_REC_VERSION 2           /* written: ends in a CRC-32 trailer */
#define STORE_REC_VERSION_UNCHECKED 1 /* still read: no trailer */
#define STORE_REC_CRC_LEN 4

/* ---- run metadata ("meta"/"run") ---- */
typedef struct store_run_rec {
	char *model, *layers, *optimizer, *hyperparams, *dataset, *monitor; /* in block */
	uint64_t seed;
	ckpt_metric_mode mode;
	int64_t created_ns;
	uint16_t version; /* as decoded */
	char *block;      /* owns the strings */
} store_run_rec;

int store_run_encode(uint8_t **out, size_t *out_len, const ckpt_run_meta *meta);
int store_run_decode(store_run_rec *out, const void *buf, size_t len, char *why, size_t whylen);
void store_run_free(store_run_rec *r);

/* ---- settings ("meta"/"settings"): fixed layout ---- */
typedef struct store_settings_rec {
	uint64_t chunk_size;
	uint32_t keep_last, keep_top;
	uint16_t version; /* as decoded; ignored by the encoder */
} store_settings_rec;

#define STORE_SETTINGS_LEN 28 /* version 1: 24, no trailer */
void store_settings_encode(uint8_t out[STORE_SETTINGS_LEN], const store_settings_rec *s);
int store_settings_decode(store_settings_rec *out, const void *buf, size_t len, char *why,
                          size_t whylen);

/* ---- per-epoch summary ("index"): fixed layout ---- */
typedef struct store_index_rec {
	bool has_monitor; /* the monitored metric is present and finite */
	double monitor;   /* its value when has_monitor */
	uint32_t ntensors;
	uint64_t step;
	int64_t time_ns;
	uint64_t nbytes;
	uint16_t version; /* as decoded; ignored by the encoder */
} store_index_rec;

#define STORE_INDEX_LEN 44 /* version 1: 40, no trailer */
void store_index_encode(uint8_t out[STORE_INDEX_LEN], const store_index_rec *r);
int store_index_decode(store_index_rec *out, const void *buf, size_t len, char *why, size_t whylen);

/* ---- best epoch ("meta"/"best"): u16 version, u16 0, u64 epoch, CRC-32 ---- */
typedef struct store_best_rec {
	uint64_t epoch;
	uint16_t version; /* as decoded: 1 for the unversioned u64le written before the trailer */
} store_best_rec;

#define STORE_BEST_LEN 16
#define STORE_BEST_V1_LEN 8
void store_best_encode(uint8_t out[STORE_BEST_LEN], uint64_t epoch);
int store_best_decode(store_best_rec *out, const void *buf, size_t len, char *why, size_t whylen);

/* ---- blob (content-addressed tensor bytes, "blobs"): header + u32 crc per chunk + trailer ---- */
typedef struct store_blob_rec {
	uint64_t refcount;
	uint64_t nbytes;
	uint64_t chunk_size;
	uint32_t nchunks;
	uint16_t version;    /* as decoded; ignored by the encoder */
	const uint8_t *crcs; /* borrowed from the decoded buffer: nchunks u32le */
} store_blob_rec;

#define STORE_BLOB_HEADER_LEN 32
/** Length of an encoded blob record of @p nchunks chunks. */
size_t store_blob_len(uint32_t nchunks);
/** Encode into @p out which holds store_blob_len(b->nchunks) bytes. */
void store_blob_encode(uint8_t *out, const store_blob_rec *b, const uint32_t *crcs);
int store_blob_decode(store_blob_rec *out, const void *buf, size_t len, char *why, size_t whylen);
uint32_t store_blob_crc(const store_blob_rec *b, uint32_t i);
/** Overwrite the refcount field of an encoded blob record of @p len bytes in place (and its
 *  trailer). The record must have decoded: a trailer is never recomputed over damage. */
void store_blob_set_refcount(uint8_t *rec, size_t len, uint64_t refcount);

/* ---- checkpoint record ("ckpt") ---- */
typedef struct store_metric {
	const char *name;
	double value;
} store_metric;

typedef struct store_extra {
	const char *key;
	const void *data;
	size_t len;
} store_extra;

typedef struct store_ckpt_rec {
	uint64_t epoch, step;
	int64_t time_ns;
	size_t nmetrics, nextras, ntensors;
	store_metric *metrics;     /* sorted by name */
	store_extra *extras;       /* sorted by key */
	ckpt_tensor_info *tensors; /* insertion order; index == position */
	uint64_t nbytes;           /* sum of tensor nbytes */
	uint16_t version;          /* as decoded; ignored by the encoder */
	void *arena;               /* decoded records own everything through this */
} store_ckpt_rec;

/** Encode @p rec (tensors' index fields are ignored: position is the index). */
int store_ckpt_encode(uint8_t **out, size_t *out_len, const store_ckpt_rec *rec);
/** Decode into a malloc'd record independent of @p buf; free with store_ckpt_free(). */
int store_ckpt_decode(store_ckpt_rec **out, const void *buf, size_t len, char *why, size_t whylen);
void store_ckpt_free(store_ckpt_rec *rec);

/** Number of chunks for @p nbytes at @p chunk_size (0 for an empty tensor). */
uint32_t store_nchunks(uint64_t nbytes, uint64_t chunk_size);


#endif
