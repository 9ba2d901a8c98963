# agentd build.
#
#   make            agentd, agentd-worker, agentctl in $(BUILD)/
#   make test       unit (Check) + integration tests, then again under ASan+UBSan
#   make check      the same tests, once, in $(BUILD) (SAN=1 for sanitizers)
#   make bench      benchmarks against supervisord and runit, the relay, memory recall
#                   (scripts/bench)
#   make fuzz       build and run the fuzzers (libFuzzer): frames/messages, MCP input,
#                   the config loader, the HTTP API's routes, parameters and bodies
#   make install    PREFIX=/usr/local DESTDIR=
#
# Sources are found by wildcard: common/ proto/ conf/ make libagentd.a;
# supervisor/*.c and supervisor/memory/*.c (but main.c, agentctl.c) make libsup.a; worker/*.c (but
# main.c) make libworker.a.  tests/unit/test_NAME.c is one Check binary,
# linked with libagentd.a, plus libsup.a when NAME starts with sup_, plus
# libworker.a when NAME starts with worker_.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec/agentd
SYSCONFDIR ?= /etc
BUILD ?= build
CC ?= cc
VERSION := 0.1.0

PKGS := libcurl msgpack yaml-0.1 jansson sqlite3 hiredis libpq libmicrohttpd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS := $(shell pkg-config --libs $(PKGS))
BSD_LIBS := $(shell pkg-config --libs libbsd)
CHECK_CFLAGS := $(shell pkg-config --cflags check)
CHECK_LIBS := $(shell pkg-config --libs check)

OPT ?= -O2
SANFLAGS :=
ifeq ($(SAN),1)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT := -O1
endif

CFLAGS ?= $(OPT) -g
ALL_CFLAGS := -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	-D_GNU_SOURCE -DAGENTD_VERSION='"$(VERSION)"' \
	-DAGENTD_LIBEXECDIR='"$(LIBEXECDIR)"' \
	-I. $(PKG_CFLAGS) $(SANFLAGS) $(CFLAGS)
ALL_LDFLAGS := $(SANFLAGS) $(LDFLAGS)

COMMON_SRC := $(wildcard common/*.c)
LIB_SRC := $(COMMON_SRC) $(wildcard proto/*.c conf/*.c)
SUP_SRC := $(filter-out supervisor/main.c supervisor/agentctl.c,$(wildcard supervisor/*.c \
	supervisor/memory/*.c))
WRK_SRC := $(filter-out worker/main.c,$(wildcard worker/*.c))
TEST_SRC := $(wildcard tests/unit/test_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIB_OBJ := $(call obj,$(LIB_SRC))
SUP_OBJ := $(call obj,$(SUP_SRC))
WRK_OBJ := $(call obj,$(WRK_SRC))

LIBAGENTD := $(BUILD)/libagentd.a
LIBSUP := $(BUILD)/libsup.a
LIBWORKER := $(BUILD)/libworker.a
PROGS := $(BUILD)/agentd $(BUILD)/agentd-worker $(BUILD)/agentctl
TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(TEST_SRC))

.PHONY: all check test test-asan unit integration bench fuzz install clean
all: $(PROGS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(LIBAGENTD): $(LIB_OBJ)
	@rm -f $@; ar rcs $@ $^
$(LIBSUP): $(SUP_OBJ)
	@rm -f $@; ar rcs $@ $^ $(if $^,,$(BUILD)/obj/empty.o)
$(LIBWORKER): $(WRK_OBJ)
	@rm -f $@; ar rcs $@ $^

$(BUILD)/agentd: $(call obj,supervisor/main.c) $(LIBSUP) $(LIBAGENTD)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(BSD_LIBS) -lm
$(BUILD)/agentd-worker: $(call obj,worker/main.c) $(LIBWORKER) $(LIBAGENTD)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(BSD_LIBS) -lm
$(BUILD)/agentctl: $(call obj,supervisor/agentctl.c) $(LIBAGENTD)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

test_libs = $(if $(filter test_sup_%,$(1)),$(LIBSUP)) $(if $(filter test_worker_%,$(1)),$(LIBWORKER)) $(LIBAGENTD)

$(BUILD)/tests/%: tests/unit/%.c $(LIBAGENTD) $(LIBSUP) $(LIBWORKER)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) $(ALL_LDFLAGS) -o $@ $< \
		$(call test_libs,$*) $(CHECK_LIBS) $(PKG_LIBS) $(BSD_LIBS) -lm

# The unit suites, then the integration suite against the built programs.
unit: $(TESTS) $(PROGS)
	@fail=0; for t in $(TESTS); do \
		CK_DEFAULT_TIMEOUT=60 $$t || fail=1; \
	done; exit $$fail

integration: $(PROGS)
	AGENTD_BUILD=$(abspath $(BUILD)) tests/integration/run

check: unit integration

test-asan:
	$(MAKE) SAN=1 BUILD=$(BUILD)/asan check

# The README's test command: everything, plain and under sanitizers.
test: check test-asan

bench: all
	scripts/bootstrap --bench
	AGENTD_BUILD=$(abspath $(BUILD)) scripts/bench/run $(BENCH_ARGS)
	AGENTD_BUILD=$(abspath $(BUILD)) scripts/bench/run_overhead $(BENCH_ARGS)
	AGENTD_BUILD=$(abspath $(BUILD)) scripts/bench/run_mcp $(BENCH_ARGS)
	AGENTD_BUILD=$(abspath $(BUILD)) scripts/bench/run_relay $(BENCH_ARGS)
	AGENTD_BUILD=$(abspath $(BUILD)) scripts/bench/run_http $(BENCH_ARGS)
	AGENTD_BUILD=$(abspath $(BUILD)) scripts/bench/run_memory $(BENCH_ARGS)
	AGENTD_BUILD=$(abspath $(BUILD)) scripts/bench/run_qdrant $(BENCH_ARGS)
	AGENTD_BUILD=$(abspath $(BUILD)) scripts/bench/run_dashboard $(BENCH_ARGS)

FUZZ_SECONDS ?= 60
fuzz:
	@mkdir -p $(BUILD)/fuzz
	clang -std=gnu11 -g -O1 -D_GNU_SOURCE -I. $(PKG_CFLAGS) \
		-fsanitize=fuzzer,address,undefined \
		-o $(BUILD)/fuzz/fuzz_frame tests/fuzz/fuzz_frame.c $(COMMON_SRC) \
		proto/frame.c proto/msg.c \
		$(PKG_LIBS) -lm
	clang -std=gnu11 -g -O1 -D_GNU_SOURCE -DAGENTD_VERSION='"fuzz"' -I. $(PKG_CFLAGS) \
		-fsanitize=fuzzer,address,undefined \
		-o $(BUILD)/fuzz/fuzz_mcp tests/fuzz/fuzz_mcp.c worker/mcp_http.c worker/tools.c \
		worker/tool_system_info.c worker/tool_new_files.c worker/tool_read_file.c \
		worker/tool_memory.c $(COMMON_SRC) \
		$(PKG_LIBS) -lm
	clang -std=gnu11 -g -O1 -D_GNU_SOURCE -I. $(PKG_CFLAGS) \
		-fsanitize=fuzzer,address,undefined \
		-o $(BUILD)/fuzz/fuzz_config tests/fuzz/fuzz_config.c $(LIB_SRC) \
		$(PKG_LIBS) -lm
	clang -std=gnu11 -g -O1 -D_GNU_SOURCE -DAGENTD_VERSION='"fuzz"' -I. $(PKG_CFLAGS) \
		-fsanitize=fuzzer,address,undefined \
		-o $(BUILD)/fuzz/fuzz_http tests/fuzz/fuzz_http.c $(LIB_SRC) $(SUP_SRC) \
		$(PKG_LIBS) $(BSD_LIBS) -lm
	@mkdir -p $(BUILD)/fuzz/corpus $(BUILD)/fuzz/corpus_mcp $(BUILD)/fuzz/corpus_config \
		$(BUILD)/fuzz/corpus_http
	$(BUILD)/fuzz/fuzz_frame -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
		-artifact_prefix=$(BUILD)/fuzz/ \
		$(BUILD)/fuzz/corpus tests/fuzz/seeds
	$(BUILD)/fuzz/fuzz_mcp -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
		-artifact_prefix=$(BUILD)/fuzz/ \
		$(BUILD)/fuzz/corpus_mcp tests/fuzz/seeds_mcp
	ASAN_OPTIONS=quarantine_size_mb=32 \
	$(BUILD)/fuzz/fuzz_config -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
		-rss_limit_mb=512 -timeout=10 -dict=tests/fuzz/config.dict \
		-artifact_prefix=$(BUILD)/fuzz/ \
		$(BUILD)/fuzz/corpus_config tests/fuzz/seeds_config
	$(BUILD)/fuzz/fuzz_http -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
		-artifact_prefix=$(BUILD)/fuzz/ \
		$(BUILD)/fuzz/corpus_http tests/fuzz/seeds_http

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(SYSCONFDIR)/agentd
	install -m 0755 $(BUILD)/agentd $(BUILD)/agentctl $(DESTDIR)$(BINDIR)/
	install -m 0755 $(BUILD)/agentd-worker $(DESTDIR)$(LIBEXECDIR)/
	install -m 0644 conf/agents.example.yaml $(DESTDIR)$(SYSCONFDIR)/agentd/agents.example.yaml

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
