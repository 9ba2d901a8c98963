# Command tools' inputSchema is enforced, every keyword of it: a pattern
# stops a path traversal before /bin/cat runs, maxLength counts characters,
# enum, minimum/maximum and items hold; what passes runs.  (A keyword the
# worker does not enforce is refused at load: t_config.)
. ./lib.sh

mkdir -p "$T/files"
echo "the notes" > "$T/files/notes"
agent() { # name tool args...
	local name=$1 tool=$2; shift 2
	echo "  $name:"
	if [ "$name" = trav ]; then
		cat <<YAML
    local_tools: &tools
      - name: show
        command: [/bin/cat, "--", "{name}"]
        cwd: $T/files
        inputSchema:
          type: object
          properties: {name: {type: string, pattern: "^[a-z]+\$", maxLength: 12}}
          required: [name]
          additionalProperties: false
      - name: pick
        command: [/bin/echo, "{color}"]
        inputSchema: {properties: {color: {enum: [red, green]}}, required: [color]}
      - name: count
        command: [/bin/echo, "{n}"]
        inputSchema: {properties: {n: {type: integer, minimum: 1, maximum: 5}}}
      - name: list
        command: [/bin/echo, listed]
        inputSchema: {properties: {dirs: {type: array, items: {type: string, pattern: "^/srv/"}}}}
YAML
	else
		echo "    local_tools: *tools"
	fi
	echo "    task_config: {tool: $tool, $*}"
	echo "    max_retries: 0"
}
{ header
  agent trav show 'name: "../../../../etc/passwd"'
  agent good show 'name: notes'
  agent long show 'name: abcdefghijklmnop'
  agent nl show 'name: "notes\n../../../../etc/passwd"'
  agent badpick pick 'color: blue'
  agent goodpick pick 'color: red'
  agent big count 'n: 9'
  agent small count 'n: 3'
  agent baddirs list 'dirs: [/srv/a, /etc]'
  agent gooddirs list 'dirs: [/srv/a, /srv/b]'
} | write_config
start_agentd
wait_until 10 all_idle || fail "workers not idle"

ALL="trav good long nl badpick goodpick big small baddirs gooddirs"
for a in $ALL; do ctl run $a >/dev/null || fail "run $a"; done
finished() { events_json "$1" | jget "any(e['type'] in ('background_task_completed', 'background_task_error') for e in d)" | grep -qx true; }
for a in $ALL; do wait_until 20 finished $a || fail "$a did not finish"; done
refused() { # agent expected-error
	local e
	e=$(events_json "$1" | jget "[e['payload']['error'] for e in d if e['type']=='background_task_error']")
	echo "$e" | grep -qF -- "$2" || fail "$1: expected '$2', got: $e"
	[ "$(count_events "$1" tool_call_result)" = 0 ] || fail "$1: the command ran"
}
output() { events_json "$1" | jget "[e['payload']['result']['output'] for e in d if e['type']=='background_task_completed'][0]"; }

refused trav 'argument \"name\" does not match the pattern ^[a-z]+$'
refused nl 'argument \"name\" does not match the pattern ^[a-z]+$'
refused long 'argument \"name\" is longer than 12 characters'
refused badpick 'argument \"color\" is not one of the allowed values'
refused big 'argument \"n\" must be at most 5'
refused baddirs 'argument \"dirs[1]\" does not match the pattern ^/srv/'
[ "$(output good)" = "the notes" ] || fail "good: $(output good)"
[ "$(output goodpick)" = red ] || fail "goodpick: $(output goodpick)"
[ "$(output small)" = 3 ] || fail "small: $(output small)"
[ "$(output gooddirs)" = listed ] || fail "gooddirs: $(output gooddirs)"
events_json > "$T/all.json"
grep -q "root:" "$T/all.json" && fail "/etc/passwd was read"
exit 0
