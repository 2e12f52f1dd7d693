#!/usr/bin/env bash
# systemd-tests.sh MODE BINDIR ROOTFS E2E_HELPERS
#
# The systemd cgroup driver, inside the systemd VM (see run-systemd.sh), for runrs and
# for runc as the reference. MODE is unified or hybrid. Prints "ok - NAME" /
# "not ok - NAME: why"; exits 1 if any failed.
#  scope      --systemd-cgroup run with system.slice:P:t1 puts init in /system.slice/P-t1.scope
#  kubelet    kubepods-besteffort-pod1.slice:cri-containerd:t3 expands to the nested slices
#  limits     memory, pids and CPU quota as unit properties (systemctl show) and cgroup files
#  update     `update` changes both; `systemctl daemon-reload` keeps them (systemd rewrites
#             the files from its properties) and, on v1, keeps the device allow list
#  pause      pause/resume and `events --stats` on the unit's cgroup
#  delete     no unit, no cgroup directory in any hierarchy, no state afterwards
#  badpath    a cgroupsPath not of the form slice:prefix:name fails naming the format and
#             leaves no unit, cgroup or state behind
#  install    deploy/install.sh merges the runtime entry into containerd 1.x (v2) and 2.x
#             (v3) configs idempotently, SystemdCgroup as the runc entry has it, restarts a
#             containerd service; uninstall.sh restores the config byte for byte
#  cri        containerd 2.1's CRI API with SystemdCgroup = true for both handlers (kubelet's
#             *.slice parents): pod lifecycle, ExecSync, stats and UpdateContainerResources,
#             containerd restart with pods running (the subset of cri_e2e that involves cgroups)
#  rootless   as an unprivileged user (and as uid 0 of its user namespace, as rootless
#             Podman runs the runtime): the unit is the user's systemd's, in user.slice below
#             user@UID.service, with its limits; update; delete leaves nothing (unified);
#             refused on hybrid; no user bus is said; rootless Podman with its systemd
#             cgroup manager (run, exit code, -d in the user's libpod-<id>.scope, rm)
#  podman     (unified) rootful Podman with its systemd cgroup manager: run with a memory
#             limit and exit code, -d in /machine.slice/libpod-<id>.scope with TasksMax, rm
#  ctr        containerd's shim with SystemdCgroup (runrs: the runtime options TOML; runc:
#             --runc-systemd-cgroup) runs a container in /system.slice/ctr-c1.scope
set -uo pipefail
MODE=${1:?usage: $0 MODE BINDIR ROOTFS E2E DEPLOY}
BIN=${2:?}; ROOTFS=${3:?}; E2E=${4:?}; DEPLOY=${5:?}; CRI_E2E=${6:?}
export PATH=$BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CG=/sys/fs/cgroup
WORK=$(mktemp -d /tmp/sdtest.XXXXXX)
# The image the Podman checks load (run-systemd.sh builds it), and their common flags.
IMG=$(dirname "$BIN")/busybox.tar
PODMAN_FLAGS=(--storage-driver vfs --cgroup-manager systemd --events-backend file)
failed=0
ok() { echo "ok - [$MODE] $1"; }
notok() { echo "not ok - [$MODE] $1: $2"; failed=1; }

st=$(timeout 120 systemctl is-system-running --wait 2>&1)
echo "# systemd: $st; pid 1: $(ps -p 1 -o comm=)"

# spec RT ID CGROUPSPATH ARGS...: a bundle dir running ARGS, cgroup namespace off (so
# /proc/self/cgroup shows host paths, as on a node without cgroupns)
spec() {
  local rt=$1 id=$2 cgp=$3; shift 3
  local b=$WORK/$rt-$id; mkdir -p "$b"
  (cd "$b" && runrs spec)
  jq --arg rootfs "$ROOTFS" --arg cg "$cgp" --argjson args "$(printf '%s\n' "$@" | jq -R . | jq -s .)" '
    .process.terminal = false | .process.args = $args | .root.path = $rootfs
    | .linux.cgroupsPath = $cg
    | .linux.namespaces |= map(select(.type != "cgroup"))
    | .mounts += [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=1777"]}]' \
    "$b/config.json" > "$b/c.json" && mv "$b/c.json" "$b/config.json"
  echo "$b"
}
edit() { jq "$2" "$1/config.json" > "$1/c.json" && mv "$1/c.json" "$1/config.json"; }
# file REL-PATH-UNDER-CONTROLLER CONTROLLER: the cgroup file for this mode
cgfile() { # SCOPEPATH V2FILE V1CTRL V1FILE
  if [ "$MODE" = unified ]; then cat "$CG$1/$2" 2>&1; else cat "$CG/$3$1/$4" 2>&1; fi
}
show() { systemctl show -p "$2" --value "$1" 2>&1; }
no_leftovers() { # UNIT SCOPENAME RT ID: why not, or nothing
  local why=""
  systemctl list-units --all --no-legend "$1" 2>/dev/null | grep -q . && why="unit $1 still listed ($(systemctl is-active "$1"));"
  local dirs; dirs=$(find $CG -maxdepth 6 -type d -name "$2" 2>/dev/null)
  [ -n "$dirs" ] && why="$why cgroup dirs left: $dirs;"
  [ -e "/run/$3-sdtest/$4" ] && why="$why state dir /run/$3-sdtest/$4 left;"
  echo "$why"
}

for RT in runrs runc; do
  case $RT in runrs) R=(runrs --root /run/runrs-sdtest --systemd-cgroup);; runc) R=(runc --root /run/runc-sdtest --systemd-cgroup);; esac
  P=$RT-sd

  # --- scope ---
  b=$(spec $RT t1 "system.slice:$P:t1" cat /proc/self/cgroup)
  out=$("${R[@]}" run --bundle "$b" t1 2>&1 </dev/null); rc=$?
  want="/system.slice/$P-t1.scope"
  if [ $rc = 0 ] && echo "$out" | grep -qx "0::$want" &&
     { [ "$MODE" = unified ] || echo "$out" | grep -q ":memory:$want\$"; }; then
    ok "$RT scope: init in $want"
  else notok "$RT scope" "rc=$rc out=$(echo "$out" | tr '\n' '|')"; fi
  why=$(no_leftovers "$P-t1.scope" "$P-t1.scope" "$RT" t1)
  [ -z "$why" ] && ok "$RT scope: nothing left after run" || notok "$RT scope leftovers" "$why"

  # --- kubelet-style nested slice ---
  b=$(spec $RT t3 "kubepods-besteffort-pod1.slice:$P:t3" cat /proc/self/cgroup)
  out=$("${R[@]}" run --bundle "$b" t3 2>&1 </dev/null); rc=$?
  want="/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/$P-t3.scope"
  if [ $rc = 0 ] && echo "$out" | grep -qx "0::$want"; then ok "$RT kubelet slice: $want"
  else notok "$RT kubelet slice" "rc=$rc out=$(echo "$out" | tr '\n' '|')"; fi

  # --- limits, update, daemon-reload, delete ---
  b=$(spec $RT t2 "system.slice:$P:t2" sleep 300)
  edit "$b" '.linux.resources.memory.limit = 67108864 | .linux.resources.pids.limit = 50
             | .linux.resources.cpu.quota = 50000 | .linux.resources.cpu.period = 100000'
  # The container inherits stdio: nothing of it may be the pipe of a $(...).
  if "${R[@]}" run -d --bundle "$b" t2 </dev/null >/dev/null 2>$WORK/err-$RT; then
    u=$P-t2.scope; s=/system.slice/$u
    mem=MemoryMax; [ "$MODE" = hybrid ] && mem=MemoryLimit
    got="active=$(systemctl is-active $u) $mem=$(show $u $mem) TasksMax=$(show $u TasksMax) quota=$(show $u CPUQuotaPerSecUSec)"
    [ "$got" = "active=active $mem=67108864 TasksMax=50 quota=500ms" ] && ok "$RT limits: unit $got" || notok "$RT limits (unit)" "$got"
    got="mem=$(cgfile $s memory.max memory memory.limit_in_bytes) pids=$(cgfile $s pids.max pids pids.max)"
    [ "$got" = "mem=67108864 pids=50" ] && ok "$RT limits: cgroup files $got" || notok "$RT limits (files)" "$got"

    "${R[@]}" update --memory 134217728 --pids-limit 60 t2 >/dev/null 2>&1 || notok "$RT update" "exit $?"
    got="$mem=$(show $u $mem) TasksMax=$(show $u TasksMax) mem=$(cgfile $s memory.max memory memory.limit_in_bytes) pids=$(cgfile $s pids.max pids pids.max)"
    [ "$got" = "$mem=134217728 TasksMax=60 mem=134217728 pids=60" ] && ok "$RT update: $got" || notok "$RT update" "$got"

    systemctl daemon-reload
    got="mem=$(cgfile $s memory.max memory memory.limit_in_bytes) pids=$(cgfile $s pids.max pids pids.max)"
    [ "$got" = "mem=134217728 pids=60" ] && ok "$RT daemon-reload keeps the limits" || notok "$RT daemon-reload" "$got"
    if [ "$MODE" = hybrid ]; then
      dl=$(cat $CG/devices$s/devices.list 2>&1)
      if echo "$dl" | grep -qx 'a \*:\* rwm'; then notok "$RT daemon-reload devices" "the scope allows every device: $(echo "$dl" | tr '\n' '|')"
      elif echo "$dl" | grep -qx 'c 1:3 rwm'; then ok "$RT daemon-reload keeps the device allow list"
      else notok "$RT daemon-reload devices" "$(echo "$dl" | tr '\n' '|')"; fi
    fi
    # pause/resume (freezer of the unit's cgroup) and stats read from it
    "${R[@]}" pause t2 >/dev/null 2>&1
    p1=$("${R[@]}" state t2 2>/dev/null | jq -r .status)
    "${R[@]}" resume t2 >/dev/null 2>&1
    p2=$("${R[@]}" state t2 2>/dev/null | jq -r .status)
    lim=$(timeout 20 "${R[@]}" events --stats t2 2>/dev/null | jq -r .data.memory.usage.limit)
    [ "$p1 $p2 $lim" = "paused running 134217728" ] && ok "$RT pause/resume/stats: $p1 $p2 limit=$lim" ||
      notok "$RT pause/resume/stats" "$p1 $p2 limit=$lim"
    "${R[@]}" kill t2 KILL >/dev/null 2>&1; sleep 0.5
    "${R[@]}" delete -f t2 >/dev/null 2>&1 || notok "$RT delete" "exit $?"
    why=$(no_leftovers "$u" "$u" "$RT" t2)
    [ -z "$why" ] && ok "$RT delete: no unit, cgroup or state left" || notok "$RT delete" "$why"
  else notok "$RT run -d" "$(cat $WORK/err-$RT)"; fi

  # --- bad path ---
  b=$(spec $RT t4 "system.slice:x" true)
  out=$("${R[@]}" run --bundle "$b" t4 2>&1 </dev/null); rc=$?
  why=$(no_leftovers "x.scope" "*t4*" "$RT" t4)
  if [ $rc != 0 ] && echo "$out" | grep -q 'slice:prefix:name' && [ -z "$why" ]; then ok "$RT bad path: $(echo "$out" | tail -1)"
  else notok "$RT bad path" "rc=$rc out=$out $why"; fi
done

# --- rootless: the driver run by an unprivileged user talks to that user's systemd ---
# (rootless Podman's default on a systemd host: --systemd-cgroup, user.slice:libpod:<id>)
# The test user of the deps stage, with a lingering user manager (its bus from
# dbus-user-session); the runtime runs as that user, and as uid 0 of a user namespace
# of it (`unshare -rm`, how Podman runs the runtime).
U=runrs-rootless; UID_=$(id -u $U 2>/dev/null)
if [ -z "$UID_" ]; then notok "rootless" "no user $U (deps stage)"
else
UW=/tmp/sdtest-user; mkdir -p $UW; chown $U: $UW; chmod 755 $UW
UENV=(env XDG_RUNTIME_DIR=/run/user/$UID_ HOME=$UW)
as_user() { runuser -u $U -- "${UENV[@]}" "$@"; }
timeout 60 systemctl start user@$UID_.service >/dev/null 2>&1 ||
  notok "rootless" "user@$UID_.service did not start: $(systemctl status user@$UID_.service 2>&1 | tail -5 | tr '\n' '|')"
MGR=/user.slice/user-$UID_.slice/user@$UID_.service
# rspec RT ID CGROUPSPATH ARGS...: a rootless bundle of the user's (spec --rootless as the user)
rspec() {
  local rt=$1 id=$2 cgp=$3; shift 3
  local b=$UW/$rt-$id; mkdir -p "$b"; chown $U: "$b"
  as_user sh -c "cd $b && runrs spec --rootless"
  jq --arg rootfs "$ROOTFS" --arg cg "$cgp" --argjson args "$(printf '%s\n' "$@" | jq -R . | jq -s .)" '
    .process.terminal = false | .process.args = $args | .root.path = $rootfs
    | .linux.cgroupsPath = $cg | .linux.namespaces |= map(select(.type != "cgroup"))' \
    "$b/config.json" > "$b/c.json" && mv "$b/c.json" "$b/config.json"; chown -R $U: "$b"
  echo "$b"
}
user_show() { as_user systemctl --user show -p "$2" --value "$1" 2>&1; }
user_left() { # UNIT: why not gone, or nothing
  local why=""
  as_user systemctl --user list-units --all --no-legend "$1" 2>/dev/null | grep -q . && why="user unit $1 still listed;"
  [ -e "$CG$MGR/user.slice/$1" ] && why="$why cgroup $MGR/user.slice/$1 left;"
  echo "$why"
}
for RT in runrs runc; do
  P=$RT-u
  if [ "$MODE" = unified ]; then
    b=$(rspec $RT t5 "user.slice:$P:t5" sleep 300)
    edit "$b" '.linux.resources.pids.limit = 42 | .linux.resources.memory.limit = 67108864'; chown $U: "$b/config.json"
    u=$P-t5.scope; s=$MGR/user.slice/$u
    if as_user $RT --root $UW/state-$RT --systemd-cgroup run -d --bundle "$b" t5 </dev/null >/dev/null 2>$UW/err-$RT; then
      got="active=$(as_user systemctl --user is-active $u) TasksMax=$(user_show $u TasksMax) pids=$(cat $CG$s/pids.max 2>&1) mem=$(cat $CG$s/memory.max 2>&1)"
      [ "$got" = "active=active TasksMax=42 pids=42 mem=67108864" ] && ok "$RT rootless: the user's unit $s, $got" || notok "$RT rootless unit" "$got"
      as_user $RT --root $UW/state-$RT --systemd-cgroup update --pids-limit 43 t5 >/dev/null 2>$UW/err-$RT || notok "$RT rootless update" "$(cat $UW/err-$RT)"
      got="TasksMax=$(user_show $u TasksMax) pids=$(cat $CG$s/pids.max 2>&1)"
      [ "$got" = "TasksMax=43 pids=43" ] && ok "$RT rootless update: $got" || notok "$RT rootless update" "$got"
      as_user $RT --root $UW/state-$RT --systemd-cgroup delete -f t5 >/dev/null 2>$UW/err-$RT || notok "$RT rootless delete" "$(cat $UW/err-$RT)"
      why=$(user_left $u)
      [ -z "$why" ] && ok "$RT rootless delete: no unit or cgroup left" || notok "$RT rootless delete" "$why"
    else notok "$RT rootless run -d" "$(cat $UW/err-$RT)"; fi

    # uid 0 of a user namespace whose 0 is the user (rootless Podman's runtime): the
    # user's systemd too, found through the uid map.
    b=$(rspec $RT t6 "user.slice:$P:t6" cat /proc/self/cgroup)
    # The maps name ids of the runtime's namespace, where the user is 0.
    edit "$b" '.linux.uidMappings = [{"containerID": 0, "hostID": 0, "size": 1}] | .linux.gidMappings = .linux.uidMappings'
    chown $U: "$b/config.json"
    out=$(as_user unshare -rm $RT --root $UW/state-$RT --systemd-cgroup run --bundle "$b" t6 2>&1 </dev/null); rc=$?
    want="0::$MGR/user.slice/$P-t6.scope"
    if [ $rc = 0 ] && echo "$out" | grep -qx "$want"; then ok "$RT rootless in a user namespace: $want"
    else notok "$RT rootless in a user namespace" "rc=$rc out=$(echo "$out" | tr '\n' '|')"; fi
    why=$(user_left $P-t6.scope)
    [ -z "$why" ] && ok "$RT rootless in a user namespace: nothing left" || notok "$RT rootless userns leftovers" "$why"
  elif [ $RT = runrs ]; then
    # A user's systemd is delegated cgroups on the unified hierarchy only (runc refuses too).
    b=$(rspec $RT t7 "user.slice:$P:t7" true)
    out=$(as_user $RT --root $UW/state-$RT --systemd-cgroup run --bundle "$b" t7 2>&1 </dev/null); rc=$?
    if [ $rc != 0 ] && echo "$out" | grep -q "rootless systemd cgroups manager on cgroup v1" && [ ! -e $UW/state-$RT/t7 ]; then
      ok "$RT rootless on hybrid refused: $(echo "$out" | tail -1)"
    else notok "$RT rootless on hybrid" "rc=$rc out=$(echo "$out" | tr '\n' '|')"; fi
  fi
done
if [ "$MODE" = unified ]; then
  # No user manager to talk to: said, and nothing made.
  b=$(rspec runrs t8 "user.slice:runrs-u:t8" true)
  out=$(runuser -u $U -- env -u XDG_RUNTIME_DIR -u DBUS_SESSION_BUS_ADDRESS runrs --root $UW/state-runrs \
    --systemd-cgroup run --bundle "$b" t8 2>&1 </dev/null); rc=$?
  if [ $rc != 0 ] && echo "$out" | grep -q "XDG_RUNTIME_DIR is unset" && [ ! -e $UW/state-runrs/t8 ] && [ -z "$(user_left runrs-u-t8.scope)" ]; then
    ok "runrs rootless without a user bus: $(echo "$out" | tail -1)"
  else notok "runrs rootless without a user bus" "rc=$rc out=$(echo "$out" | tr '\n' '|')"; fi
fi
# Rootless Podman's default on such a host: its systemd cgroup manager (conmon in a
# scope of the user's systemd, `--systemd-cgroup` and user.slice:libpod:<id> to the runtime).
if [ "$MODE" = unified ] && [ ! -s "$IMG" ]; then notok "rootless podman" "no image archive at $IMG (run-systemd.sh builds it)"
elif [ "$MODE" = unified ]; then
  pod() { timeout 180 runuser -u $U -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=$UW XDG_RUNTIME_DIR=/run/user/$UID_ \
    podman --root $UW/pstore "${PODMAN_FLAGS[@]}" "$@"; }
  if ! pod load -q -i "$IMG" >$UW/pload 2>&1; then notok "rootless podman" "podman load: $(tail -3 $UW/pload | tr '\n' '|')"
  else
    for RT in runrs runc; do
      rt=$(command -v $RT)
      out=$(pod --runtime "$rt" run --rm --network none --pids-limit 50 busybox \
        sh -c 'echo pids=$(cat /sys/fs/cgroup/pids.max); exit 3' 2>&1 </dev/null); rc=$?
      if [ $rc = 3 ] && echo "$out" | grep -qx "pids=50"; then ok "$RT rootless podman (systemd cgroup manager): pids=50, exit code 3"
      else notok "$RT rootless podman run" "rc=$rc out=$(echo "$out" | tr '\n' '|')"; fi
      id=$(pod --runtime "$rt" run -d --network none --pids-limit 60 busybox sleep 300 2>$UW/perr </dev/null)
      s=$MGR/user.slice/libpod-$id.scope
      got="pids=$(cat $CG$s/pids.max 2>&1) unit=$(as_user systemctl --user is-active libpod-$id.scope)"
      [ -n "$id" ] && [ "$got" = "pids=60 unit=active" ] && ok "$RT rootless podman -d: the user's unit $s, $got" ||
        notok "$RT rootless podman -d" "id=$id $got $(tr '\n' '|' < $UW/perr)"
      pod rm -f -t 0 "$id" >/dev/null 2>&1
      why=$(user_left libpod-$id.scope)
      [ -n "$id" ] && [ -z "$why" ] && ok "$RT rootless podman rm: nothing left" || notok "$RT rootless podman rm" "id=$id $why"
    done
  fi
  pod system reset -f >/dev/null 2>&1
fi
systemctl stop user@$UID_.service >/dev/null 2>&1
fi

# --- rootful Podman with its default (systemd) cgroup manager: machine.slice:libpod:<id> ---
if [ "$MODE" = unified ]; then
  rpod() { timeout 180 podman --root $WORK/pstore --runroot $WORK/prun "${PODMAN_FLAGS[@]}" "$@"; }
  if ! rpod load -q -i "$IMG" >$WORK/pload 2>&1; then notok "podman" "podman load: $(tail -3 $WORK/pload | tr '\n' '|')"
  else
    for RT in runrs runc; do
      rt=$(command -v $RT)
      out=$(rpod --runtime "$rt" run --rm --network none --memory 64m busybox \
        sh -c 'echo mem=$(cat /sys/fs/cgroup/memory.max); exit 4' 2>&1 </dev/null); rc=$?
      if [ $rc = 4 ] && echo "$out" | grep -qx "mem=67108864"; then ok "$RT podman (systemd cgroup manager): memory.max 64m, exit code 4"
      else notok "$RT podman run" "rc=$rc out=$(echo "$out" | tr '\n' '|')"; fi
      id=$(rpod --runtime "$rt" run -d --network none --pids-limit 70 busybox sleep 300 2>$WORK/perr </dev/null)
      u=libpod-$id.scope
      got="pids=$(cat $CG/machine.slice/$u/pids.max 2>&1) TasksMax=$(show $u TasksMax)"
      [ -n "$id" ] && [ "$got" = "pids=70 TasksMax=70" ] && ok "$RT podman -d: /machine.slice/$u, $got" ||
        notok "$RT podman -d" "id=$id $got $(tr '\n' '|' < $WORK/perr)"
      rpod rm -f -t 0 "$id" >/dev/null 2>&1
      why=$(no_leftovers "$u" "$u" none "$id")
      [ -n "$id" ] && [ -z "$why" ] && ok "$RT podman rm: nothing left" || notok "$RT podman rm" "id=$id $why"
    done
  fi
  rpod system reset -f >/dev/null 2>&1
fi

# --- deploy/install.sh and uninstall.sh on a node's containerd config ---
# install_check NAME CONTAINERD CONFIG-TEXT WANT-SYSTEMD
install_check() {
  local name=$1 ctrd=$2 cfg=$WORK/$1.toml prefix=$WORK/prefix-$1
  printf '%b' "$3" > "$cfg"; cp "$cfg" "$cfg.orig"
  local env=(BIN_DIR=$BIN PREFIX=$prefix CONTAINERD_CONFIG=$cfg RESTART=0)
  env "${env[@]}" "$DEPLOY/install.sh" >/dev/null 2>&1 || { notok "install $name" "install.sh failed"; return; }
  cp "$cfg" "$cfg.once"
  env "${env[@]}" "$DEPLOY/install.sh" >/dev/null 2>&1
  local dump; dump=$("$ctrd" --config "$cfg" config dump 2>&1)
  local entry; entry=$(echo "$dump" | grep -A40 'runtimes.runrs\]' | grep -E 'runtime_type|SystemdCgroup|container_annotations' | tr -s ' ' | tr '\n' '|')
  if ! cmp -s "$cfg" "$cfg.once"; then notok "install $name" "a second install changed the config"
  elif [ ! -x "$prefix/bin/runrs" ] || [ ! -x "$prefix/bin/containerd-shim-runrs-v2" ]; then notok "install $name" "binaries missing"
  elif ! echo "$entry" | grep -q "io.containerd.runrs.v2" || ! echo "$entry" | grep -q "SystemdCgroup = $4" ||
       ! echo "$entry" | grep -q 'io.github.runrs'; then notok "install $name" "containerd's view: $entry"
  else ok "install $name: idempotent, containerd reads $entry"; fi
  env "${env[@]}" "$DEPLOY/uninstall.sh" >/dev/null 2>&1
  if cmp -s "$cfg" "$cfg.orig" && [ ! -e "$prefix/bin/runrs" ]; then ok "uninstall $name: config and binaries as before"
  else notok "uninstall $name" "$(diff "$cfg.orig" "$cfg" | tr '\n' '|')"; fi
}
if [ "$MODE" = unified ]; then  # no cgroup involved: once is enough
install_check v2 containerd 'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\n  runtime_type = "io.containerd.runc.v2"\n  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\n    SystemdCgroup = true\n' true
install_check v3 /opt/containerd-2.1/usr/bin/containerd "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]\n  runtime_type = 'io.containerd.runc.v2'\n" false
# Under systemd, install restarts a running containerd service (and only when it changed
# the config).
cfg=$WORK/svc.toml; printf 'version = 2\n' > "$cfg"
# The node's own containerd.service (Debian's unit), pointed at a private config and dirs.
mkdir -p /run/systemd/system/containerd.service.d
printf '[Service]\nExecStart=\nExecStart=/usr/bin/containerd --config %s --root %s --state %s --address %s\n' \
  "$cfg" $WORK/cr $WORK/cs $WORK/c.sock > /run/systemd/system/containerd.service.d/runrs-test.conf
systemctl daemon-reload; systemctl start containerd >/dev/null 2>&1
t0=$(systemctl show -p ActiveEnterTimestampMonotonic --value containerd)
BIN_DIR=$BIN PREFIX=$WORK/prefix-svc CONTAINERD_CONFIG=$cfg "$DEPLOY/install.sh" >/dev/null 2>&1
t1=$(systemctl show -p ActiveEnterTimestampMonotonic --value containerd)
if [ "$(systemctl is-active containerd)" = active ] && [ "$t0" != "$t1" ] && grep -q runrs "$cfg"; then ok "install restarts containerd under systemd"
else notok "install restart" "active=$(systemctl is-active containerd) t0=$t0 t1=$t1 $(journalctl -u containerd --no-pager | tail -5 | tr '\n' '|')"; fi
BIN_DIR=$BIN PREFIX=$WORK/prefix-svc CONTAINERD_CONFIG=$cfg "$DEPLOY/uninstall.sh" >/dev/null 2>&1
systemctl stop containerd >/dev/null 2>&1
rm -rf /run/systemd/system/containerd.service.d; systemctl daemon-reload
fi

# --- containerd: the shim's SystemdCgroup option ---
if E2E_DIR=/tmp/e2e E2E_SHIM_DIR=$BIN E2E_RUNTIMES=io.containerd.runrs.v2 "$E2E/containerd-up.sh" >/tmp/cup.log 2>&1; then
  . /tmp/e2e/env
  printf 'SystemdCgroup = true\n' > $WORK/sd.toml
  for RT in runrs runc; do
    case $RT in
      runrs) args=(--runtime io.containerd.runrs.v2 --runtime-config-path $WORK/sd.toml);;
      runc) args=(--runtime io.containerd.runc.v2 --runc-systemd-cgroup);;
    esac
    out=$(timeout 120 ctr run --rm "${args[@]}" --cgroup system.slice:ctr-$RT:c1 "$E2E_IMAGE" c1 cat /proc/self/cgroup 2>&1); rc=$?
    if [ $rc = 0 ] && echo "$out" | grep -q "/system.slice/ctr-$RT-c1.scope\$"; then ok "$RT ctr SystemdCgroup: /system.slice/ctr-$RT-c1.scope"
    else notok "$RT ctr SystemdCgroup" "rc=$rc $(echo "$out" | tr '\n' '|')"; fi
    why=$(no_leftovers "ctr-$RT-c1.scope" "ctr-$RT-c1.scope" none c1)
    [ -z "$why" ] && ok "$RT ctr: nothing left" || notok "$RT ctr leftovers" "$why"
  done
  # The shim reaches systemd through the runrs binary beside it: a shim installed alone
  # fails the create with that said, and leaves no unit or cgroup.
  mkdir -p $WORK/alone && cp "$BIN/containerd-shim-runrs-v2" $WORK/alone/
  out=$(timeout 120 ctr run --rm --runtime $WORK/alone/containerd-shim-runrs-v2 --runtime-config-path $WORK/sd.toml \
    --cgroup system.slice:ctr-alone:c2 "$E2E_IMAGE" c2 true 2>&1); rc=$?
  ctr container rm c2 >/dev/null 2>&1
  if [ $rc != 0 ] && echo "$out" | grep -q "run the D-Bus helper $WORK/alone/runrs: No such file"; then ok "runrs ctr: a shim without runrs beside it says so"
  else notok "runrs ctr: shim alone" "rc=$rc $(echo "$out" | tr '\n' '|')"; fi
  why=$(no_leftovers "ctr-alone-c2.scope" "ctr-alone-c2.scope" none c2)
  [ -z "$why" ] && ok "runrs ctr: shim alone: nothing left" || notok "runrs ctr: shim alone: leftovers" "$why"
  E2E_DIR=/tmp/e2e "$E2E/containerd-down.sh" >/dev/null 2>&1
else
  sed 's/^/  /' /tmp/cup.log | tail -20; notok "containerd" "containerd-up.sh failed"
fi
# --- CRI with SystemdCgroup = true (kubelet's systemd driver) ---
# The suite prints its own "ok"-free summary: turn its per-scenario lines into ok/not ok.
out=$(cd "$(dirname "$DEPLOY")" && RUNRS_CRI_CGROUP_DRIVER=systemd RUNRS_E2E_CONTAINERD=2.1 RUNRS_E2E_DIR=$E2E \
  timeout 900 "$CRI_E2E" hostnet-lifecycle exec-sync stats-update containerd-restart 2>&1); rc=$?
lines=$(echo "$out" | sed -n '/^summary:/,$p' | grep -E ' (ok|FAILED)$' | grep -v -E 'containerd-up|teardown')
echo "$lines" | while read -r l; do
  case "$l" in *" ok") echo "ok - [$MODE] cri systemd: ${l% *}";; *) echo "not ok - [$MODE] cri systemd: $l";; esac
done
if [ $rc != 0 ] || [ "$(echo "$lines" | grep -c ' ok$')" != 8 ]; then
  notok "cri systemd" "rc=$rc; $(echo "$out" | tail -30 | tr '\n' '|')"
fi

exit $failed
