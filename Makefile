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
API_SRC    := $(filter-out api/main.c,$(wildcard api/*.c))
WORKER_SRC := $(filter-out worker/main.c,$(wildcard worker/*.c))
CORE_SRC   := $(LIB_SRC) $(DB_SRC) $(SMTP_SRC) $(BUILD)/gen/embedded.c

obj = $(patsubst %.c,$(BUILD)/%.o,$(patsubst $(BUILD)/%,%,$(1)))

CORE_OBJ   := $(call obj,$(CORE_SRC))
API_OBJ    := $(call obj,$(API_SRC))
WORKER_OBJ := $(call obj,$(WORKER_SRC))

BINS := bin/posthorn-api bin/posthorn-worker bin/posthorn

.PHONY: all run test unit valgrind bench fuzz clean
all: $(BINS)

bin/posthorn-api: $(BUILD)/api/main.o $(API_OBJ) $(CORE_OBJ) | bin
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
bin/posthorn-worker: $(BUILD)/worker/main.o $(WORKER_OBJ) $(CORE_OBJ) | bin
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
bin/posthorn: $(BUILD)/cli/main.o $(CORE_OBJ) | bin
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bin:
	mkdir -p bin

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<
$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	$(CC) $(CFLAGS) -c -o $@ $<

# Migrations and the OpenAPI document are compiled into the binaries.
EMBED := $(sort $(wildcard migrations/*.sql)) openapi.yaml
$(BUILD)/gen/embedded.c: $(EMBED) tools/embed.sh
	@mkdir -p $(dir $@)
	sh tools/embed.sh $(EMBED) > $@.tmp && mv $@.tmp $@

# Unit tests (cmocka): one binary per tests/unit/test_*.c, linked with the core.
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(API_OBJ) $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka
unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

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
