#!/usr/bin/env bash
# cli-v2-tests.sh RUNRS ROOTFS
#
# runrs resource control on a cgroup v2-only host, through the CLI. Runs as root inside
# the cgroup2 VM (see run-v2.sh); it would run on any v2 host, and refuses others.
# Prints "ok - NAME" / "not ok - NAME: why" per test; exits 1 if any failed.
#  limits    every controller's limit in the container's cgroup files (host and inside),
#            `runrs update` (flags and -r -) changes them live, state.json keeps them
#  devices   the default policy (BPF filter) refuses open of a mknod'ed non-allowed
#            device with EPERM, allows /dev/null, and an allow rule lifts the refusal
#  pause     cgroup.freeze stops a counter, resume restarts it, status says paused
#  pids      a fork bomb under pids.max=32 stays at 32
#  oom       a memory hog is OOM-killed (exit 137 from `runrs run`), `runrs events`
#            prints the oom event, `events --stats` reports v2 numbers
#  rootless  uid 65534 in a delegated subtree: `spec --rootless` + `run` puts the
#            container beside its own cgroup with pids.max set (runrs, then runc)
#  podman-rootless  Podman 4.3 as the test user runrs-rootless in a delegated subtree:
#            --pids-limit in the container's cgroup, exit code (runrs, then runc)
#  cleanup   delete leaves no cgroup behind (also after SIGKILL and when paused)
set -uo pipefail
RUNRS=${1:?usage: $0 RUNRS ROOTFS}
ROOTFS=${2:?usage: $0 RUNRS ROOTFS}
CG=/sys/fs/cgroup
STATE=/run/runrs-v2
WORK=$(mktemp -d /tmp/runrs-v2.XXXXXX)
PREFIX=runrs-v2
failed=0

rr() { "$RUNRS" --root "$STATE" "$@"; }
note() { echo "# $*"; }
ok() { echo "ok - $1"; }
notok() { echo "not ok - $1: $2"; failed=1; }
# check NAME WANT GOT
check() { [ "$2" = "$3" ] || { echo "  $1: want [$2] got [$3]"; return 1; }; }
wait_for() { # SECS CMD...: until CMD succeeds
  local end=$((SECONDS + $1)); shift
  until "$@"; do [ $SECONDS -lt $end ] || return 1; sleep 0.1; done
}

if ! grep -q ' /sys/fs/cgroup .* - cgroup2 ' /proc/self/mountinfo || grep -q ' - cgroup ' /proc/self/mountinfo; then
  echo "cli-v2-tests: this host is not cgroup v2-only" >&2; exit 2
fi

# spec ID ARGS...: print a bundle dir for `sh -c ARGS` style processes
spec() {
  local id=$1; shift
  local b=$WORK/bundle-$id; mkdir -p "$b" "$WORK/out-$id"
  rm -f "$b/config.json"; (cd "$b" && "$RUNRS" spec)
  jq --arg rootfs "$ROOTFS" --arg cg "/$id" --arg out "$WORK/out-$id" \
     --argjson args "$(printf '%s\n' "$@" | jq -R . | jq -s .)" '
    .process.terminal = false | .process.args = $args | .root.path = $rootfs
    | .linux.cgroupsPath = $cg
    | .mounts += [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=1777"]},
                  {"destination": "/out", "type": "bind", "source": $out, "options": ["rbind", "rw"]}]' \
     "$b/config.json" > "$b/c.json" && mv "$b/c.json" "$b/config.json"
  echo "$b"
}
# edit BUNDLE JQ-FILTER
edit() { jq "$2" "$1/config.json" > "$1/c.json" && mv "$1/c.json" "$1/config.json"; }
val() { grep "^$1=" "$2" 2>/dev/null | head -1 | cut -d= -f2-; }
cleanup() { for d in "$STATE"/*/; do [ -d "$d" ] && rr delete -f "$(basename "$d")" >/dev/null 2>&1; done; }
no_cgroup() { [ ! -e "$CG/$1" ]; }

# --- limits -----------------------------------------------------------------
t_limits() {
  local id=$PREFIX-limits
  local inside='n=0; while :; do n=$((n+1)); { echo n=$n; for f in memory.max memory.swap.max memory.low memory.high cpu.weight cpu.max cpu.max.burst cpuset.cpus pids.max hugetlb.2MB.max; do echo "$f=$(cat /sys/fs/cgroup/$f 2>&1)"; done; } > /out/i.tmp; mv /out/i.tmp /out/inside; sleep 0.2; done'
  local b; b=$(spec $id sh -c "$inside")
  local huge=0; [ -e "$CG/init.scope/hugetlb.2MB.max" ] && huge=1
  edit "$b" '.linux.resources += {
      "memory": {"limit": 67108864, "swap": 100663296, "reservation": 33554432},
      "cpu": {"shares": 1024, "quota": 30000, "period": 100000, "burst": 1000, "cpus": "0"},
      "pids": {"limit": 64},
      "unified": {"memory.high": "50331648"}}'
  [ $huge = 1 ] && edit "$b" '.linux.resources.hugepageLimits = [{"pageSize": "2MB", "limit": 4194304}]'
  rr run -d --bundle "$b" $id </dev/null >/dev/null || { notok limits "create failed"; return; }
  local f=$WORK/out-$id/inside e=0
  wait_for 60 test -s "$f" || { notok limits "the container never wrote its view"; return; }
  sleep 0.5
  for kv in memory.max=67108864 memory.swap.max=33554432 memory.low=33554432 memory.high=50331648 \
            cpu.weight=39 "cpu.max=30000 100000" cpu.max.burst=1000 cpuset.cpus=0 pids.max=64; do
    local k=${kv%%=*} v=${kv#*=}
    check "host $k" "$v" "$(cat $CG/$id/$k)" || e=1
    check "inside $k" "$v" "$(val "$k" "$f")" || e=1
  done
  [ $huge = 1 ] && { check "host hugetlb" 4194304 "$(cat $CG/$id/hugetlb.2MB.max)" || e=1; }
  rr update --memory 128m --memory-swap 192m --cpu-quota 40000 --cpu-share 512 --pids-limit 48 $id || e=1
  local patch='{"unified": {"memory.high": "100663296"}}'
  [ $huge = 1 ] && patch='{"unified": {"memory.high": "100663296"}, "hugepageLimits": [{"pageSize": "2MB", "limit": 8388608}]}'
  echo "$patch" | rr update -r - $id || e=1
  local n; n=$(val n "$f")
  wait_for 60 sh -c "[ \$(grep ^n= $f | cut -d= -f2) -gt $((n + 1)) ]" || e=1
  for kv in memory.max=134217728 memory.swap.max=67108864 memory.high=100663296 \
            cpu.weight=20 "cpu.max=40000 100000" pids.max=48; do
    local k=${kv%%=*} v=${kv#*=}
    check "updated host $k" "$v" "$(cat $CG/$id/$k)" || e=1
    check "updated inside $k" "$v" "$(val "$k" "$f")" || e=1
  done
  [ $huge = 1 ] && { check "updated hugetlb" 8388608 "$(cat $CG/$id/hugetlb.2MB.max)" || e=1; }
  check "state.json memory" 134217728 "$(jq .config.linux.resources.memory.limit $STATE/$id/state.json)" || e=1
  check "state.json period" 100000 "$(jq .config.linux.resources.cpu.period $STATE/$id/state.json)" || e=1
  local err; err=$(rr update --cpu-rt-runtime 1000 $id 2>&1) && e=1
  case $err in *"no realtime bandwidth control"*) ;; *) echo "  rt error: $err"; e=1;; esac
  rr delete -f $id || e=1
  no_cgroup $id || { echo "  cgroup left"; e=1; }
  [ $e = 0 ] && ok limits || notok limits "see above"
}

# --- devices ------------------------------------------------------------------
t_devices() {
  # /dev/loop-control (c 10:237) is not in the default allow list; /dev/null and
  # /dev/net/tun (c 10:200, as runc 1.1 and >= 1.2.4) are. (Not /dev/kmsg: reading it
  # needs CAP_SYSLOG, an EPERM of its own.)
  local script='mknod /tmp/lc c 10 237 && echo mknod=ok; if (exec 3</tmp/lc) 2>/tmp/err; then echo open=ok; else echo "open=$(cat /tmp/err)"; fi; mknod /tmp/null c 1 3 && (exec 3</tmp/null) && echo null=ok; mknod /tmp/tun c 10 200 && if (exec 3</tmp/tun) 2>/tmp/terr; then echo tun=ok; else echo "tun=$(cat /tmp/terr)"; fi'
  local e=0 id b out
  for variant in default allowed; do
    id=$PREFIX-dev-$variant
    b=$(spec $id sh -c "$script")
    edit "$b" '.process.capabilities |= with_entries(if .key == "ambient" then . else .value += ["CAP_MKNOD"] end)'
    [ $variant = allowed ] && edit "$b" '.linux.resources.devices += [{"allow": true, "type": "c", "major": 10, "minor": 237, "access": "rw"}]'
    out=$(rr run --bundle "$b" $id </dev/null 2>&1)
    echo "$out" | sed 's/^/  | /'
    case $variant in
      default) echo "$out" | grep -q '^mknod=ok' && echo "$out" | grep -q '^open=.*Operation not permitted' \
                 && echo "$out" | grep -q '^null=ok' && echo "$out" | grep -q '^tun=' \
                 && ! echo "$out" | grep -q '^tun=.*Operation not permitted' || e=1;;
      # A device may be absent from this kernel (ENODEV): anything but EPERM passed the filter.
      allowed) echo "$out" | grep -q '^open=' && ! echo "$out" | grep -q 'Operation not permitted' || e=1;;
    esac
    no_cgroup $id || { echo "  cgroup left"; e=1; }
  done
  [ $e = 0 ] && ok devices || notok devices "see above"
}

# --- pause / resume -----------------------------------------------------------
t_pause() {
  local id=$PREFIX-pause e=0
  local b; b=$(spec $id sh -c 'i=0; while :; do i=$((i+1)); echo $i > /out/count; sleep 0.01; done')
  rr run -d --bundle "$b" $id </dev/null >/dev/null || { notok pause "create failed"; return; }
  local c=$WORK/out-$id/count
  wait_for 60 sh -c "[ \"\$(cat $c 2>/dev/null)\" -gt 5 ] 2>/dev/null" || e=1
  rr pause $id || e=1
  check status paused "$(rr state $id | jq -r .status)" || e=1
  check cgroup.freeze 1 "$(cat $CG/$id/cgroup.freeze)" || e=1
  local a; a=$(cat $c); sleep 1
  check "frozen counter" "$a" "$(cat $c)" || e=1
  rr resume $id || e=1
  check status running "$(rr state $id | jq -r .status)" || e=1
  wait_for 60 sh -c "[ \"\$(cat $c 2>/dev/null)\" -gt \"${a:-0}\" ] 2>/dev/null" || { echo "  counter did not restart"; e=1; }
  rr pause $id && rr delete -f $id || e=1
  no_cgroup $id || { echo "  cgroup left"; e=1; }
  [ $e = 0 ] && ok pause || notok pause "see above"
}

# --- pids -----------------------------------------------------------------------
t_pids() {
  local id=$PREFIX-pids e=0
  local b; b=$(spec $id sh -c 'f(){ f|f& }; f; sleep 1000')
  edit "$b" '.linux.resources.pids = {"limit": 32} | .linux.resources.cpu = {"quota": 20000, "period": 100000}'
  rr run -d --bundle "$b" $id </dev/null >/dev/null 2>&1 || { notok pids "create failed"; return; }
  # The bomb has hit the limit once the kernel refuses a fork (pids.events "max").
  wait_for 120 sh -c "[ \$(awk '\$1 == \"max\" {print \$2}' $CG/$id/pids.events) -gt 0 ]" \
    || { echo "  no fork refused: $(cat $CG/$id/pids.events)"; e=1; }
  local n
  for _ in $(seq 20); do
    n=$(cat $CG/$id/pids.current)
    [ "$n" -le 32 ] && [ "$n" -ge 16 ] || { echo "  pids.current $n"; e=1; }
  done
  rr delete -f $id || e=1
  no_cgroup $id || { echo "  cgroup left"; e=1; }
  [ $e = 0 ] && ok pids || notok pids "see above"
}

# --- oom, events ---------------------------------------------------------------
t_oom() {
  local e=0 id=$PREFIX-oom
  local b; b=$(spec $id dd if=/dev/zero of=/dev/null bs=64M count=1)
  edit "$b" '.linux.resources.memory = {"limit": 33554432, "swap": 33554432}'
  rr run --bundle "$b" $id </dev/null >/dev/null 2>&1
  check "exit status" 137 $? || e=1
  no_cgroup $id || { echo "  cgroup left"; e=1; }
  id=$PREFIX-oomev
  b=$(spec $id dd if=/dev/zero of=/dev/null bs=64M count=1)
  edit "$b" '.linux.resources.memory = {"limit": 33554432, "swap": 33554432}'
  rr create --bundle "$b" $id </dev/null >/dev/null || e=1
  rr events --interval 200ms $id > $WORK/events-$id &
  local ev=$!
  # The first stats line says the watcher is in place: only then start the hog.
  wait_for 60 test -s $WORK/events-$id || e=1
  rr start $id || e=1
  wait $ev || { echo "  events exited $?"; e=1; }
  grep -qx "{\"type\":\"oom\",\"id\":\"$id\"}" $WORK/events-$id || { echo "  no oom event:"; sed 's/^/  | /' $WORK/events-$id; e=1; }
  rr delete -f $id || e=1
  id=$PREFIX-stats
  b=$(spec $id sleep 1000)
  edit "$b" '.linux.resources.memory = {"limit": 50331648} | .linux.resources.pids = {"limit": 20}'
  rr run -d --bundle "$b" $id </dev/null >/dev/null || e=1
  local s; s=$(rr events --stats $id)
  check "stats memory limit" 50331648 "$(echo "$s" | jq .data.memory.usage.limit)" || e=1
  check "stats pids" "1 20" "$(echo "$s" | jq -r '"\(.data.pids.current) \(.data.pids.limit)"')" || e=1
  check "ps json" "[$(rr state $id | jq .pid)]" "$(rr ps -f json $id)" || e=1
  rr kill $id KILL; wait_for 30 sh -c "[ \"\$($RUNRS --root $STATE state $id | jq -r .status)\" = stopped ]" || e=1
  rr delete $id || e=1
  no_cgroup $id || { echo "  cgroup left after SIGKILL + delete"; e=1; }
  [ $e = 0 ] && ok oom || notok oom "see above"
}

# --- rootless, delegated subtree ---------------------------------------------------
# An unprivileged caller (uid 65534) whose shell is in a cgroup subtree delegated to it
# (owned by it, controllers enabled by root), as systemd delegates user@.service: runc's
# rootless mode creates the container's cgroup beside the caller's (the parent of its own
# cgroup) and sets the limits there. runrs, then runc as the reference.
t_rootless() {
  local e=0 u=65534 d=$CG/$PREFIX-deleg rt
  mkdir -p "$d/shell"
  chown $u:$u "$d" "$d/cgroup.procs" "$d/cgroup.subtree_control" "$d/cgroup.threads" \
    "$d/shell" "$d/shell/cgroup.procs"
  echo "+pids +memory" > "$d/cgroup.subtree_control"
  chmod 755 "$WORK"
  for rt in "$RUNRS" /usr/sbin/runc; do
    local n; n=$(basename "$rt")
    local id=$PREFIX-rl-$n b=$WORK/bundle-rl-$n out=$WORK/out-rl-$n xdg=$WORK/xdg-rl-$n
    mkdir -p "$b" "$out" "$xdg"; chown $u:$u "$b" "$out" "$xdg"; chmod 700 "$xdg"
    as_user() { sh -c 'echo $$ > "$1/shell/cgroup.procs"; shift; exec "$@"' sh "$d" \
      setpriv --reuid $u --regid $u --clear-groups env XDG_RUNTIME_DIR="$xdg" "$@"; }
    (cd "$b" && as_user "$rt" spec --rootless) || { echo "  $n: spec --rootless failed"; e=1; continue; }
    # No cgroup namespace (runc's spec has one): the container reads its host path.
    edit "$b" '.process.terminal = false | .root.path = "'"$ROOTFS"'"
      | .linux.namespaces |= map(select(.type != "cgroup"))
      | .process.args = ["sh", "-c", "p=$(cut -d: -f3 /proc/self/cgroup); echo $p > /out/cg; cat /sys/fs/cgroup$p/pids.max > /out/pids"]
      | .linux.resources = {"pids": {"limit": 10}}
      | .mounts += [{"destination": "/out", "type": "bind", "source": "'"$out"'", "options": ["rbind", "rw"]}]'
    as_user "$rt" run --bundle "$b" $id </dev/null > "$WORK/rl-$n.log" 2>&1 \
      || { echo "  $n: rootless run failed:"; sed 's/^/  | /' "$WORK/rl-$n.log"; e=1; continue; }
    check "$n cgroup" "/$PREFIX-deleg/$id" "$(cat "$out/cg")" || e=1
    check "$n pids.max" 10 "$(cat "$out/pids")" || e=1
    [ ! -e "$d/$id" ] || { echo "  $n: $d/$id left"; e=1; }
  done
  rmdir "$d/shell" "$d" 2>/dev/null || { echo "  $d: $(find "$d")"; e=1; }
  [ $e = 0 ] && ok rootless || notok rootless "see above"
}

# --- rootless Podman, delegated subtree ---------------------------------------------
# Podman 4.3 as the test user runrs-rootless (install-clients.sh makes it, with subuid and
# subgid ranges) from a shell in a subtree delegated to it: the container's cgroup is made
# in the subtree and --pids-limit lands in it (seen from inside, through its cgroup
# namespace), the exit code passes through. runrs, then runc. The image archive is the
# one run-v2.sh builds beside the runrs binary.
t_podman_rootless() {
  local e=0 u=runrs-rootless d=$CG/$PREFIX-podman img rt out rc
  img=$(dirname "$RUNRS")/busybox.tar
  id $u >/dev/null 2>&1 || { notok podman-rootless "user $u missing (integration/scripts/install-clients.sh)"; return; }
  [ -s "$img" ] || { notok podman-rootless "no image archive at $img"; return; }
  local w=$WORK/podman
  mkdir -p "$w/home" "$w/xdg" "$w/storage" "$d/shell"
  chown -R $u: "$w" "$d"; chmod 700 "$w/xdg"; chmod 755 "$WORK"
  echo "+pids +memory" > "$d/cgroup.subtree_control"
  pod() { sh -c 'echo $$ > "$1/shell/cgroup.procs"; shift; exec "$@"' sh "$d" \
    runuser -u $u -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$w/home" XDG_RUNTIME_DIR="$w/xdg" \
    podman --root "$w/storage" --runroot "$w/xdg/c" --storage-driver vfs --cgroup-manager cgroupfs \
    --events-backend file "$@"; }
  pod load -q -i "$img" >/dev/null 2>&1 || { notok podman-rootless "podman load failed"; return; }
  for rt in "$RUNRS" /usr/sbin/runc; do
    out=$(pod --runtime "$rt" run --rm --network none --pids-limit 50 busybox \
      sh -c 'echo pids=$(cat /sys/fs/cgroup/pids.max); exit 3' 2>&1); rc=$?
    check "$(basename "$rt") exit code" 3 $rc || e=1
    echo "$out" | grep -qx "pids=50" || { echo "  $(basename "$rt"): $out"; e=1; }
  done
  pod system reset -f >/dev/null 2>&1
  pkill -KILL -u $u; wait_for 10 sh -c "! pgrep -u $u >/dev/null" || { echo "  processes of $u left"; e=1; }
  local left; left=$(find "$d" -mindepth 1 -maxdepth 1 -type d ! -name shell)
  [ -z "$left" ] || { echo "  container cgroups left: $left"; e=1; }
  rmdir "$d/shell" "$d" 2>/dev/null || { echo "  $d not removable"; e=1; }
  [ $e = 0 ] && ok podman-rootless || notok podman-rootless "see above"
}

note "kernel $(uname -r), controllers: $(cat $CG/cgroup.controllers)"
for t in ${V2_TESTS:-t_limits t_devices t_pause t_pids t_oom t_rootless t_podman_rootless}; do
  start=$SECONDS
  $t
  cleanup
  note "$t took $((SECONDS - start)) s"
done
left=$(find $CG -maxdepth 1 -name "$PREFIX-*")
[ -z "$left" ] && ok cleanup || notok cleanup "cgroups left: $left"
rm -rf "$WORK" "$STATE"
exit $failed
