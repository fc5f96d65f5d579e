#!/usr/bin/env bash
# Side-by-side benchmark: rbuild-registry vs Debian's docker-registry (CNCF distribution 2.8).
# Both on 127.0.0.1 with storage in a temp dir. Prints the figures and the ratios.
#   bench/registry/run.sh            (SIZE_MB=1024 WRK_SECONDS=10 by default)
# Needs: curl, sha256sum, wrk (apt-get install -y wrk), /usr/bin/docker-registry.
set -euo pipefail

SIZE_MB=${SIZE_MB:-1024}
WRK_SECONDS=${WRK_SECONDS:-10}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbuild-registry-bench.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for tool in curl sha256sum wrk /usr/bin/docker-registry; do
  command -v "$tool" >/dev/null || { echo "missing $tool (wrk: apt-get install -y wrk; docker-registry: apt-get install -y docker-registry)" >&2; exit 1; }
done

echo "building rbuild-registry (release)…" >&2
(cd "$ROOT" && cargo build --release -q -p rbuild-registry-server --bin rbuild-registry)
BIN="$ROOT/target/release/rbuild-registry"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PORT_R=$(free_port); PORT_D=$(free_port); PORT_N=$(free_port)
mkdir -p "$WORK/r" "$WORK/d" "$WORK/n"
"$BIN" serve --addr "127.0.0.1:$PORT_R" --root "$WORK/r" 2>"$WORK/r.log" &
PID_R=$!; PIDS+=("$PID_R")
# The same, without fsync (storage.fsync = false), to show what durability costs.
RBUILD_REGISTRY_FSYNC=false "$BIN" serve --addr "127.0.0.1:$PORT_N" --root "$WORK/n" 2>"$WORK/n.log" &
PID_N=$!; PIDS+=("$PID_N")
cat >"$WORK/d.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/d
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$PORT_D
YML
/usr/bin/docker-registry serve "$WORK/d.yml" >"$WORK/d.log" 2>&1 &
PID_D=$!; PIDS+=("$PID_D")

wait_up() { for _ in $(seq 100); do curl -fs "http://127.0.0.1:$1/v2/" >/dev/null && return; sleep 0.1; done; echo "server on $1 did not start" >&2; exit 1; }
wait_up "$PORT_R"; wait_up "$PORT_D"; wait_up "$PORT_N"

echo "making a ${SIZE_MB} MiB blob…" >&2
BLOB="$WORK/blob"
head -c "$((SIZE_MB * 1024 * 1024))" /dev/urandom >"$BLOB"
DIGEST="sha256:$(sha256sum "$BLOB" | cut -d' ' -f1)"

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# upload PORT PID REPO -> prints "MB/s peakRSS_MB"
upload() {
  local port=$1 pid=$2 repo=$3 loc t peak=0 r
  loc=$(curl -fsS -X POST -D - -o /dev/null "http://127.0.0.1:$port/v2/$repo/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location" {print $2}')
  case "$loc" in http*) ;; *) loc="http://127.0.0.1:$port$loc" ;; esac
  case "$loc" in *\?*) loc="$loc&digest=$DIGEST" ;; *) loc="$loc?digest=$DIGEST" ;; esac
  curl -fsS -X PUT -H 'Expect:' -H 'Content-Type: application/octet-stream' -T "$BLOB" -o /dev/null -w '%{time_total}\n' "$loc" >"$WORK/t" &
  local cpid=$!
  while kill -0 "$cpid" 2>/dev/null; do
    r=$(rss_kb "$pid"); [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.05
  done
  wait "$cpid"
  t=$(cat "$WORK/t")
  awk -v mb="$SIZE_MB" -v t="$t" -v p="$peak" 'BEGIN {printf "%.0f %.1f\n", mb/t, p/1024}'
}

# Interleaved so that both servers see the same machine load; prints "meanR meanD" in MB/s.
download_both() {
  local i port s
  for i in 1 2 3 4 5; do
    for port in "$PORT_R" "$PORT_D"; do
      s=$(curl -fsS -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$port/v2/bench/big/blobs/$DIGEST")
      echo "$port $s"
    done
  done | awk -v r="$PORT_R" -v d="$PORT_D" '{s[$1]+=$2; n[$1]++} END {printf "%.0f %.0f\n", s[r]/n[r]/1048576, s[d]/n[d]/1048576}'
}

push_small_image() {
  local port=$1 base="http://127.0.0.1:$1/v2/bench/app" cfg='{"architecture":"amd64","os":"linux"}' layer="$WORK/layer"
  head -c 4096 /dev/urandom >"$layer"
  local cd="sha256:$(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1)" ld="sha256:$(sha256sum "$layer" | cut -d' ' -f1)"
  for pair in "cfg:$cd" "layer:$ld"; do
    local what=${pair%%:*} d=${pair#*:} loc
    loc=$(curl -fsS -X POST -D - -o /dev/null "$base/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location" {print $2}')
    case "$loc" in http*) ;; *) loc="http://127.0.0.1:$port$loc" ;; esac
    case "$loc" in *\?*) loc="$loc&digest=$d" ;; *) loc="$loc?digest=$d" ;; esac
    if [ "$what" = cfg ]; then
      curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary "$cfg" -o /dev/null "$loc"
    else
      curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$layer" -o /dev/null "$loc"
    fi
  done
  local m="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"$cd\",\"size\":${#cfg}},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"$ld\",\"size\":4096}]}"
  curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "$m" -o /dev/null "$base/manifests/v1"
}

manifest_rps() {
  wrk -t2 -c32 -d"${WRK_SECONDS}s" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://127.0.0.1:$1/v2/bench/app/manifests/v1" | awk '/Requests\/sec/ {printf "%.0f\n", $2}'
}

echo "uploading (3 rounds, interleaved)…" >&2
# Each round starts with no blob stored, so every server writes (and, rbuild, fsyncs) it anew.
: >"$WORK/up"
for round in 1 2 3; do
  for s in "R $PORT_R $PID_R $WORK/r/blobs" "D $PORT_D $PID_D $WORK/d/docker/registry/v2/blobs" "N $PORT_N $PID_N $WORK/n/blobs"; do
    set -- $s
    rm -rf "$4"
    repo="bench/up$round"; [ "$round" = 3 ] && repo="bench/big"
    echo "$1 $(upload "$2" "$3" "$repo")" >>"$WORK/up"
  done
done
mean_of() { awk -v k="$1" '$1==k {s+=$2; n++} END {printf "%.0f\n", s/n}' "$WORK/up"; }
max_rss() { awk -v k="$1" '$1==k && $3>m {m=$3} END {printf "%.1f\n", m}' "$WORK/up"; }
UP_R=$(mean_of R); UP_D=$(mean_of D); UP_N=$(mean_of N)
RSS_R=$(max_rss R); RSS_D=$(max_rss D)
echo "downloading…" >&2
read -r DOWN_R DOWN_D < <(download_both)
push_small_image "$PORT_R"; push_small_image "$PORT_D"
echo "manifest GETs (wrk, 32 connections, ${WRK_SECONDS}s each)…" >&2
RPS_R=$(manifest_rps "$PORT_R"); RPS_D=$(manifest_rps "$PORT_D")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1fx", (b>0)?a/b:0}'; }
printf '\n%-40s %16s %16s %8s\n' "benchmark (${SIZE_MB} MiB blob)" rbuild-registry docker-registry ratio
printf '%-40s %11s MB/s %11s MB/s %8s\n' "monolithic upload (POST+PUT, mean of 3)" "$UP_R" "$UP_D" "$(ratio "$UP_R" "$UP_D")"
printf '%-40s %11s MB/s %11s MB/s %8s\n' "  same, rbuild with storage.fsync=false" "$UP_N" "$UP_D" "$(ratio "$UP_N" "$UP_D")"
printf '%-40s %11s MB/s %11s MB/s %8s\n' "blob download (mean of 5, interleaved)" "$DOWN_R" "$DOWN_D" "$(ratio "$DOWN_R" "$DOWN_D")"
printf '%-40s %12s req/s %10s req/s %8s\n' "manifest GET, 32 connections" "$RPS_R" "$RPS_D" "$(ratio "$RPS_R" "$RPS_D")"
printf '%-40s %14s MB %13s MB %8s\n' "peak server RSS during the upload" "$RSS_R" "$RSS_D" "$(ratio "$RSS_D" "$RSS_R")"
echo "(RSS ratio is docker-registry / rbuild-registry: higher is better for rbuild;"
echo " docker-registry never fsyncs; rbuild-registry fsyncs each blob before it becomes visible by default)"
