# Helpers for the integration tests: each test file sources this, runs in
# its own temp dir, and everything it starts is killed on exit.
set -u

B=${AGENTD_BUILD:?AGENTD_BUILD must name the build directory}
T=$(mktemp -d /tmp/agentd-it.XXXXXX)
SOCK=$T/state/agentd.sock
AGENTD_PID=
export AGENTD_SOCKET=$SOCK

# at_exit 'CMD': run CMD at exit, before the rest of cleanup (CMD's own
# status never replaces the test's).
AT_EXIT=
at_exit() { AT_EXIT="$AT_EXIT $1;"; }

cleanup() {
	local rc=$?
	eval "$AT_EXIT" >/dev/null 2>&1
	if [ -n "$AGENTD_PID" ] && kill -0 "$AGENTD_PID" 2>/dev/null; then
		kill -TERM "$AGENTD_PID" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$AGENTD_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$AGENTD_PID" 2>/dev/null
	fi
	# Anything still running from this test's directory goes too.
	pkill -KILL -f "$T" 2>/dev/null
	for p in $(pgrep -f agentd-worker 2>/dev/null); do
		case "$(readlink "/proc/$p/cwd" 2>/dev/null)" in
		"$T"/*) kill -KILL "$p" 2>/dev/null ;;
		esac
	done
	# A sanitizer report from agentd or any worker (their stderr is in
	# agentd's log, or in whatever file a test sent a program's output to),
	# or a bug agentd caught in itself (a state change its table lacks),
	# fails the test even when everything else passed.
	local san="ERROR: (Address|Leak)Sanitizer|runtime error:|: bug: "
	if grep -rIqE "$san" "$T" 2>/dev/null; then
		echo "FAIL: sanitizer report or bug line:" >&2
		grep -rIhE -A12 "$san" "$T" | head -40 >&2
		rc=1
	fi
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; [ -f "$T/agentd.log" ] && tail -n 30 "$T/agentd.log" >&2; exit 1; }
note() { echo "  - $*"; }
# skip WHY: this test cannot run on this machine; the runner shows it as
# skipped (exit 77), never as passed.
skip() { echo "SKIP: $*"; exit 77; }

# wait_until SECONDS CMD...: poll CMD every 20 ms until it succeeds.
wait_until() {
	local limit=$1; shift
	local end=$(( $(date +%s%N) / 1000000 + limit * 1000 ))
	while [ $(( $(date +%s%N) / 1000000 )) -lt $end ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.02
	done
	return 1
}

ctl() { "$B/agentctl" -s "$SOCK" "$@"; }

# jget EXPR: evaluate a Python expression over the JSON on stdin (as d).
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin); r=eval(sys.argv[1]); print(json.dumps(r) if isinstance(r,(dict,list,bool)) or r is None else r)' "$1"; }

field() { ctl --json status "$1" | jget "d['$2']"; }
events_json() { ctl --json events -n 10000 "$@"; }
count_events() { events_json "$1" | jget "len([e for e in d if e['type']=='$2'])"; }

write_config() { cat > "$T/agents.yaml"; }

# start_agentd [ARG...]: agentd on $T/agents.yaml, run through $AGENTD_WRAP
# when a test sets it (a command that execs the rest, e.g. setpriv).
start_agentd() {
	${AGENTD_WRAP:-} "$B/agentd" -c "$T/agents.yaml" "$@" > "$T/agentd.log" 2>&1 &
	AGENTD_PID=$!
	wait_until 10 test -S "$SOCK" || fail "agentd did not create its socket"
	wait_until 10 ctl status || fail "agentd does not answer"
}

# all_idle: every agent's worker is up and idle.
all_idle() { ctl --json status | jget "all(a['state']=='idle' for a in d['agents'])" | grep -qx true; }

state_is() { [ "$(field "$1" state)" = "$2" ]; }
# gone PID: no such process, or a zombie (dead, not yet reaped).
gone() { local st; st=$(ps -o stat= -p "$1"); [ -z "$st" ] || [ "${st#Z}" != "$st" ]; }

stop_agentd() {
	kill -TERM "$AGENTD_PID"
	local rc=0
	wait "$AGENTD_PID" || rc=$?
	AGENTD_PID=
	return $rc
}

# A config header every test shares: state in the temp dir, short timeouts.
header() {
	cat <<YAML
agentd:
  state_dir: $T/state
  log_level: debug
  stop_grace: 1s
  ack_timeout: 5s
background_agents:
YAML
}

# ticker_config DIR [LINE...]: a config of one agent, ticker, running
# new_files on DIR every 100 ms; each LINE is added under agentd: (the
# store under test).
ticker_config() {
	local dir=$1 line; shift
	{ header; cat <<YAML
  ticker:
    task_config: {tool: new_files, directories: ["$dir"]}
    interval: 100ms
YAML
	} | write_config
	for line in "$@"; do
		sed -i "s|^agentd:|agentd:\n  $line|" "$T/agents.yaml"
	done
}

# kill_agentd: SIGKILL, no chance to flush or ship anything.
kill_agentd() { kill -9 "$AGENTD_PID"; wait "$AGENTD_PID" 2>/dev/null; AGENTD_PID=; }

# start_fakemodel: the loopback model server (tests/fakemodel.py) on
# $T/script.json, logging requests to $T/requests.log; sets PORT.
start_fakemodel() {
	python3 ../fakemodel.py --script "$T/script.json" --log "$T/requests.log" > "$T/fake.out" 2>&1 &
	FAKE=$!
	at_exit 'kill $FAKE'
	wait_until 5 grep -q PORT "$T/fake.out" || fail "the fake model server did not start"
	PORT=$(awk '/PORT/ {print $2}' "$T/fake.out")
}

# start_qdrant [ARG...]: the Qdrant stand-in (tests/qdrantstub.py; no Qdrant
# server can be installed here) on $QPORT (a free one the first time, the
# same one again), its collections kept in $T/qdrant.state, its requests
# in $T/qdrant.log, its faults read from $T/qdrant.faults; qdrant_kill; Q
# METHOD PATH [BODY] asks it as a client would (prints the answer).
start_qdrant() {
	QPORT=${QPORT:-$(free_port)}
	python3 ../qdrantstub.py --port "$QPORT" --log "$T/qdrant.log" --state "$T/qdrant.state" \
		--faults "$T/qdrant.faults" "$@" > "$T/qdrant.out" 2>&1 &
	QDRANT_PID=$!
	at_exit 'kill $QDRANT_PID'
	wait_until 10 grep -q PORT "$T/qdrant.out" || fail "the Qdrant stand-in did not start: $(cat "$T/qdrant.out")"
}
qdrant_kill() { kill -9 "$QDRANT_PID"; wait "$QDRANT_PID" 2>/dev/null; QDRANT_PID=; }
Q() { curl -s --max-time 30 -X "$1" -H "api-key: ${QKEY:-}" -H 'Content-Type: application/json' \
	${3:+--data "$3"} "http://127.0.0.1:$QPORT$2"; }

# free_port: a free TCP port on the loopback.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# use_mcp_servers: the npm MCP servers scripts/bootstrap put in the cache
# ($NPM, $M their @modelcontextprotocol dir), and the Node.js it put there
# first on PATH (agentd's workers inherit it), whatever node the machine has.
use_mcp_servers() {
	NPM=${AGENTD_NPM_CACHE:-$HOME/.cache/agentd/npm}
	M=$NPM/node_modules/@modelcontextprotocol
	export PATH=$NPM/bin:$PATH
	[ -f "$M/server-everything/dist/index.js" ] || fail "the MCP test servers are missing: run scripts/bootstrap"
	node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a == 20 && b >= 18) ? 0 : 1)' ||
		fail "$(command -v node) is $(node --version 2>&1); the MCP test servers need 20.18 or later: run scripts/bootstrap"
	note "node $(node --version) from $(command -v node)"
}

# use_redis: a real redis-server for this test on a free loopback port
# ($PORT), append-only and fsync'ed so a kill -9 loses nothing Redis
# acknowledged; redis_start / redis_kill, and R for redis-cli.
use_redis() {
	command -v redis-server >/dev/null || fail "redis-server missing (scripts/bootstrap installs it)"
	PORT=$(free_port)
	REDIS_PID=
	at_exit 'redis_kill'
}
redis_start() { # [ARG...]: more redis-server options (--requirepass PW)
	redis-server --port "$PORT" --bind 127.0.0.1 --dir "$T" --save "" \
		--appendonly yes --appendfsync always "$@" > "$T/redis.log" 2>&1 &
	REDIS_PID=$!
	wait_until 5 redis-cli -p "$PORT" ping || fail "redis did not start"
}
redis_kill() { kill -9 "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null; REDIS_PID=; }
R() { redis-cli -p "$PORT" "$@"; }
# outbox FIELD: the relay's outbox status (pending, dropped, memory_pending...);
# outbox_is FIELD TEST N, for wait_until: e.g. outbox_is pending -eq 0.
outbox() { ctl --json status | jget "d['outbox']['$1']"; }
outbox_is() { local v; v=$(outbox "$1") && [ "$v" "$2" "$3" ]; }
# stream_entries KEY: the stream's entries, oldest first, as a JSON list of
# field objects.
stream_entries() {
	R --json XRANGE "$1" - + |
		python3 -c 'import json,sys; print(json.dumps([dict(zip(f[::2], f[1::2])) for _, f in json.load(sys.stdin)]))'
}

# The HTTP API over its default listener, unix:$T/state/http.sock, with
# curl: hcode [CURL ARGS...] PATH prints the status and keeps the body for
# hbody (e.g. [ "$(hcode -X POST /v1/reload)" = 200 ]; hbody | jget ...).
HTTP_SOCK=$T/state/http.sock
hcode() { local path=${!#}; curl -s -o "$T/http.body" -w '%{http_code}' --max-time 30 \
	--unix-socket "$HTTP_SOCK" "${@:1:$#-1}" "http://agentd$path"; }
hbody() { cat "$T/http.body"; }

# use_pg: a real PostgreSQL for this test (Debian's: initdb into $T/pg, run
# as the postgres user when we are root, on a free loopback port $PGPORT,
# trust auth); pg_start / pg_kill.  Returns 1 where there is no server, for
# the test to skip what needs it.
use_pg() {
	PG_BIN=$(dirname "$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | tail -1)")
	[ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/postgres" ] || return 1
	PGPORT=$(free_port)
	PG_PID=
	chmod 755 "$T"
	mkdir -p "$T/pg" "$T/pgsock"
	[ "$(id -u)" = 0 ] && chown postgres "$T/pg" "$T/pgsock"
	as_pg "$PG_BIN/initdb" -D "$T/pg" -U postgres --auth=trust > "$T/initdb.log" 2>&1 || fail "initdb: $(tail -3 "$T/initdb.log")"
	at_exit 'pg_kill'
}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_start() {
	as_pg "$PG_BIN/postgres" -D "$T/pg" -p "$PGPORT" -k "$T/pgsock" -c listen_addresses=127.0.0.1 \
		-c fsync=off >> "$T/pg.log" 2>&1 &
	PG_PID=$!
	wait_until 15 psql "postgresql://postgres@127.0.0.1:$PGPORT/postgres" -tAq -c "select 1" \
		|| fail "postgres did not start: $(tail -3 "$T/pg.log")"
}
# An immediate shutdown: no checkpoint, connections cut -- a crash, as
# far as agentd can tell, that leaves no lock files behind.
pg_kill() { as_pg "$PG_BIN/pg_ctl" -D "$T/pg" stop -m immediate > /dev/null 2>&1; wait "$PG_PID" 2>/dev/null; PG_PID=; }

# use_chroma: the real Chroma server scripts/bootstrap put in the npm cache
# (chromadb's `chroma run`, on the cache's Node.js) for this test, on a free
# loopback port $CPORT with its data in $T/chroma; chroma_start /
# chroma_kill, and CH for curl on its API (CH PATH [CURL ARGS...]).
use_chroma() {
	NPM=${AGENTD_NPM_CACHE:-$HOME/.cache/agentd/npm}
	CHROMA=$NPM/chroma/node_modules/.bin/chroma
	[ -x "$CHROMA" ] || fail "the Chroma server is missing: run scripts/bootstrap"
	export PATH=$NPM/bin:$PATH
	CPORT=$(free_port)
	CHROMA_PID=
	at_exit 'chroma_kill'
}
chroma_start() {
	"$CHROMA" run --path "$T/chroma" --host 127.0.0.1 --port "$CPORT" >> "$T/chroma.log" 2>&1 &
	CHROMA_PID=$!
	wait_until 60 curl -sf "http://127.0.0.1:$CPORT/api/v2/heartbeat" || fail "chroma did not start: $(tail -3 "$T/chroma.log")"
}
chroma_kill() { [ -n "$CHROMA_PID" ] && kill -9 "$CHROMA_PID"; wait "$CHROMA_PID" 2>/dev/null; CHROMA_PID=; }
CH() { local p=$1; shift; curl -s --max-time 30 -H 'Content-Type: application/json' "$@" "http://127.0.0.1:$CPORT/api/v2$p"; }
