#!/usr/bin/env bash
# Containers side by side: rbuild, podman (Debian's 4.3, own --root/--runroot, cgroupfs,
# runc) and docker (Debian's docker.io, a dockerd started here with its own data root), on
# one busybox image imported into each.
#
#   1. `run --rm IMAGE true`, wall time (medians of N interleaved rounds);
#   2. a `run -d` + `stop` + `rm` cycle of a command that exits on SIGTERM;
#   3. `ps -a` with 100 containers;
#   4. memory per idle container of what the tool leaves beside the container's own command
#      (rbuild: its monitor and the sandbox init; podman: conmon; docker: containerd-shim),
#      as PSS from /proc/PID/smaps_rollup.
#
# Prints each figure and the ratio. Run as root. Usage: bench/containers/run.sh [N]
#   RBUILD_BIN=target/release/rbuild  (default: a release build made here)
#   NO_DOCKER=1 / NO_PODMAN=1         skip a peer
set -euo pipefail
cd "$(dirname "$0")/../.."
n="${1:-30}"
rb_bin="${RBUILD_BIN:-$PWD/target/release/rbuild}"
[ -n "${RBUILD_BIN:-}" ] || cargo build --release -q -p rbuild

work=$(mktemp -d)
dockerd_pid=
cleanup() {
    [ -n "$dockerd_pid" ] && kill "$dockerd_pid" 2>/dev/null && wait "$dockerd_pid" 2>/dev/null || true
    # rbuild's and podman's containers go with their stores; unmount what is left.
    "$rb_bin" --root "$work/rb" rm -f $("$rb_bin" --root "$work/rb" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    [ -n "${pm[*]:-}" ] && "${pm[@]}" rm -af -t 0 >/dev/null 2>&1 || true
    grep " $work" /proc/mounts | awk '{print $2}' | sort -r | xargs -r umount -l 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$work/rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$work/rootfs/etc/passwd"
printf 'root:x:0:\n' >"$work/rootfs/etc/group"
tar -C "$work/rootfs" -cf "$work/bb.tar" bin etc tmp

rb=("$rb_bin" --root "$work/rb")
"${rb[@]}" import "$work/bb.tar" bb >/dev/null
tools=(rbuild)

pm=()
if [ "${NO_PODMAN:-0}" != 1 ] && command -v podman >/dev/null && command -v runc >/dev/null; then
    # crun refuses this machine's hybrid cgroup layout; runc wants explicit ulimits here.
    pm=(podman --root "$work/pm" --runroot "$work/pmrun" --cgroup-manager cgroupfs --runtime runc
        --events-backend none --storage-driver overlay)
    "${pm[@]}" import -q "$work/bb.tar" bb >/dev/null
    tools+=(podman)
fi
dk=()
if [ "${NO_DOCKER:-0}" != 1 ] && [ -x /usr/sbin/dockerd ]; then
    /usr/sbin/dockerd --iptables=false --bridge=none --data-root "$work/docker" --exec-root "$work/dexec" \
        -p "$work/docker.pid" -H "unix://$work/docker.sock" >"$work/dockerd.log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 150); do [ -S "$work/docker.sock" ] && /usr/bin/docker -H "unix://$work/docker.sock" info >/dev/null 2>&1 && break; sleep 0.2; done
    dk=(/usr/bin/docker -H "unix://$work/docker.sock")
    "${dk[@]}" import "$work/bb.tar" bb >/dev/null
    tools+=(docker)
fi

# The flags each tool needs to run the same container.
run_flags() {
    case $1 in
    rbuild) echo "" ;;
    podman) echo "--network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024" ;;
    docker) echo "--network host" ;;
    esac
}
cli() {
    case $1 in
    rbuild) echo "${rb[*]}" ;;
    podman) echo "${pm[*]}" ;;
    docker) echo "${dk[*]}" ;;
    esac
}
ms() { echo $((($(date +%s%N) - $1) / 1000)); }
median() { sort -n "$1" | awk '{v[NR]=$1} END {m=v[int((NR+1)/2)]; printf "%d.%03d", int(m/1000), m%1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a/b}'; }

# Warm each tool once (layers unpacked, caches filled).
for t in "${tools[@]}"; do $(cli "$t") run --rm $(run_flags "$t") bb true >/dev/null; done

# 1 and 2, interleaved so a busy machine slows all alike.
for t in "${tools[@]}"; do : >"$work/run-$t"; : >"$work/cycle-$t"; done
stopper='trap "exit 0" TERM; sleep 600 & wait'
for i in $(seq "$n"); do
    for t in "${tools[@]}"; do
        c=$(cli "$t"); f=$(run_flags "$t")
        t0=$(date +%s%N); $c run --rm $f bb true >/dev/null; ms "$t0" >>"$work/run-$t"
        t0=$(date +%s%N)
        id=$($c run -d $f bb sh -c "$stopper")
        $c stop -t 10 "$id" >/dev/null
        $c rm "$id" >/dev/null
        ms "$t0" >>"$work/cycle-$t"
    done
done

# 3: 100 created containers.
for t in "${tools[@]}"; do
    c=$(cli "$t"); f=$(run_flags "$t")
    for i in $(seq 100); do $c create $f bb true >/dev/null; done
    : >"$work/ps-$t"
    for i in $(seq 20); do t0=$(date +%s%N); $c ps -a >/dev/null; ms "$t0" >>"$work/ps-$t"; done
    $c rm $($c ps -aq) >/dev/null
done

# 4: five idle containers each.
pss() { awk '/^Pss:/ {s+=$2} END {print s+0}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
for t in "${tools[@]}"; do
    c=$(cli "$t"); f=$(run_flags "$t")
    for i in 1 2 3 4 5; do $c run -d $f bb sleep 600 >/dev/null; done
    sleep 1 # let the monitors settle after start-up
    total=0
    case $t in
    rbuild)
        for s in "$work"/rb/containers/*/state.json; do
            for k in monitor_pid init_pid; do
                p=$(sed -n "s/.*\"$k\": *\([0-9]*\).*/\1/p" "$s")
                [ -n "$p" ] && total=$((total + $(pss "$p")))
            done
        done ;;
    podman) for p in $(pgrep -x conmon); do total=$((total + $(pss "$p"))); done ;;
    docker) for p in $(pgrep -f containerd-shim); do total=$((total + $(pss "$p"))); done ;;
    esac
    echo $((total / 5)) >"$work/mem-$t"
    $c rm -f $($c ps -aq) >/dev/null 2>&1
done

echo "containers, $n rounds (medians), $(nproc) cores"
for t in "${tools[@]}"; do
    printf '%-7s run --rm true %8s ms   run -d+stop+rm %8s ms   ps -a (100) %7s ms   idle monitor %6s KiB PSS\n' \
        "$t" "$(median "$work/run-$t")" "$(median "$work/cycle-$t")" "$(median "$work/ps-$t")" "$(cat "$work/mem-$t")"
done
for t in "${tools[@]}"; do
    [ "$t" = rbuild ] && continue
    echo "rbuild vs $t: run --rm $(ratio "$(median "$work/run-$t")" "$(median "$work/run-rbuild")")x faster," \
        "run -d+stop+rm $(ratio "$(median "$work/cycle-$t")" "$(median "$work/cycle-rbuild")")x," \
        "ps -a $(ratio "$(median "$work/ps-$t")" "$(median "$work/ps-rbuild")")x," \
        "idle memory $t/rbuild $(ratio "$(cat "$work/mem-$t")" "$(cat "$work/mem-rbuild")") (above 1: rbuild uses less)"
done
