# Makefile - builds libckpt, the engine, the file system and every test.
#
# Sources are found by wildcard: store/*.c is libckpt; fs/*.c and train/*.c are the view and
# the engine; files named *_main.c hold a program's main() and are linked into build/bin/.
# Unit tests (tests/unit/check_*.c) build against sanitized copies of every module.

PREFIX ?= /usr/local
BUILD := build
PKGS := lmdb libxxhash jansson fuse3 openblas zlib


PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wno-unused-parameter
ifeq ($(CI),true)
WARN += -Werror
endif
OPT ?= -O2 -g
BASE_CFLAGS = -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Iinclude -I. $(WARN) $(PKG_CFLAGS) \
	-MMD -MP
CFLAGS_ALL = $(BASE_CFLAGS) $(OPT) -fPIC $(CFLAGS)
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
CFLAGS_ASAN = $(BASE_CFLAGS) -O1 -g $(SAN) -DCKPT_TESTING $(CFLAGS)
LIBS = $(PKG_LIBS) -lpthread -lm

STORE_SRC := $(sort $(wildcard store/*.c))
FS_SRC := $(sort $(filter-out %_main.c,$(wildcard fs/*.c)))
TRAIN_SRC := $(sort $(filter-out %_main.c,$(wildcard train/*.c)))
MODULE_SRC := $(STORE_SRC) $(FS_SRC) $(TRAIN_SRC)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
asanobj = $(patsubst %.c,$(BUILD)/asan/obj/%.o,$(1))

STORE_OBJ := $(call obj,$(STORE_SRC))
FS_OBJ := $(call obj,$(FS_SRC))
TRAIN_OBJ := $(call obj,$(TRAIN_SRC))
MODULE_ASAN_OBJ := $(call asanobj,$(MODULE_SRC))

BINS := $(BUILD)/bin/ckpt $(BUILD)/bin/ckptfs $(BUILD)/bin/ckpt-train

# The CUDA backend is a plug-in, build/lib/ckpt-train-cuda.so, that ckpt-train dlopens for
# --device cuda[:N] (train/cuda/backend_cuda.h): ckpt-train itself never links CUDA, so it
# starts on machines without the CUDA libraries. CUDA=auto builds the plug-in when nvcc is
# found (PATH or $(CUDA_HOME)/bin/nvcc), CUDA=0 never, CUDA=1 fails without nvcc.
CUDA ?= auto
CUDA_HOME ?= /usr/local/cuda
NVCC ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard $(CUDA_HOME)/bin/nvcc))
ifeq ($(CUDA),0)
CUDA_BUILD :=
else ifneq ($(NVCC),)
CUDA_BUILD := 1
else ifeq ($(CUDA),1)
ifneq ($(filter-out clean,$(or $(MAKECMDGOALS),all)),)
$(error CUDA=1 but nvcc was found neither in PATH nor at $(CUDA_HOME)/bin/nvcc)
endif
endif
CUDA_SRC := $(sort $(wildcard train/cuda/*.cu))
CUDA_PLUGIN := $(BUILD)/lib/ckpt-train-cuda.so
CUDA_LIB_DIR ?= $(abspath $(dir $(NVCC))../lib64)
# Ampere and Hopper code plus PTX that later GPUs compile at load time
NVCC_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
	-gencode arch=compute_90,code=compute_90
NVCC_WARN := -Xcompiler -Wall,-Wextra,-Wno-unused-parameter
ifeq ($(CI),true)
NVCC_WARN += -Xcompiler -Werror
endif
# -fmad=false: no FMA contraction, the CPU backend's float arithmetic op for op
NVCCFLAGS ?= -O2 -g
NVCCFLAGS_ALL = -std=c++17 $(NVCCFLAGS) -fmad=false $(NVCC_ARCH) $(NVCC_WARN) \
	-Xcompiler -fPIC,-fvisibility=hidden -Iinclude -I.
LIBRARIES := $(BUILD)/lib/libckpt.a $(BUILD)/lib/libckpt.so $(BUILD)/lib/libckpt.so.0

UNIT_SRC := $(sort $(wildcard tests/unit/check_*.c))
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/asan/tests/%,$(UNIT_SRC))
UNIT_HELPER_SRC := $(sort $(filter-out tests/unit/check_%.c,$(wildcard tests/unit/*.c)))
UNIT_HELPER_OBJ := $(call asanobj,$(UNIT_HELPER_SRC))
# small programs the integration tests use (e.g. to write stores through the API)
TOOL_SRC := $(sort $(wildcard tests/tools/*.c))
TOOL_BINS := $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(TOOL_SRC))
# a stand-in for the CUDA plug-in (the CPU backend reporting cuda:N), for the engine's GPU path
# in tests on machines without a GPU; never installed or bundled
FAKE_CUDA_PLUGIN := $(BUILD)/tests/tools/fake-cuda/ckpt-train-cuda.so
TOOL_BINS += $(FAKE_CUDA_PLUGIN)

.PHONY: all deps deps-build demo test test-unit test-integration bench install clean fuzz \
	test-reliability test-large test-valgrind format gpu-bundle

all: $(BINS) $(LIBRARIES) $(if $(CUDA_BUILD),$(CUDA_PLUGIN))

deps:
	@scripts/deps.sh test
deps-build:
	@scripts/deps.sh build

# ---- objects -------------------------------------------------------------------------------
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/asan/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ASAN) -c $< -o $@

# ---- libraries and programs ----------------------------------------------------------------
# Both libraries export only the ckpt_* API: the .a holds one object whose other symbols are
# made local, the .so a version script (an application's store_error() must not replace ours).
$(BUILD)/lib/libckpt.a: $(STORE_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ $(BUILD)/lib/libckpt.o
	$(LD) -r -o $(BUILD)/lib/libckpt.o $^
	objcopy -w --keep-global-symbol='ckpt_*' $(BUILD)/lib/libckpt.o
	ar rcs $@ $(BUILD)/lib/libckpt.o
	rm -f $(BUILD)/lib/libckpt.o

$(BUILD)/lib/libckpt.so: $(STORE_OBJ) store/libckpt.map
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libckpt.so.0 -Wl,--version-script=store/libckpt.map -o $@ \
		$(STORE_OBJ) $(LIBS)

# the soname: what the loader looks for, also for a program linked in the tree with an rpath
$(BUILD)/lib/libckpt.so.0: $(BUILD)/lib/libckpt.so
	ln -sf libckpt.so $@

$(BUILD)/bin/ckpt: $(BUILD)/obj/fs/ckpt_main.o $(FS_OBJ) $(STORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LIBS) $(LDFLAGS)

$(BUILD)/bin/ckptfs: $(BUILD)/obj/fs/ckptfs_main.o $(FS_OBJ) $(STORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LIBS) $(LDFLAGS)

$(BUILD)/bin/ckpt-train: $(BUILD)/obj/train/ckpt_train_main.o $(TRAIN_OBJ) $(STORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LIBS) $(LDFLAGS)

# the headers the .cu includes come from nvcc's own dependency file (build/lib/*.d, -MD), as
# the C objects' do from -MMD
$(CUDA_PLUGIN): $(CUDA_SRC)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS_ALL) -MD -MP -MF $(@:.so=.d) -MT $@ -shared -o $@ $(CUDA_SRC) \
		-L$(CUDA_LIB_DIR) -lcublas -Xlinker -rpath,'$$ORIGIN:$(CUDA_LIB_DIR)'

# ---- tests ---------------------------------------------------------------------------------
$(BUILD)/asan/tests/%: tests/unit/%.c $(MODULE_ASAN_OBJ) $(UNIT_HELPER_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ASAN) -Itests/unit -o $@ $< $(MODULE_ASAN_OBJ) $(UNIT_HELPER_OBJ) \
		$(CHECK_LIBS) $(LIBS)

$(BUILD)/tests/tools/%: tests/tools/%.c $(FS_OBJ) $(TRAIN_OBJ) $(STORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $(filter-out %.h,$^) $(LIBS) $(LDFLAGS)

$(FAKE_CUDA_PLUGIN): tests/tools/fake_cuda/fake_cuda_plugin.c tests/tools/fake_cuda/plugin.map \
		$(BUILD)/obj/train/backend_cpu.o $(BUILD)/obj/train/error.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -shared -Wl,--version-script=tests/tools/fake_cuda/plugin.map -o $@ \
		$< $(BUILD)/obj/train/backend_cpu.o $(BUILD)/obj/train/error.o $(LIBS)

test: deps
	@$(MAKE) --no-print-directory all $(UNIT_BINS) $(TOOL_BINS)
	@scripts/run-tests.sh $(UNIT_BINS)

test-unit: all $(UNIT_BINS) $(TOOL_BINS)
	@scripts/run-tests.sh --unit-only $(UNIT_BINS)

test-integration: all $(TOOL_BINS)
	@scripts/run-tests.sh --integration-only

demo: deps-build
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh

bench: deps all $(TOOL_BINS)
	@scripts/bench.sh

# a > 4 GiB model through zip64 (needs ~14 GiB of disk; not in make test)
test-large: deps all $(TOOL_BINS)
	@bash tests/large/test_zip64.sh

# ---- install, uninstall --------------------------------------------------------------------
# Every installed path is single-quoted for the shell (a ' inside written as '\''), so a PREFIX
# or DESTDIR with spaces, &, ;, | or quotes is one path and nothing lands in the source tree.
# A newline cannot be quoted inside a recipe line: it is refused before anything is built.
INSTALL_HEADERS := include/ckpt/store.h include/ckpt/tensor.h include/ckpt/holders.h \
	include/ckpt/message.h
shell_quote = '$(subst ','\'',$(1))'
INSTALL_ROOT_Q = $(call shell_quote,$(DESTDIR)$(PREFIX))
INSTALL_PLUGIN_Q = $(INSTALL_ROOT_Q)/lib/$(notdir $(CUDA_PLUGIN))
define install_newline


endef
ifneq ($(filter install uninstall,$(MAKECMDGOALS)),)
ifneq ($(findstring $(install_newline),$(DESTDIR)$(PREFIX)),)
$(error PREFIX or DESTDIR contains a newline, which cannot be installed to; choose another path)
endif
endif
# The loader finds a new libckpt.so.0 in PREFIX/lib (without an rpath) only once ldconfig has
# updated its cache, and only when PREFIX/lib is in its path (/usr/local/lib is on Debian): a
# real install (no DESTDIR) by root runs it, from PATH or else (a bare name, where sudo or the
# user's PATH leaves out sbin) from LDCONFIG_DIRS. None found, or a failure, is only a note.
LDCONFIG ?= ldconfig
LDCONFIG_DIRS ?= /sbin /usr/sbin
run_ldconfig = $(if $(DESTDIR),,@if [ "$$(id -u)" = 0 ]; then \
	ldconfig=$(call shell_quote,$(LDCONFIG)) why=; \
	case $$ldconfig in \
	('') why="LDCONFIG is empty";; \
	(*/*) [ -f "$$ldconfig" ] && [ -x "$$ldconfig" ] || why="$$ldconfig not found";; \
	(*) command -v "$$ldconfig" >/dev/null 2>&1 || { \
		why="$$ldconfig not found on PATH or in "$(call shell_quote,$(LDCONFIG_DIRS)); \
		for dir in $(foreach d,$(LDCONFIG_DIRS),$(call shell_quote,$(d))); do \
			[ -z "$$ldconfig" ] || [ ! -f "$$dir/$$ldconfig" ] || [ ! -x "$$dir/$$ldconfig" ] || \
				{ ldconfig=$$dir/$$ldconfig why=; break; }; \
		done; };; \
	esac; \
	[ -n "$$why" ] || { echo "$$ldconfig"; "$$ldconfig" || why="$$ldconfig failed"; }; \
	[ -z "$$why" ] || echo "note: $$why; run ldconfig before using libckpt.so.0 from" \
		$(call shell_quote,$(PREFIX))/lib >&2; \
	fi)

.PHONY: uninstall
install: all
	install -d $(INSTALL_ROOT_Q)/bin $(INSTALL_ROOT_Q)/lib/pkgconfig $(INSTALL_ROOT_Q)/include/ckpt
	install -m 0755 $(BINS) $(INSTALL_ROOT_Q)/bin/
	install -m 0644 $(BUILD)/lib/libckpt.a $(INSTALL_ROOT_Q)/lib/
	install -m 0755 $(BUILD)/lib/libckpt.so $(INSTALL_ROOT_Q)/lib/libckpt.so.0
	ln -sf libckpt.so.0 $(INSTALL_ROOT_Q)/lib/libckpt.so
	install -m 0644 $(INSTALL_HEADERS) $(INSTALL_ROOT_Q)/include/ckpt/
# The plug-in this build made, whether or not nvcc is found now (sudo's secure_path drops
# /usr/local/cuda/bin). CUDA=0, or a build without one, installs none and removes the one an
# earlier install left.
	@if $(if $(filter 0,$(CUDA)),false,[ -f $(CUDA_PLUGIN) ]); then \
		echo "install -m 0755 $(CUDA_PLUGIN) "$(INSTALL_ROOT_Q)"/lib/"; \
		install -m 0755 $(CUDA_PLUGIN) $(INSTALL_ROOT_Q)/lib/; \
	elif [ -e $(INSTALL_PLUGIN_Q) ] || [ -L $(INSTALL_PLUGIN_Q) ]; then \
		echo "rm "$(INSTALL_PLUGIN_Q)" (left by an earlier install; this one has no CUDA" \
			"plug-in)"; \
		rm -f $(INSTALL_PLUGIN_Q); \
	fi
# ckpt.pc: PREFIX with pkg-config's escapes (a backslash before blanks, quotes, \ and #), then
# escaped once more as a sed replacement (\, | and &)
	pc_prefix=$$(printf '%s\n' $(call shell_quote,$(PREFIX)) | \
		sed -e 's/[[:blank:]\\"'\''#]/\\&/g' -e 's/[\\|&]/\\&/g') && \
	sed -e "s|@PREFIX@|$$pc_prefix|g" \
		-e 's|@VERSION@|$(shell sed -n 's/^#define CKPT_VERSION "\(.*\)"/\1/p' include/ckpt/store.h)|' \
		ckpt.pc.in >$(INSTALL_ROOT_Q)/lib/pkgconfig/ckpt.pc
	$(run_ldconfig)

# exactly what install installed, under the same PREFIX and DESTDIR; include/ckpt/ goes when
# nothing else is left in it
uninstall:
	rm -f $(addprefix $(INSTALL_ROOT_Q)/bin/,$(notdir $(BINS))) \
		$(addprefix $(INSTALL_ROOT_Q)/lib/,libckpt.a libckpt.so libckpt.so.0 pkgconfig/ckpt.pc) \
		$(INSTALL_PLUGIN_Q) \
		$(addprefix $(INSTALL_ROOT_Q)/include/ckpt/,$(notdir $(INSTALL_HEADERS)))
	@if [ -d $(INSTALL_ROOT_Q)/include/ckpt ]; then \
		rmdir $(INSTALL_ROOT_Q)/include/ckpt 2>/dev/null || \
		echo "note: "$(INSTALL_ROOT_Q)"/include/ckpt/ kept: it holds files install did not put there"; \
	fi
	$(run_ldconfig)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ---- reliability, fuzzing, valgrind (tests/README.md) -----------------------------------------
# 200 SIGKILL crash trials, readers under retention and map growth, corruption, full disk
test-reliability: deps all $(TOOL_BINS)
	@tests/reliability/run.sh

# libFuzzer harnesses (clang, ASan+UBSan), FUZZ_SECONDS each
FUZZ_SECONDS ?= 60
fuzz:
	@scripts/deps.sh extra
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh

# memcheck: a short ckpt-train run, the ckpt commands, a ckptfs mount-read-unmount cycle
test-valgrind: all
	@scripts/deps.sh extra
	@tests/valgrind/run.sh

# build/gpu-bundle.tar.xz: programs, CUDA plug-in and libraries for a GPU machine (tests/gpu/README.md)
gpu-bundle: deps
	@PKGS="$(PKGS)" MODULE_SRC="$(MODULE_SRC)" tests/gpu/bundle.sh
