/* tests/unit/check_store_json.c - the JSON texts libckpt is given are checked where given:
 * hyper-parameters at ckpt_store_create(), optimizer.param_groups at ckpt_writer_set_extra()
 */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ckpt/store.h"
#include "test_dir.h"

static char tmpdir[256];
static char storepath[512];

static void setup(void)
{
	test_store_dir_make(tmpdir, sizeof(tmpdir), storepath, sizeof(storepath),
	                    "check_store_json");
}

static void teardown(void)
{
	test_dir_remove(tmpdir);
}

static int create_with_hyperparams(const char *hyperparams)
{
	ckpt_run_meta m = {.model = "mlp", .hyperparams = hyperparams, .monitor = "val_loss"};
	ckpt_store *s = NULL;
	int rc = ckpt_store_create(&s, storepath, &m, NULL);
	ckpt_store_close(s);
	return rc;
}

/* Hyper-parameters that are no JSON object were stored and shown in run.json as a string. */
START_TEST(test_hyperparameters_that_are_not_a_json_object_are_refused_at_create)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
	    {"not json", "hyperparams is not a JSON object (parse error at line 1, column 1: "},
	    {"{\"a\":1", "(parse error at line 1, column 7: expected ',' or '}')"},
	    {"[1,2]", "hyperparams is not a JSON object (not a JSON object)"},
	    {"42", "(not a JSON object)"},
	    {"{\"lr\":1e400}", "(parse error at line 1, column 7: a number past the range of a "
	                      "double)"},
	    {"{\"a\":1,\n \"a\":2}", "line 2, column 2: the key \"a\" twice"},
	    {"{\"a\":\"\\u0000\"}", "\\u0000 in a string"},
	    {"{\"a\":\"\\ud800\"}", "a lone high surrogate"},
	    {"{\"a\":1} x", "text after the JSON value"},
	    {"{\"a\":01}", "a bad number"},
	    /* keys are compared decoded, as jansson's JSON_REJECT_DUPLICATES compares them */
	    {"{\"a\":1,\"\\u0061\":2}", "column 8: the key \"a\" twice"},
	    {"{\"\\/\":1,\"/\":2}", "the key \"/\" twice"},
	    {"{\"\\ud83d\\ude00\\n\":1,\"\xf0\x9f\x98\x80\\u000a\":2}", "the key \"\xf0\x9f\x98\x80\n\" twice"},
	    {"{\"\xc3\xa9\":1,\"\\u00E9\":2}", "the key \"\xc3\xa9\" twice"},
	    /* an empty first key passed NULL to memcpy and memcmp (UBSan) */
	    {"{\"\":1,\"\":2}", "column 7: the key \"\" twice"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(create_with_hyperparams(bad[i].text), -EINVAL);
		ck_assert_msg(strstr(ckpt_last_error(), bad[i].why), "%s: %s", bad[i].text,
		              ckpt_last_error());
		ck_assert_int_eq(access(storepath, F_OK), -1);
	}
	static const char *const good[] = {
	    "{}", " {\"lr\": 0.1, \"betas\": [0.9, 0.999], \"nested\": {\"a\": [true, false, null]}}\n",
	    "{\"seed_big\": 18446744073709551616, \"neg\": -99999999999999999999999, \"tiny\": 1e-400}",
	    "{\"name\": \"\\u00e9\\ud83d\\ude00 caf\xc3\xa9\", \"e\": -1.5E+3}", "",
	    "{\"\":1}", "{\"\":1,\"a\":{\"\":2}}",
	    "{\"a\": 1, \"\\u0062\": 2, \"\\\\\": 3, \"\\\"\": 4, \"\\ud83d\\ude00\": 5, \"\\ud83d\\ude01\": 6}",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ck_assert_msg(create_with_hyperparams(good[i]) == 0, "%s: %s", good[i],
		              ckpt_last_error());
		test_dir_remove(tmpdir);
		setup();
	}
	ck_assert_int_eq(create_with_hyperparams(NULL), 0);
}
END_TEST

static int set_groups(ckpt_writer *w, const char *groups)
{
	return ckpt_writer_set_extra(w, "optimizer.param_groups", groups, strlen(groups));
}

/* Param groups that torch's load_state_dict() or checkpoint.pt cannot use were committed and
 * read back as a damaged record (EIO, "corrupt record") or lost state silently. */
START_TEST(test_param_groups_that_torch_cannot_load_are_refused_at_set_extra)
{
	ckpt_store *s = test_store_create(storepath, 0);
	ckpt_writer *w;
	ck_assert_int_eq(ckpt_writer_begin(&w, s, 1), 0);
	static const struct {
		const char *text, *why;
	} bad[] = {
	    {"not json", "extra optimizer.param_groups: parse error at line 1, column 1"},
	    {"[{\"params\":[0]}", "parse error at line 1, column 16: expected ',' or ']'"},
	    {"{}", "not a JSON list of param groups"},
	    {"[1]", "param group 0 is not a JSON object"},
	    {"[{\"params\":[0,5]}]", "param group 0 lists parameter 5, but the groups hold 2 "
	                             "parameters"},
	    {"[{\"params\":\"xx\"}]", "\"params\" is not a list"},
	    {"[{\"lr\":0.1}]", "param group 0 has no \"params\""},
	    {"[{\"params\":[0,1]},{\"params\":[1,2]}]", "parameter 1 is listed twice (param group 1)"},
	    {"[{\"params\":[0,-1]}]", "a parameter index (an integer from 0)"},
	    {"[{\"params\":[0,1.0]}]", "a parameter index"},
	    {"[{\"params\":[0],\"params\":[1]}]", "the key \"params\" twice"},
	    {"[{\"params\":[0],\"lr\":18446744073709551616}]", "an integer outside"},
	    {"[{\"params\":[0,1],\"param_names\":[\"a\"]}]", "param group 0 has other "
	                                                   "\"param_names\" for its 2 \"params\""},
	    {"[{\"params\":[0],\"param_names\":[\"a\"]},{\"params\":[1]}]",
	     "param group 1 has no \"param_names\""},
	    {"[{\"params\":[0],\"param_names\":[1]}]", "holds something other than a string"},
	    {"[{\"params\":[0]}]\0", "a NUL byte"}, /* two: one is C's strlen + 1 */
	    {"[{\"params\":[0],\"x\":\"a\\", "line 1, column 20: a string that does not end"},
	    {"[{\"params\":[-1]}]", "a parameter index"},
	    {"[{\"params\":[0],\"p\\u0061rams\":[5]}]", "the key \"params\" twice"},
	    {"[{\"p\\u0061rams\":[0,5]}]", "param group 0 lists parameter 5"},
	    {"[{\"params\":[0],\"param\\u005fnames\":[\"a\",\"b\"]}]", "other \"param_names\""},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = strlen(bad[i].text) + 2 * (strstr(bad[i].why, "NUL") != NULL);
		ck_assert_int_eq(ckpt_writer_set_extra(w, "optimizer.param_groups", bad[i].text, len),
		                 -EINVAL);
		ck_assert_msg(strstr(ckpt_last_error(), bad[i].why), "%s: %s", bad[i].text,
		              ckpt_last_error());
	}
	/* what ckpt-train and torch's optimizer.state_dict() write */
	static const char *const good[] = {
	    "[{\"lr\": 0.1, \"momentum\": 0.9, \"dampening\": 0, \"weight_decay\": 0, \"nesterov\": "
	    "false, \"maximize\": false, \"foreach\": null, \"differentiable\": false, "
	    "\"params\": [0, 1, 2, 3]}]",
	    "[{\"lr\": 0.001, \"betas\": [0.9, 0.999], \"eps\": 1e-08, \"weight_decay\": 0.01, "
	    "\"params\": [0, 1], \"param_names\": [\"fc1.weight\", \"fc1.bias\"]}, "
	    "{\"lr\": 0.002, \"params\": [2], \"param_names\": [\"head.w\"], \"initial_lr\": 0.002}]",
	    "[{\"params\": [1, 0]}, {\"params\": []}, {\"params\": [2]}]", "[]",
	    "[{\"params\": [1, -0]}]", /* -0 is 0 to jansson and Python */
	    "[{\"\":0,\"params\":[0]}]", /* an empty first key */
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(set_groups(w, good[i]) == 0, "%s: %s", good[i], ckpt_last_error());
	ckpt_writer_abort(w);
	ckpt_store_close(s);
}
END_TEST

/* Epoch 1 of @p s: two model parameters fc.weight and fc.bias with momentum for both, step
 * @p step, param groups @p groups set before the tensors or after them; the commit's code. */
static int commit_two_parameters(ckpt_store *s, uint64_t step, const char *groups, bool first)
{
	static const float values[4] = {1, 2, 3, 4};
	static const char *const names[4] = {"fc.weight", "fc.bias", "fc.weight.momentum_buffer",
	                                     "fc.bias.momentum_buffer"};
	ckpt_writer *w;
	ck_assert_int_eq(ckpt_writer_begin(&w, s, 1), 0);
	ckpt_writer_set_step(w, step);
	if (first)
		ck_assert_msg(set_groups(w, groups) == 0, "%s: %s", groups, ckpt_last_error());
	for (size_t i = 0; i < 4; i++)
		ck_assert_int_eq(ckpt_writer_put_tensor(w, names[i],
		                                        i < 2 ? CKPT_GROUP_MODEL : CKPT_GROUP_OPTIMIZER,
		                                        CKPT_DTYPE_FLOAT32, 0, NULL, NULL, &values[i],
		                                        sizeof(values[i])),
		                 0);
	if (!first)
		ck_assert_msg(set_groups(w, groups) == 0, "%s: %s", groups, ckpt_last_error());
	return ckpt_writer_commit(w); /* frees w whatever it returns */
}

/* Param groups that list no parameter load into no torch optimizer: refused at commit. Groups
 * that do not fit the model tensors were refused too, losing the epoch's whole checkpoint in a
 * training loop, though torch >= 2.6 names parameters relative to the module the optimizer was
 * built from ("module.fc.weight" under DDP) and an optimizer may hold tensors that are no model
 * tensor: they are stored (checkpoint.pt refuses what it cannot map). */
START_TEST(test_param_groups_listing_no_parameter_are_refused_at_commit)
{
	ckpt_store *s = test_store_create(storepath, 0);
	ck_assert_msg(commit_two_parameters(s, 7, "[{\"params\": [0, 1]}]", true) == 0, "%s",
	              ckpt_last_error());
	uint64_t before, after;
	ck_assert_int_eq(ckpt_store_generation(&before, s), 0);
	static const struct {
		const char *text, *why;
	} bad[] = {
	    {"[]", "optimizer.param_groups lists no parameters (no group)"},
	    {"[{\"params\":[]},{\"params\":[]}]", "lists no parameters (every group's"},
	};
	char where[600];
	snprintf(where, sizeof(where), "store %s: epoch 1: ", storepath);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (int first = 0; first < 2; first++) {
			ck_assert_msg(commit_two_parameters(s, 9, bad[i].text, first) == -EINVAL, "%s",
			              bad[i].text);
			ck_assert_msg(strstr(ckpt_last_error(), where) &&
			                  strstr(ckpt_last_error(), bad[i].why),
			              "%s: %s", bad[i].text, ckpt_last_error());
		}
	}
	/* the store as it was: epoch 1 of step 7, no commit since */
	ck_assert_int_eq(ckpt_store_generation(&after, s), 0);
	ck_assert_uint_eq(after, before);
	ckpt_snapshot *snap;
	const ckpt_checkpoint *c;
	ck_assert_int_eq(ckpt_snapshot_open(&snap, s), 0);
	ck_assert_int_eq(ckpt_snapshot_checkpoint(&c, snap, 1), 0);
	ck_assert_uint_eq(ckpt_checkpoint_step(c), 7);
	ckpt_snapshot_close(snap);
	/* an optimizer over some of the model tensors (the others: buffers, frozen parameters),
	 * what torch's state_dict() gives for one over all of them, and groups that do not fit
	 * the model tensors (tensors outside the model, names relative to another module) */
	static const char *const good[] = {
	    "[{\"params\": [0]}]",
	    "[{\"params\": [0], \"param_names\": [\"fc.bias\"]}]",
	    "[{\"params\": [0, 1]}, {\"params\": []}]",
	    "[{\"lr\": 0.1, \"params\": [0], \"param_names\": [\"fc.weight\"]}, "
	    "{\"lr\": 0.01, \"params\": [1], \"param_names\": [\"fc.bi\\u0061s\"]}]",
	    "[{\"params\":[0,1,2]}]",
	    "[{\"params\":[0]},{\"params\":[2,1]}]",
	    "[{\"params\":[0],\"param_names\":[\"fc.weight.momentum_buffer\"]}]",
	    "[{\"params\":[0,1],\"param_names\":[\"module.fc.bias\",\"module.fc.weight\"]}]",
	    "[{\"params\":[0],\"param_names\":[\"weight\"]}]",
	    "[{\"params\":[0],\"param_names\":[\"fc.weight\"]},"
	    "{\"params\":[1],\"param_names\":[\"fc.w\\u0065ight\"]}]",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(commit_two_parameters(s, 8, good[i], i % 2) == 0, "%s: %s", good[i],
		              ckpt_last_error());
	ckpt_store_close(s);
}
END_TEST

/* Param groups given with C's strlen + 1 were refused for "a NUL byte", while other text
 * extras so given are shown without it: the NUL is not stored, so that checkpoint.pt and
 * param_groups.json read the JSON text. */
START_TEST(test_param_groups_given_with_their_terminating_nul_are_stored_without_it)
{
	static const char groups[] = "[{\"params\": [0]}]";
	ckpt_store *s = test_store_create(storepath, 0);
	ckpt_writer *w;
	ck_assert_int_eq(ckpt_writer_begin(&w, s, 1), 0);
	static const float weight = 1;
	ck_assert_int_eq(ckpt_writer_put_tensor(w, "w", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 0,
	                                        NULL, NULL, &weight, sizeof(weight)),
	                 0);
	ck_assert_msg(ckpt_writer_set_extra(w, "optimizer.param_groups", groups, sizeof(groups)) == 0,
	              "%s", ckpt_last_error());
	ck_assert_int_eq(ckpt_writer_commit(w), 0);
	ckpt_snapshot *snap;
	const ckpt_checkpoint *c;
	const void *data;
	size_t len;
	ck_assert_int_eq(ckpt_snapshot_open(&snap, s), 0);
	ck_assert_int_eq(ckpt_snapshot_checkpoint(&c, snap, 1), 0);
	ck_assert_int_eq(ckpt_checkpoint_extra(c, "optimizer.param_groups", &data, &len), 0);
	ck_assert_uint_eq(len, strlen(groups));
	ck_assert_int_eq(memcmp(data, groups, len), 0);
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
}
END_TEST

/* @p pre, @p n '[', @p inner, @p n ']', @p post: malloc'd. */
static char *nested(const char *pre, size_t n, const char *inner, const char *post)
{
	size_t len = strlen(pre) + 2 * n + strlen(inner) + strlen(post);
	char *text = malloc(len + 1);
	ck_assert_ptr_nonnull(text);
	char *p = text + sprintf(text, "%s", pre);
	memset(p, '[', n);
	p += n + sprintf(p + n, "%s", inner);
	memset(p, ']', n);
	strcpy(p + n, post);
	return text;
}

static bool jansson_reads(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
	json_decref(j);
	return j != NULL;
}

/* jansson refuses a value nested past 2048 (the outermost value is 1, every value counts): the
 * checker let one level more through, a checkpoint.pt that could not be read. */
START_TEST(test_nesting_is_refused_exactly_where_jansson_refuses_it)
{
	static const struct {
		const char *pre, *inner, *post;
		size_t deepest_read; /* arrays */
	} cases[] = {
	    {"{\"a\":", "", "}", 2047}, /* the object is 1, the arrays 2..2048 */
	    {"{\"a\":", "1", "}", 2046}, /* and the number in the innermost one counts */
	    {"[{\"params\":[0],\"x\":", "", "}]", 2046},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t n = cases[i].deepest_read; n <= cases[i].deepest_read + 1; n++) {
			char *text = nested(cases[i].pre, n, cases[i].inner, cases[i].post);
			bool read = n == cases[i].deepest_read;
			ck_assert_msg(jansson_reads(text) == read, "jansson, case %zu, %zu deep", i, n);
			int rc;
			if (text[0] == '[') {
				ckpt_store *s = test_store_create(storepath, 0);
				ckpt_writer *w;
				ck_assert_int_eq(ckpt_writer_begin(&w, s, 1), 0);
				rc = set_groups(w, text);
				ckpt_writer_abort(w);
				ckpt_store_close(s);
			} else {
				rc = create_with_hyperparams(text);
			}
			ck_assert_msg(rc == (read ? 0 : -EINVAL), "case %zu, %zu deep: %s", i, n,
			              ckpt_last_error());
			if (!read)
				ck_assert_msg(strstr(ckpt_last_error(), "nested more than 2048 deep"), "%s",
				              ckpt_last_error());
			test_dir_remove(tmpdir);
			setup();
			free(text);
		}
	}
}
END_TEST

/* The checker recursed per nesting level: 2047 levels took 256-512 KB of stack (1 MB with
 * ASan), and a library caller's thread with a small stack crashed in it. */
/* glibc's: the part of a thread's stack it keeps for static TLS and its guard */
extern size_t __pthread_get_minstack(const pthread_attr_t *attr) __attribute__((weak));

typedef struct deep_call {
	ckpt_writer *w;
	const char *groups, *hyperparams;
	int groups_rc, hyperparams_rc;
} deep_call;

static void *check_deep_texts(void *arg)
{
	deep_call *call = arg;
	call->groups_rc = set_groups(call->w, call->groups);
	call->hyperparams_rc = create_with_hyperparams(call->hyperparams);
	return NULL;
}

START_TEST(test_the_deepest_texts_are_checked_on_a_64_kib_thread_stack)
{
	char *groups = nested("[{\"params\":[0],\"x\":", 2046, "", "}]");
	char *hyperparams = nested("{\"a\":", 2047, "", "}");
	char groups_store[512]; /* storepath is for create_with_hyperparams() */
	snprintf(groups_store, sizeof(groups_store), "%s/groups", tmpdir);
	ckpt_store *s = test_store_create(groups_store, 0);
	deep_call call = {.groups = groups, .hyperparams = hyperparams};
	ck_assert_int_eq(ckpt_writer_begin(&call.w, s, 1), 0);
	pthread_attr_t attr;
	pthread_t thread;
	ck_assert_int_eq(pthread_attr_init(&attr), 0);
	/* 64 KiB for the calls, beside what glibc takes from a thread's stack for static TLS */
	size_t taken = __pthread_get_minstack ? __pthread_get_minstack(&attr) : 16384;
	ck_assert_int_eq(pthread_attr_setstacksize(&attr, taken + 64 * 1024), 0);
	ck_assert_int_eq(pthread_create(&thread, &attr, check_deep_texts, &call), 0);
	ck_assert_int_eq(pthread_join(thread, NULL), 0);
	pthread_attr_destroy(&attr);
	ck_assert_int_eq(call.groups_rc, 0);
	ck_assert_int_eq(call.hyperparams_rc, 0);
	ckpt_writer_abort(call.w);
	ckpt_store_close(s);
	free(groups);
	free(hyperparams);
}
END_TEST

/* @p n keys "k0".."k<n-1>" in one object, then @p last: malloc'd. */
static char *many_keys(const char *pre, size_t n, const char *last, const char *post)
{
	size_t cap = strlen(pre) + n * 24 + strlen(last) + strlen(post) + 1, len = 0;
	char *text = malloc(cap);
	ck_assert_ptr_nonnull(text);
	len += (size_t)snprintf(text, cap, "%s", pre);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len, "\"k%zu\":%zu,", i, i);
	snprintf(text + len, cap - len, "%s%s", last, post);
	return text;
}

/* The keys of an object were compared each with every other: 50,000 keys took 5 s (41 s with
 * ASan), 200,000 sixteen times that. They are a hash set now: well within the time limit. */
START_TEST(test_an_object_of_200000_keys_is_checked_without_quadratic_cost)
{
	char *unique = many_keys("{", 200000, "\"last\":0", "}");
	ck_assert_msg(create_with_hyperparams(unique) == 0, "%s", ckpt_last_error());
	test_dir_remove(tmpdir);
	setup();
	char *twice = many_keys("{", 200000, "\"k\\u0031\":0", "}"); /* "k1" again */
	ck_assert_int_eq(create_with_hyperparams(twice), -EINVAL);
	ck_assert_msg(strstr(ckpt_last_error(), "the key \"k1\" twice"), "%s", ckpt_last_error());
	char *groups = many_keys("[{\"params\":[0],", 200000, "\"last\":0", "}]");
	ckpt_store *s = test_store_create(storepath, 0);
	ckpt_writer *w;
	ck_assert_int_eq(ckpt_writer_begin(&w, s, 1), 0);
	ck_assert_msg(set_groups(w, groups) == 0, "%s", ckpt_last_error());
	ckpt_writer_abort(w);
	ckpt_store_close(s);
	free(unique);
	free(twice);
	free(groups);
}
END_TEST

/* FNV-1a's state after @p len bytes of @p s from @p h: the low k bits of the result depend on
 * the low k bits of @p h only, so keys colliding there stay colliding whatever follows. */
static uint64_t fnv1a(uint64_t h, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

static int by_value(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

#define COLLIDING_BLOCKS 16 /* 2^16 keys */
#define COLLIDING_BITS 28   /* hash tables up to 2^28 slots */
#define BLOCK 4             /* characters a block */

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/* Two blocks of BLOCK characters that take FNV-1a's state @p h to states equal in their low
 * COLLIDING_BITS: three characters (of 2^18) whose states agree but in their low 8 bits (found
 * by sorting), and a fourth for each that xors those bits away. */
static void colliding_pair(uint64_t h, char out[2][BLOCK])
{
	const uint64_t mask = (1ull << COLLIDING_BITS) - 1;
	uint64_t *candidates = malloc((1u << 18) * sizeof(uint64_t));
	ck_assert_ptr_nonnull(candidates);
	for (uint32_t i = 0; i < 1u << 18; i++) {
		char b[3] = {alphabet[i & 63], alphabet[(i >> 6) & 63], alphabet[i >> 12]};
		candidates[i] = ((fnv1a(h, b, 3) & mask) >> 8) << 18 | i;
	}
	qsort(candidates, 1u << 18, sizeof(*candidates), by_value);
	for (uint32_t i = 1; i < 1u << 18; i++) {
		if (candidates[i] >> 18 != candidates[i - 1] >> 18)
			continue;
		uint32_t pair[2] = {candidates[i - 1] & ((1u << 18) - 1),
		                    candidates[i] & ((1u << 18) - 1)};
		uint64_t state[2];
		for (int k = 0; k < 2; k++) {
			for (int c = 0; c < 3; c++)
				out[k][c] = alphabet[(pair[k] >> (6 * c)) & 63];
			state[k] = fnv1a(h, out[k], 3);
		}
		unsigned delta = (unsigned)((state[0] ^ state[1]) & 0xff);
		for (const char *c = alphabet; *c; c++) {
			if (delta && strchr(alphabet, *c ^ (char)delta)) {
				out[0][3] = *c;
				out[1][3] = (char)(*c ^ (char)delta);
				free(candidates);
				ck_assert_uint_eq(fnv1a(h, out[0], BLOCK) & mask,
				                  fnv1a(h, out[1], BLOCK) & mask);
				return;
			}
		}
	}
	ck_abort_msg("no colliding blocks"); /* thousands of candidates are expected */
}

/* An object of the 2^16 keys that FNV-1a (the key set's old hash) puts into one slot of any
 * table up to 2^28 slots: each key is one of two blocks, 16 times, then @p last. malloc'd. */
static char *fnv_colliding_keys(const char *last)
{
	const uint64_t mask = (1ull << COLLIDING_BITS) - 1;
	char blocks[COLLIDING_BLOCKS][2][BLOCK];
	uint64_t h = 14695981039346656037ull;
	for (int step = 0; step < COLLIDING_BLOCKS; step++) {
		colliding_pair(h, blocks[step]);
		h = fnv1a(h, blocks[step][0], BLOCK);
	}
	size_t n = 1u << COLLIDING_BLOCKS;
	size_t cap = n * (BLOCK * COLLIDING_BLOCKS + 8) + strlen(last) + 4;
	char *text = malloc(cap), *p = text;
	ck_assert_ptr_nonnull(text);
	*p++ = '{';
	for (size_t i = 0; i < n; i++) {
		char key[BLOCK * COLLIDING_BLOCKS];
		for (int step = 0; step < COLLIDING_BLOCKS; step++)
			memcpy(key + BLOCK * step, blocks[step][(i >> step) & 1], BLOCK);
		/* the old hash table's collisions are what this test is about */
		ck_assert_uint_eq(fnv1a(14695981039346656037ull, key, sizeof(key)) & mask, h & mask);
		*p++ = '"';
		memcpy(p, key, sizeof(key));
		p += sizeof(key);
		p += sprintf(p, "\":%zu,", i % 10);
	}
	p += sprintf(p, "%s}", last);
	ck_assert_uint_lt((size_t)(p - text), cap);
	return text;
}

static double seconds_since(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* The key set hashed with FNV-1a, unkeyed: keys chosen to collide in its low bits made each
 * key's probe walk all those before it, 65,536 keys (4.5 MB) took 7.4 s where keys of no such
 * choice took 0.024 s. Keyed per process, such keys cannot be chosen in advance; they are still
 * told apart (no false "twice"), and a key given twice among them is still found. */
START_TEST(test_keys_that_collide_under_an_unkeyed_hash_cost_no_quadratic_time)
{
	char *colliding = fnv_colliding_keys("\"last\":0");
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	ck_assert_msg(create_with_hyperparams(colliding) == 0, "%s", ckpt_last_error());
	double took = seconds_since(&start);
	ck_assert_msg(took < 3.0, "65,536 colliding keys took %.2f s", took);
	test_dir_remove(tmpdir);
	setup();
	/* the first key once more, at the end: told from the 65,535 others, found equal to it */
	char first[BLOCK * COLLIDING_BLOCKS + 8];
	const char *at = colliding + 2; /* after '{' and '"' */
	snprintf(first, sizeof(first), "\"%.*s\":0", BLOCK * COLLIDING_BLOCKS, at);
	char *twice = fnv_colliding_keys(first);
	clock_gettime(CLOCK_MONOTONIC, &start);
	ck_assert_int_eq(create_with_hyperparams(twice), -EINVAL);
	took = seconds_since(&start);
	char want[BLOCK * COLLIDING_BLOCKS + 32];
	snprintf(want, sizeof(want), "the key \"%.*s\" twice", BLOCK * COLLIDING_BLOCKS, at);
	ck_assert_msg(strstr(ckpt_last_error(), want), "%s", ckpt_last_error());
	ck_assert_msg(took < 3.0, "65,536 colliding keys and one twice took %.2f s", took);
	free(colliding);
	free(twice);
}
END_TEST

static Suite *store_json_suite(void)
{
	Suite *su = suite_create("store_json");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_hyperparameters_that_are_not_a_json_object_are_refused_at_create);
	tcase_add_test(tc, test_param_groups_that_torch_cannot_load_are_refused_at_set_extra);
	tcase_add_test(tc, test_nesting_is_refused_exactly_where_jansson_refuses_it);
	tcase_add_test(tc, test_param_groups_given_with_their_terminating_nul_are_stored_without_it);
	tcase_add_test(tc, test_param_groups_listing_no_parameter_are_refused_at_commit);
	suite_add_tcase(su, tc);
	/* hostile texts: the old checker took minutes here (a crash on the small stack) */
	TCase *cost = tcase_create("cost");
	tcase_add_checked_fixture(cost, setup, teardown);
	tcase_set_timeout(cost, 30);
	tcase_add_test(cost, test_the_deepest_texts_are_checked_on_a_64_kib_thread_stack);
	tcase_add_test(cost, test_an_object_of_200000_keys_is_checked_without_quadratic_cost);
	tcase_add_test(cost, test_keys_that_collide_under_an_unkeyed_hash_cost_no_quadratic_time);
	suite_add_tcase(su, cost);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(store_json_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
