#!/bin/sh
# Sandbox benchmark: RUN true overhead (with and without the seccomp filter, and what the
# device cgroup costs), gzip layer rate of a 300 MB RUN, and `rbuild run --rm busybox true`
# with Docker's default seccomp profile and with seccomp=unconfined. Run as root.
# Usage: bench/sandbox/run.sh [N]   (PROFILE=dev for a debug build: no release build needed)
set -e
cd "$(dirname "$0")/../.."
n="${1:-50}"
profile="${PROFILE:-release}"
dir=release
[ "$profile" = release ] || dir=debug
cargo run --profile "$profile" -q -p rbuild-runtime --example sandbox_bench -- "$n"

cargo build --profile "$profile" -q -p rbuild
rb="$PWD/target/$dir/rbuild"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/rootfs/bin"
cp /bin/busybox "$tmp/rootfs/bin/"
ln -s busybox "$tmp/rootfs/bin/true"
tar -C "$tmp/rootfs" -cf "$tmp/bb.tar" bin
"$rb" --root "$tmp/store" import "$tmp/bb.tar" bb >/dev/null
"$rb" --root "$tmp/store" run --rm bb true # warm: layers unpacked once
# Interleaved, so a machine busy with something else slows both alike (microseconds).
with=0
without=0
i=0
while [ $i -lt "$n" ]; do
    t0=$(date +%s%N)
    "$rb" --root "$tmp/store" run --rm bb true
    t1=$(date +%s%N)
    "$rb" --root "$tmp/store" run --rm --security-opt seccomp=unconfined bb true
    t2=$(date +%s%N)
    with=$((with + (t1 - t0) / 1000))
    without=$((without + (t2 - t1) / 1000))
    i=$((i + 1))
done
with=$((with / n))
without=$((without / n))
echo "rbuild run --rm bb true, mean of $n: default seccomp $((with / 1000)).$(printf %03d $((with % 1000))) ms, unconfined $((without / 1000)).$(printf %03d $((without % 1000))) ms"
