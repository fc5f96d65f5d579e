#!/bin/sh
# Sandbox benchmark: RUN true overhead (with and without the seccomp filter, and what the
# device cgroup costs), gzip layer rate of a 300 MB RUN, the seccomp filter's install time
# (one program against seccompiler's two, in fresh children), and `rbuild run --rm busybox
# true` with Docker's default seccomp profile and with seccomp=unconfined (medians of
# interleaved runs). Run as root.
# Usage: bench/sandbox/run.sh [N]   (PROFILE=dev for a debug build: no release build needed)
set -e
cd "$(dirname "$0")/../.."
n="${1:-50}"
profile="${PROFILE:-release}"
dir=release
[ "$profile" = release ] || dir=debug
cargo run --profile "$profile" -q -p rbuild-runtime --example sandbox_bench -- "$n"
# Kernel time, so the test build's profile does not matter for the install figures.
N=$((n * 6)) cargo test -q -p rbuild-runtime --lib seccomp::equivalence::install_cost -- --ignored --nocapture |
    grep '^seccomp install'

rb="${RBUILD_BIN:-$PWD/target/$dir/rbuild}"
[ -n "$RBUILD_BIN" ] || cargo build --profile "$profile" -q -p rbuild
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/rootfs/bin"
cp /bin/busybox "$tmp/rootfs/bin/"
ln -s busybox "$tmp/rootfs/bin/true"
tar -C "$tmp/rootfs" -cf "$tmp/bb.tar" bin
"$rb" --root "$tmp/store" import "$tmp/bb.tar" bb >/dev/null
"$rb" --root "$tmp/store" run --rm bb true # warm: layers unpacked once
# Interleaved, so a machine busy with something else slows both alike, and in alternating
# order: a run right after another one is slower (what the last one left the kernel to do),
# by more than seccomp costs (microseconds).
: >"$tmp/with"
: >"$tmp/without"
one() {
    t0=$(date +%s%N)
    if [ "$1" = with ]; then
        "$rb" --root "$tmp/store" run --rm bb true
    else
        "$rb" --root "$tmp/store" run --rm --security-opt seccomp=unconfined bb true
    fi
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000)) >>"$tmp/$1"
}
i=0
while [ $i -lt "$n" ]; do
    if [ $((i % 2)) = 0 ]; then
        one with
        one without
    else
        one without
        one with
    fi
    i=$((i + 1))
done
median() { sort -n "$1" | awk '{v[NR]=$1} END {m=v[int((NR+1)/2)]; s=m<0?"-":""; m=m<0?-m:m; printf "%s%d.%03d", s, int(m/1000), m%1000}'; }
# The difference within a pair, per order (the order's own cost cancels out of their mean).
paste "$tmp/with" "$tmp/without" | awk 'NR % 2 == 1 {print $1 - $2}' >"$tmp/first"
paste "$tmp/with" "$tmp/without" | awk 'NR % 2 == 0 {print $1 - $2}' >"$tmp/second"
cost=$(printf '%s\n%s\n' "$(median "$tmp/first")" "$(median "$tmp/second")" | awk '{s+=$1} END {printf "%+.3f", s/2}')
echo "rbuild run --rm bb true, median of $n: default seccomp $(median "$tmp/with") ms, unconfined $(median "$tmp/without") ms; seccomp adds $cost ms (mean of the two orders' median differences: $(median "$tmp/first") ms with the default run first, $(median "$tmp/second") ms with it second)"
