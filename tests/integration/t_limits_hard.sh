# A limit above the hard limit agentd runs under, without CAP_SYS_RESOURCE
# to raise it: the agent is refused at its first start with the numbers and
# what to change (fatal, since waiting cannot fix it), instead of every start
# failing in the child with "setrlimit: Operation not permitted" until the
# crash budget made it fatal.  A limit under the hard one starts as usual.
# Needs root, to drop CAP_SYS_RESOURCE from a process that had it.
. ./lib.sh
[ "$(id -u)" = 0 ] || skip "needs root to run agentd without CAP_SYS_RESOURCE"
command -v setpriv >/dev/null || skip "no setpriv (util-linux)"

{ header; cat <<'YAML'
  over:
    task_config: {tool: system_info}
    limits: {open_files: 4096}
  under:
    task_config: {tool: system_info}
    limits: {open_files: 512}
YAML
} | write_config
AGENTD_WRAP="prlimit --nofile=1024:1024 -- setpriv --bounding-set -sys_resource --" start_agentd
wait_until 10 state_is over fatal || fail "over: $(field over state)"
err=$(field over last_error)
case $err in
*"limits.open_files (4096) is above the hard limit agentd runs under (1024)"*"CAP_SYS_RESOURCE"*) ;;
*) fail "the reason: $err" ;;
esac
[ "$(field over restart_count)" = 0 ] || fail "it was started and crashed instead: $(field over restart_count) restarts"
wait_until 10 state_is under idle || fail "under: $(field under state) $(field under last_error)"
exit 0
