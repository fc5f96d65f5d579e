#!/usr/bin/env bash
# rbuild build vs buildah bud (and BuildKit when BUILDKIT=1), side by side.
#
# Dockerfile: a busybox base served by a loopback registry; WORKDIR; COPY of a ~335 MB,
# ~9k-file tree (copies of /usr/share/doc, /usr/share/locale, /usr/lib/python3.11); RUN; ENV;
# CMD. Three runs each: cold (empty store), no-op rebuild, one file changed. Reports wall
# time and peak RSS (/usr/bin/time). A script, not a test: numbers depend on the machine.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/rbuild-bench.XXXXXX")"
cleanup() {
    [ -n "${reg_pid:-}" ] && kill "$reg_pid" 2>/dev/null || true
    [ -n "${dockerd_pid:-}" ] && kill "$dockerd_pid" 2>/dev/null || true
    if [ -d "$work/buildah" ]; then buildah --root "$work/buildah" --runroot "$work/buildah-run" rm -a >/dev/null 2>&1 || true; fi
    umount -R "$work/buildah" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

rbuild="${RBUILD_BIN:-$here/target/release/rbuild}"
if [ -z "${RBUILD_BIN:-}" ]; then (cd "$here" && cargo build --release --bin rbuild); fi
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)"; exit 1; }

# The loopback registry with a busybox base.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/registry.yml" <<YML
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $work/registry } }
http: { addr: 127.0.0.1:$port }
YML
/usr/bin/docker-registry serve "$work/registry.yml" >/dev/null 2>&1 & reg_pid=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc"
cp /bin/busybox "$work/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$work/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" bin etc
"$rbuild" --root "$work/seed" import "$work/rootfs.tar" busybox:latest >/dev/null
mkdir -p "$work/basectx" && echo 'FROM busybox' > "$work/basectx/Dockerfile"
"$rbuild" --root "$work/seed" build -q --push -t "127.0.0.1:$port/busybox:1" "$work/basectx" >/dev/null
base="127.0.0.1:$port/busybox:1"

# The context.
ctx="$work/ctx"
mkdir -p "$ctx/tree"
for d in /usr/share/doc /usr/share/locale /usr/lib/python3.11; do
    [ -d "$d" ] && cp -a "$d" "$ctx/tree/$(basename "$d")"
done
echo "context: $(du -sh "$ctx/tree" | cut -f1), $(find "$ctx/tree" -type f | wc -l) files"
cat > "$ctx/Dockerfile" <<DF
FROM $base
WORKDIR /app
COPY tree/ /app/tree/
RUN find /app/tree -type f | wc -l > /app/count
ENV BENCH=1
CMD ["sh"]
DF
victim="$(find "$ctx/tree" -type f -name '*.py' -print -quit)"

measure() { # label, command...
    local label="$1"; shift
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out.log" 2>&1 || { cat "$work/out.log"; return 1; }
    read -r secs kb < "$work/time"
    printf '%-10s %-14s %8.2f s  %7.1f MB peak RSS\n' "$tool" "$label" "$secs" "$(awk "BEGIN{print $kb/1024}")"
}

run_three() { # build command...
    measure cold "$@"
    measure no-op "$@"
    echo "# changed $(date +%s%N)" >> "$victim"
    measure one-file "$@"
}

tool=rbuild
run_three "$rbuild" --root "$work/rbuild-store" build --progress plain -t bench "$ctx"
# The push path too: layers are compressed when they leave the machine.
measure push "$rbuild" --root "$work/rbuild-store" build --progress plain --push -t "127.0.0.1:$port/bench:1" "$ctx"

if command -v buildah >/dev/null; then
    tool=buildah
    bh=(buildah --root "$work/buildah" --runroot "$work/buildah-run" --storage-driver overlay)
    run_three "${bh[@]}" bud --layers --isolation chroot --tls-verify=false -t bench "$ctx"
fi

if [ "${BUILDKIT:-0}" = 1 ] && command -v dockerd >/dev/null; then
    tool=buildkit
    dockerd --iptables=false --bridge=none --data-root "$work/docker" -H "unix://$work/docker.sock" \
        --insecure-registry "127.0.0.1:$port" >"$work/dockerd.log" 2>&1 & dockerd_pid=$!
    for _ in $(seq 100); do [ -S "$work/docker.sock" ] && break; sleep 0.2; done
    export DOCKER_HOST="unix://$work/docker.sock" DOCKER_BUILDKIT=1
    run_three /usr/bin/docker build --network host -t bench "$ctx"
fi
