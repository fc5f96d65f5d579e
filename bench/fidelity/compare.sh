#!/bin/sh
# Build every case of testdata/fidelity (or the cases named) with rbuild and with buildah
# (`buildah bud`, Debian's buildah) on the same busybox base, list what each put under
# /out (type, mode, path, link target or content hash: the format of each case's
# `expected` file), and diff both against `expected`.
#
#   bench/fidelity/compare.sh                 every copy-* case (the whole-tree format;
#                                             ign-*/mnt-* have tests/build_mounts.rs's)
#   bench/fidelity/compare.sh copy-exclude    one case
#   RBUILD=/path/to/rbuild bench/fidelity/compare.sh
#
# A case is a directory holding a Dockerfile, its context and `expected` (what BuildKit
# gives, the reference). Exit status: 1 when rbuild differs from `expected`; buildah's
# differences are reported only (buildah is a peer, not the reference). Needs root (buildah
# with the vfs driver) and busybox-static.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cases_dir=$top/testdata/fidelity
RBUILD=${RBUILD:-$top/target/debug/rbuild}
[ -x "$RBUILD" ] || { echo "no rbuild at $RBUILD (cargo build -p rbuild, or set RBUILD)" >&2; exit 2; }
[ -x /bin/busybox ] || { echo "needs /bin/busybox (apt-get install busybox-static)" >&2; exit 2; }
have_buildah=1
command -v buildah >/dev/null 2>&1 || { echo "buildah not found (apt-get install buildah): rbuild only" >&2; have_buildah=0; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
B="buildah --root $work/bstore --runroot $work/brun --storage-driver vfs"

# The busybox base: /bin/busybox with its applets, /etc/passwd and /etc/group.
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc"
cp /bin/busybox "$work/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -s busybox "$work/rootfs/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n' >"$work/rootfs/etc/passwd"
printf 'root:x:0:\napp:x:1000:\n' >"$work/rootfs/etc/group"
tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -C "$work/rootfs" -cf "$work/rootfs.tar" bin etc
"$RBUILD" --root "$work/store" import --change 'CMD ["sh"]' "$work/rootfs.tar" busybox:latest >/dev/null
if [ $have_buildah = 1 ]; then
    ctr=$($B from scratch)
    $B add "$ctr" "$work/rootfs.tar" / >/dev/null
    $B config --cmd sh "$ctr"
    $B commit -q "$ctr" localhost/busybox:latest >/dev/null
    $B tag localhost/busybox:latest docker.io/library/busybox:latest
    $B rm "$ctr" >/dev/null
fi

# What a tree holds under out/, one line an entry, sorted by path (bytes).
list_tree() (
    cd "$1"
    [ -e out ] || exit 0
    find out | LC_ALL=C sort | while IFS= read -r p; do
        if [ -L "$p" ]; then
            echo "l $(stat -c %a "$p") $p -> $(readlink "$p")"
        elif [ -d "$p" ]; then
            echo "d $(stat -c %a "$p") $p"
        elif [ -f "$p" ]; then
            echo "f $(stat -c %a "$p") $p $(sha256sum <"$p" | cut -c1-16)"
        else
            echo "o $(stat -c %a "$p") $p"
        fi
    done
)

# A copy of the case with normal modes (files 644, dirs 755): a checkout's umask must not
# show up as a difference.
prepare() {
    cp -a "$cases_dir/$1" "$work/ctx-$1"
    find "$work/ctx-$1" -type d -exec chmod 755 {} +
    find "$work/ctx-$1" -type f -exec chmod 644 {} +
}

if [ $# -gt 0 ]; then cases=$*; else cases=$(cd "$cases_dir" && ls -d copy-*); fi
status=0
for c in $cases; do
    [ -f "$cases_dir/$c/Dockerfile" ] || continue
    [ -f "$cases_dir/$c/expected" ] || { echo "== $c: no expected file, skipped"; continue; }
    prepare "$c"
    ctx=$work/ctx-$c
    if "$RBUILD" --root "$work/store" build --progress quiet -o "type=local,dest=$work/rb-$c" "$ctx" >"$work/rb-$c.log" 2>&1; then
        list_tree "$work/rb-$c" >"$work/rb-$c.tree"
    else
        echo "build failed: $(tail -n 3 "$work/rb-$c.log")" >"$work/rb-$c.tree"
    fi
    if diff -u "$cases_dir/$c/expected" "$work/rb-$c.tree" >"$work/rb-$c.diff"; then
        echo "== $c: rbuild matches"
    else
        echo "== $c: rbuild DIFFERS"
        cat "$work/rb-$c.diff"
        status=1
    fi
    [ $have_buildah = 1 ] || continue
    if $B bud --pull=never --layers=false -q -t "fid-$c" "$ctx" >"$work/bh-$c.log" 2>&1; then
        ctr=$($B from "fid-$c")
        mnt=$($B mount "$ctr")
        list_tree "$mnt" >"$work/bh-$c.tree"
        $B umount "$ctr" >/dev/null
        $B rm "$ctr" >/dev/null
    else
        echo "build failed: $(tail -n 3 "$work/bh-$c.log")" >"$work/bh-$c.tree"
    fi
    if diff -u "$cases_dir/$c/expected" "$work/bh-$c.tree" >"$work/bh-$c.diff"; then
        echo "   buildah matches"
    else
        echo "   buildah differs:"
        sed 's/^/   /' "$work/bh-$c.diff"
    fi
done
exit $status
