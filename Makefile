# vaed — build, run, test.  `make run` and `make test` are the only commands a fresh
# Debian machine needs: both install missing packages first (target deps).
#
#   make                      build ./vaed
#   make run                  serve on 127.0.0.1:8080 with ./vaed.db
#   make test                 the whole suite (unit + end-to-end)
#   make SANITIZER=address,undefined test    same under ASan+UBSan (build/address,undefined/)
#   make SANITIZER=thread test               same under TSan
#   make bench                scripts/bench-train

CC       ?= cc
SANITIZER ?=
PKGS     := jansson libmicrohttpd sqlite3 libpq zlib libxsmm openblas libpng gnutls

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
ifneq ($(CI),)
WARN     += -Werror
endif
ifneq ($(WERROR),)
WARN     += -Werror
endif

# -fno-trapping-math: vaed never reads the floating-point exception flags, and without it
# gcc vectorises no loop with a comparison in it (the likelihood's, vae/model.c). It
# changes no result: each unit's operations are the same, vectorised or not.
OPT      ?= -O2 -march=native -fno-math-errno -fno-trapping-math -ftree-vectorize
CFLAGS   := -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) -MMD -MP -I. \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

ifeq ($(SANITIZER),)
B        := build/plain
VAED     := ./vaed
else
B        := build/$(SANITIZER)
VAED     := $(B)/vaed
CFLAGS   += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=$(SANITIZER)
endif

LIB_SRC  := $(wildcard vae/*.c store/*.c api/*.c) $(filter-out daemon/main.c,$(wildcard daemon/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
TEST_SRC := $(wildcard tests/unit/test_*.c)
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(B)/tests/%) $(B)/tests/test_metric_extra

.PHONY: all deps run test unit e2e bench clean fuzz fuzz-smoke fuzz-build
.SECONDARY:
all: $(VAED)

deps:
	@sh scripts/deps.sh

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# api/openapi.c pulls api/openapi.json in with .incbin, which -MMD does not see.
$(B)/api/openapi.o: api/openapi.json
# api/web.c pulls the dashboard page, web/*, in the same way.
$(B)/api/web.o: $(wildcard web/*)

$(B)/libvaed.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(VAED): $(B)/daemon/main.o $(B)/libvaed.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/%: $(B)/tests/unit/%.o $(B)/libvaed.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The allocation-failure tests count and fail vaed's own allocations: they alone are
# linked with malloc and friends (and the xmalloc family, to exempt it) wrapped; the
# pattern gives every test_alloc_fail_* program the rule too.
# libxsmm.a wraps malloc itself, which collides with that: these programs link a
# library whose kernels.o is built without libxsmm (the multiplies on OpenBLAS alone).
$(B)/tests/test_alloc_fail $(B)/tests/test_alloc_fail_%: LDFLAGS += -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc \
    -Wl,--wrap=strdup,--wrap=xmalloc,--wrap=xcalloc,--wrap=xstrdup
$(B)/noxsmm/vae/kernels.o: vae/kernels.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DVAED_NO_LIBXSMM -c $< -o $@
$(B)/noxsmm/libvaed.a: $(filter-out $(B)/vae/kernels.o,$(LIB_OBJ)) $(B)/noxsmm/vae/kernels.o
	@rm -f $@
	ar rcs $@ $^
$(B)/tests/test_alloc_fail: $(B)/tests/unit/test_alloc_fail.o $(B)/noxsmm/libvaed.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(B)/tests/test_alloc_fail_%: $(B)/tests/unit/test_alloc_fail_%.o $(B)/noxsmm/libvaed.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Adding a metric field is one line of vae/metric_fields.h: test_metric_extra proves it.
# The whole library is built again with one more field (below), and the same test as
# test_metric_fields runs against it, on a database created without that column too.
EXTRA_FIELD := -D'VAE_METRIC_FIELDS_EXTRA(X)=X(EXTRA_TEST, extra_test, "1", VAE_MF_TESTONLY, "a field only the test build has")'
$(B)/extra/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EXTRA_FIELD) -c $< -o $@
$(B)/extra/libvaed.a: $(LIB_SRC:%.c=$(B)/extra/%.o)
	@rm -f $@
	ar rcs $@ $^
$(B)/extra/api/openapi.o: api/openapi.json
$(B)/extra/api/web.o: $(wildcard web/*)
$(B)/tests/test_metric_extra: $(B)/extra/tests/unit/test_metric_fields.o $(B)/extra/libvaed.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

run: deps
	@$(MAKE) --no-print-directory all
	$(VAED) serve

test: deps
	@$(MAKE) --no-print-directory $(VAED) $(TEST_BIN)
	@VAED=$(VAED) B=$(B) SANITIZER=$(SANITIZER) sh tests/run.sh

unit: $(TEST_BIN)
	@VAED=$(VAED) B=$(B) SANITIZER=$(SANITIZER) ONLY=unit sh tests/run.sh

bench: deps
	@$(MAKE) --no-print-directory all
	sh scripts/bench-train

# ---- fuzzing (libFuzzer): `make fuzz` (FUZZ_SECONDS each, default 60), `make fuzz-smoke`
# (10 s each). Everything is built with clang into build/fuzz/ (never mixed with the gcc
# objects), then each target first replays its committed regression inputs
# (tests/fuzz/regress/<t>/) and then fuzzes from tests/fuzz/corpus/<t>/; new inputs go
# to build/fuzz/corpus/<t>/ and crashes to build/fuzz/crash/<t>/. One target at a time.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_B       := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 $(WARN) -MMD -MP -I. \
                $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_TARGETS := spec sched idx npy csv text ckpt http
FUZZ_BIN     := $(FUZZ_TARGETS:%=$(FUZZ_B)/fuzz_%)

$(FUZZ_B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@
$(FUZZ_B)/obj/api/openapi.o: api/openapi.json
$(FUZZ_B)/obj/api/web.o: $(wildcard web/*)
$(FUZZ_B)/libvaed.a: $(LIB_SRC:%.c=$(FUZZ_B)/obj/%.o)
	@rm -f $@
	ar rcs $@ $^
$(FUZZ_B)/fuzz_%: $(FUZZ_B)/obj/tests/fuzz/fuzz_%.o $(FUZZ_B)/libvaed.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

fuzz-build: deps
	@$(MAKE) --no-print-directory $(FUZZ_BIN)

fuzz: fuzz-build
	@FUZZ_B=$(FUZZ_B) FUZZ_SECONDS=$(FUZZ_SECONDS) sh tests/fuzz/run.sh $(FUZZ_TARGETS)

fuzz-smoke: fuzz-build
	@FUZZ_B=$(FUZZ_B) FUZZ_SECONDS=10 sh tests/fuzz/run.sh $(FUZZ_TARGETS)

clean:
	rm -rf build vaed

-include $(shell find build -name '*.d' 2>/dev/null)
