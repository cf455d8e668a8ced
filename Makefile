# Posthorn build. `make` builds bin/posthorn-api, bin/posthorn-worker, bin/posthorn.
# `make SANITIZE=1` builds with ASan + UBSan (objects in build/san so the two never mix).
# `make run` / `make test` are the two commands of the README; both bootstrap first.

CC      ?= cc
PKGS    := libmicrohttpd jansson libpq openssl hiredis libcares libcurl libidn2
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
           -Wno-unused-parameter
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c17 -D_GNU_SOURCE $(WARN) -I. -pthread -MMD -MP
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
CFLAGS  += -DPOSTHORN_VERSION='"$(VERSION)"'

ifeq ($(SANITIZE),1)
  BUILD   := build/san
  CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
else
  BUILD   := build/rel
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS  += $(PKG_CFLAGS)
LDLIBS  += $(PKG_LIBS) -lm

LIB_SRC    := $(wildcard lib/*.c)
DB_SRC     := $(wildcard db/*.c)
SMTP_SRC   := $(wildcard smtp/*.c)
NET_SRC    := $(wildcard net/*.c)
API_SRC    := $(filter-out api/main.c,$(wildcard api/*.c))
WORKER_SRC := $(filter-out worker/main.c,$(wildcard worker/*.c))
CORE_SRC   := $(LIB_SRC) $(DB_SRC) $(SMTP_SRC) $(NET_SRC) $(BUILD)/gen/embedded.c

obj = $(patsubst %.c,$(BUILD)/%.o,$(patsubst $(BUILD)/%,%,$(1)))

CORE_OBJ   := $(call obj,$(CORE_SRC))
API_OBJ    := $(call obj,$(API_SRC))
WORKER_OBJ := $(call obj,$(WORKER_SRC))

.DEFAULT_GOAL := all
BINS := bin/posthorn-api bin/posthorn-worker bin/posthorn
# bin/ holds one build mode at a time: switching SANITIZE relinks it.
MODE_STAMP := build/.mode-$(if $(filter 1,$(SANITIZE)),san,rel)
$(MODE_STAMP):
	@mkdir -p build && rm -f build/.mode-* && touch $@

.SECONDARY:
.PHONY: all run test unit valgrind bench fuzz clean
all: $(BINS)

bin/posthorn-api: $(BUILD)/api/main.o $(API_OBJ) $(CORE_OBJ) $(MODE_STAMP) | bin
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LDLIBS)
bin/posthorn-worker: $(BUILD)/worker/main.o $(WORKER_OBJ) $(CORE_OBJ) $(MODE_STAMP) | bin
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LDLIBS)
bin/posthorn: $(BUILD)/cli/main.o $(CORE_OBJ) $(MODE_STAMP) | bin
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LDLIBS)

bin:
	mkdir -p bin

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<
$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	$(CC) $(CFLAGS) -c -o $@ $<

# Migrations, the OpenAPI document and the shipped etc/*.conf are compiled into the binaries.
EMBED := $(sort $(wildcard migrations/*.sql)) openapi.yaml $(sort $(wildcard etc/*.conf))
$(BUILD)/gen/embedded.c: $(EMBED) tools/embed.sh
	@mkdir -p $(dir $@)
	sh tools/embed.sh $(EMBED) > $@.tmp && mv $@.tmp $@

# Unit tests (cmocka): one binary per tests/unit/test_*.c, linked with the core.
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
UNIT_TOOLS := $(BUILD)/tests/mimetool $(BUILD)/tests/dkimtool $(BUILD)/tests/sealtool $(BUILD)/tests/mxtool
$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(API_OBJ) $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka
unit: $(UNIT_BINS) $(UNIT_TOOLS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# worker/bqueue.c is not in the core: its test links it itself (explicit rules win).
$(BUILD)/tests/test_bqueue: $(BUILD)/tests/unit/test_bqueue.o $(BUILD)/worker/bqueue.o $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# Test tools: other tests/unit/*.c with a main, built by `make unit` but not run by it
# (the e2e oracles call them). An explicit rule, so the test_% pattern above never applies.
$(BUILD)/tests/mimetool: $(BUILD)/tests/unit/mimetool.o $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/tests/mxtool: $(BUILD)/tests/unit/mxtool.o $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/tests/dkimtool: $(BUILD)/tests/unit/dkimtool.o $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/tests/sealtool: $(BUILD)/tests/unit/sealtool.o $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The `render` bench scenario's driver (bench/render_bench.c): bench/run builds it on demand.
$(BUILD)/bench/render_bench: $(BUILD)/bench/render_bench.o $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Fuzzing (libFuzzer, clang): one binary per tests/fuzz/fuzz_*.c in build/fuzz/, linked with
# the core and api/ objects (minus main.c) rebuilt there by clang with ASan + UBSan. `make
# fuzz` runs each for FUZZ_SECONDS from its seeds in tests/fuzz/corpus/<name>/ and fails on
# a crash. (All objects are linked because http_pct_decode lives in api/server.c.)
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 5
FUZZ_DIR     := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
# -Werror is left to the gcc builds; clang also flags vsnprintf(fmt) inside printf-like
# functions, which gcc's format attribute already checks.
FUZZ_CFLAGS  := -O1 -g -fno-omit-frame-pointer -std=c17 -D_GNU_SOURCE $(filter-out -Werror,$(WARN)) \
                -Wno-format-nonliteral -I. -pthread -MMD -MP -DPOSTHORN_VERSION='"fuzz"' $(PKG_CFLAGS) \
                -fsanitize=fuzzer-no-link $(FUZZ_SAN)
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS    := $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/%,$(FUZZ_SRC))
FUZZ_OBJ     := $(patsubst %.c,$(FUZZ_DIR)/%.o,$(LIB_SRC) $(DB_SRC) $(SMTP_SRC) $(NET_SRC) $(API_SRC)) \
                $(FUZZ_DIR)/gen/embedded.o
$(FUZZ_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<
$(FUZZ_DIR)/gen/embedded.o: $(BUILD)/gen/embedded.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<
$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/tests/fuzz/fuzz_%.o $(FUZZ_OBJ)
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ $(PKG_LIBS) -lm
.SECONDARY: $(FUZZ_OBJ) $(patsubst %,$(FUZZ_DIR)/%.o,$(basename $(FUZZ_SRC)))
fuzz: $(FUZZ_BINS)
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run $(FUZZ_BINS)

run:
	scripts/bootstrap
	$(MAKE) all
	scripts/run

test:
	scripts/bootstrap
	$(MAKE) all
	scripts/test

valgrind:
	scripts/bootstrap
	$(MAKE) all SANITIZE=0
	POSTHORN_VALGRIND=1 scripts/test

bench:
	scripts/bootstrap
	$(MAKE) all
	bench/run $(SCENARIO)

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
