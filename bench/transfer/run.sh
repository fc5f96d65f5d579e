#!/usr/bin/env bash
# Push/pull speed and memory: rbuild vs skopeo, side by side, against the same
# docker-registry build and the same image (8 tar+gzip layers x ~110 MB of random data,
# made once; already compressed, so neither tool recompresses on push).
#
# usage: bench/transfer/run.sh            (RBUILD=path/to/rbuild to skip the release build;
#                                           LAYERS=8 SIZE_MB=110 RUNS=3 WORK=/tmp/rbuild-bench-transfer)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
WORK=${WORK:-/tmp/rbuild-bench-transfer}
LAYERS=${LAYERS:-8}
SIZE_MB=${SIZE_MB:-110}
RUNS=${RUNS:-3}
for t in docker-registry skopeo python3 /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 1; }
done
if [ -z "${RBUILD:-}" ]; then
  (cd "$repo" && cargo build --release -p rbuild >&2)
  RBUILD=$repo/target/release/rbuild
fi
mkdir -p "$WORK"
src=$WORK/image-$LAYERS-$SIZE_MB-gz
if [ ! -f "$src/index.json" ]; then
  echo "making the image in $src (once)..." >&2
  python3 "$here/make_image.py" "$src" "$LAYERS" "$SIZE_MB" >/dev/null
fi
total=$(du -sb "$src/blobs" | cut -f1)

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# A fresh registry: echoes host:port.
start_registry() {
  local dir=$1 port
  rm -rf "$dir"; mkdir -p "$dir/data"
  port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s/data}, delete: {enabled: true}}\nhttp: {addr: 127.0.0.1:%s}\n' "$dir" "$port" >"$dir/config.yml"
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  echo "127.0.0.1:$port"
}

# timed LABEL CMD...: wall seconds and peak RSS (kB) into $secs $rss.
timed() {
  local label=$1; shift
  local out=$WORK/time.$label
  /usr/bin/time -v -o "$out" "$@" >/dev/null 2>"$WORK/err.$label" || { cat "$WORK/err.$label" >&2; exit 1; }
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$out")
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$out")
}

# The rbuild store: the same blobs (hard links), tagged with a full reference.
store=$WORK/rbuild-store
rm -rf "$store"; mkdir -p "$store/blobs"
cp -al "$src/blobs/sha256" "$store/blobs/sha256"
echo '{"imageLayoutVersion":"1.0.0"}' >"$store/oci-layout"
python3 - "$src/index.json" "$store/index.json" <<'PY'
import json, sys
i = json.load(open(sys.argv[1]))
i["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": "localhost/bench/img:1"}
json.dump(i, open(sys.argv[2], "w"))
PY

printf '%-22s %10s %10s %12s\n' "step" "seconds" "MB/s" "peak RSS MB"
row() { printf '%-22s %10.2f %10.0f %12.1f\n' "$1" "$2" "$(echo "$total / 1000000 / $2" | bc -l)" "$(echo "$3 / 1024" | bc -l)"; }
best() { printf '%s\n' "$@" | sort -g | head -1; }

declare -a sp_push sp_pull rb_push rb_pull rb_repush
for run in $(seq "$RUNS"); do
  reg=$(start_registry "$WORK/reg-skopeo")
  timed skopeo-push skopeo copy -q --dest-tls-verify=false "oci:$src:bench" "docker://$reg/bench/img:1"
  sp_push+=("$secs"); sp_push_rss=$rss
  rm -rf "$WORK/skopeo-pulled"
  timed skopeo-pull skopeo copy -q --src-tls-verify=false "docker://$reg/bench/img:1" "oci:$WORK/skopeo-pulled:1"
  sp_pull+=("$secs"); sp_pull_rss=$rss

  reg=$(start_registry "$WORK/reg-rbuild")
  rm -f "$store/blob-sources.json"
  timed rbuild-push "$RBUILD" --root "$store" push -q localhost/bench/img:1 "$reg/bench/img:1"
  rb_push+=("$secs"); rb_push_rss=$rss
  timed rbuild-repush "$RBUILD" --root "$store" push -q localhost/bench/img:1 "$reg/bench/img:1"
  rb_repush+=("$secs")
  rm -rf "$WORK/rbuild-pulled"
  timed rbuild-pull "$RBUILD" --root "$WORK/rbuild-pulled" pull -q "$reg/bench/img:1"
  rb_pull+=("$secs"); rb_pull_rss=$rss
  cleanup; pids=()
done

row "skopeo push (best)" "$(best "${sp_push[@]}")" "$sp_push_rss"
row "rbuild push (best)" "$(best "${rb_push[@]}")" "$rb_push_rss"
row "skopeo pull (best)" "$(best "${sp_pull[@]}")" "$sp_pull_rss"
row "rbuild pull (best)" "$(best "${rb_pull[@]}")" "$rb_pull_rss"
printf '%-22s %10.3f\n' "rbuild re-push (best)" "$(best "${rb_repush[@]}")"
echo
echo "image: $LAYERS layers, $((total / 1000000)) MB; runs: $RUNS"
echo "push: rbuild is $(echo "$(best "${sp_push[@]}") / $(best "${rb_push[@]}")" | bc -l | xargs printf '%.2f')x skopeo's speed"
echo "pull: rbuild is $(echo "$(best "${sp_pull[@]}") / $(best "${rb_pull[@]}")" | bc -l | xargs printf '%.2f')x skopeo's speed"
echo "all runs (s): skopeo push ${sp_push[*]} | rbuild push ${rb_push[*]} | skopeo pull ${sp_pull[*]} | rbuild pull ${rb_pull[*]} | rbuild re-push ${rb_repush[*]}"
