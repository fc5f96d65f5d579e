#!/usr/bin/env python3
"""Write an OCI image layout with N tar+gzip layers of ~SIZE bytes of random data each
(gzip level 1: random data does not shrink, and no tool has to recompress on push).

usage: make_image.py DIR [LAYERS=8] [SIZE_MB=110]
Index entries: ref.name "bench" (for skopeo's oci:DIR:bench). Written once; reused after.
"""
import gzip, hashlib, json, os, platform, shutil, sys, tarfile

out = sys.argv[1]
layers = int(sys.argv[2]) if len(sys.argv) > 2 else 8
size = int(sys.argv[3]) * 1000 * 1000 if len(sys.argv) > 3 else 110 * 1000 * 1000
blobs = os.path.join(out, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)


def put(data_path=None, data=None):
    h = hashlib.sha256()
    if data is not None:
        h.update(data)
        d = h.hexdigest()
        with open(os.path.join(blobs, d), "wb") as f:
            f.write(data)
        return "sha256:" + d, len(data)
    with open(data_path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    d = h.hexdigest()
    os.replace(data_path, os.path.join(blobs, d))
    return "sha256:" + d, os.path.getsize(os.path.join(blobs, d))


descs, diffs = [], []
for i in range(layers):
    tmp = os.path.join(out, f"layer{i}.tmp")
    with open(tmp, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.GNU_FORMAT) as t:
        ti = tarfile.TarInfo(f"data{i}.bin")
        ti.size = size
        ti.mtime = 0
        with open("/dev/urandom", "rb") as r:
            t.addfile(ti, r)
    h = hashlib.sha256()
    with open(tmp, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    diffs.append("sha256:" + h.hexdigest())
    with open(tmp, "rb") as f, open(tmp + ".gz", "wb") as g:
        with gzip.GzipFile(fileobj=g, mode="wb", compresslevel=1, mtime=0) as z:
            shutil.copyfileobj(f, z, 1 << 20)
    os.remove(tmp)
    d, n = put(tmp + ".gz")
    descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})

config = json.dumps({"architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()), "os": "linux", "rootfs": {"type": "layers", "diff_ids": diffs}},
                    sort_keys=True, separators=(",", ":")).encode()
cd, cn = put(data=config)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
                       "layers": descs}, separators=(",", ":")).encode()
md, mn = put(data=manifest)
with open(os.path.join(out, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
               "digest": md, "size": mn, "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}, f)
print(md)
