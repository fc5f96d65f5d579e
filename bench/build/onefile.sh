#!/usr/bin/env bash
# A smaller, quicker companion of run.sh: the one-file-change rebuild only.
#
# Context: a copy of /usr/lib/python3.11 (~54 MB, ~5k files, override with TREE=DIR).
# Dockerfile: busybox (imported from /bin/busybox), WORKDIR, COPY the tree, RUN over it.
# Prints wall time of: cold build, no-op rebuild, and N rebuilds after changing one file
# (COPY and RUN re-run). RBUILD_BIN picks the binary (default target/release/rbuild).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
rbuild="${RBUILD_BIN:-$here/target/release/rbuild}"
tree="${TREE:-/usr/lib/python3.11}"
n="${N:-3}"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/rbuild-onefile.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc"
cp /bin/busybox "$work/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$work/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" bin etc
store="$work/store"
"$rbuild" --root "$store" import "$work/rootfs.tar" busybox:latest >/dev/null
ctx="$work/ctx"
mkdir -p "$ctx"
cp -a "$tree" "$ctx/tree"
echo "context: $(du -sh "$ctx/tree" | cut -f1), $(find "$ctx/tree" -type f | wc -l) files"
printf 'FROM busybox\nWORKDIR /app\nCOPY tree/ /app/tree/\nRUN find /app/tree -type f | wc -l > /app/count\n' > "$ctx/Dockerfile"
victim="$(find "$ctx/tree" -type f -name '*.py' -print -quit)"
steps() { # the COPY and RUN steps' own times from the plain progress log
    awk '/^#[0-9]+ \[/ { split($0, a, " "); n = a[1]; w = ($0 ~ / COPY /) ? "COPY" : ($0 ~ / RUN /) ? "RUN" : ""; if (w != "") name[n] = w }
         /^#[0-9]+ (DONE|CACHED)/ { if ($1 in name) printf "%s %s  ", name[$1], ($2 == "CACHED") ? "cached" : $3 }' "$1"
}
t() { # label
    local s e
    s=$(date +%s.%N)
    "$rbuild" --root "$store" build --progress plain -t bench "$ctx" >"$work/log" 2>&1 || { cat "$work/log"; exit 1; }
    e=$(date +%s.%N)
    printf '%-12s %6.2f s   steps: %s\n' "$1" "$(echo "$e - $s" | bc)" "$(steps "$work/log")"
}
t cold
t no-op
for i in $(seq "$n"); do
    echo "# changed $i $(date +%s%N)" >> "$victim"
    t "one-file-$i"
done
