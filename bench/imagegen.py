"""Benchmark image generator: writes OCI image layouts with random, incompressible layers.

Every layer is a real tar (one regular file of random bytes) wrapped in a gzip stream of
*stored* deflate blocks (level 0): a valid `tar+gzip` layer that is as large as its content and
costs no CPU to "compress". skopeo therefore sees a gzip layer and keeps it as it is (no
recompression), and the registry stores exactly these bytes.

Used by scripts/bench; also runnable alone:
    python3 bench/imagegen.py multi DIR      # the 5-platform image of issue 10 (tag "multi")
    python3 bench/imagegen.py big DIR [MiB]  # one single-layer image (tag "big"), default 1024 MiB
    python3 bench/imagegen.py small DIR N    # N small 2-platform images (tags small-00 …)
"""

import hashlib
import json
import os
import sys
import tarfile
import zlib

MiB = 1024 * 1024
CHUNK = MiB

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

# The five platforms of the benchmark image (the first two are the sparse selection).
PLATFORMS = [
    {"os": "linux", "architecture": "amd64"},
    {"os": "linux", "architecture": "arm64", "variant": "v8"},
    {"os": "linux", "architecture": "arm", "variant": "v7"},
    {"os": "linux", "architecture": "ppc64le"},
    {"os": "linux", "architecture": "s390x"},
]


class Layout:
    """An OCI image layout being written; `finish()` writes index.json."""

    def __init__(self, path):
        self.path = path
        self.blobs = os.path.join(path, "blobs", "sha256")
        os.makedirs(self.blobs, exist_ok=True)
        with open(os.path.join(path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        self.entries = []

    def _blob_path(self, hexdigest):
        return os.path.join(self.blobs, hexdigest)

    def put_bytes(self, data, media_type):
        h = hashlib.sha256(data).hexdigest()
        with open(self._blob_path(h), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": "sha256:" + h, "size": len(data)}

    def put_json(self, obj, media_type):
        return self.put_bytes(json.dumps(obj, separators=(",", ":")).encode(), media_type)

    def put_random_layer(self, content_size, name="data"):
        """A tar.gz layer holding one file of `content_size` random bytes.

        Returns (descriptor, diff_id)."""
        tmp = os.path.join(self.blobs, ".tmp-layer")
        tar_hash = hashlib.sha256()
        gz_hash = hashlib.sha256()
        gz = zlib.compressobj(0, zlib.DEFLATED, 31)  # gzip framing, stored blocks
        size = 0
        with open(tmp, "wb") as out:

            def emit(tar_bytes):
                nonlocal size
                tar_hash.update(tar_bytes)
                z = gz.compress(tar_bytes)
                if z:
                    gz_hash.update(z)
                    out.write(z)
                    size += len(z)

            info = tarfile.TarInfo(name)
            info.size = content_size
            info.mode = 0o644
            info.mtime = 0
            emit(info.tobuf(format=tarfile.GNU_FORMAT))
            left = content_size
            while left > 0:
                n = min(CHUNK, left)
                emit(os.urandom(n))
                left -= n
            pad = (-content_size) % 512
            emit(b"\0" * (pad + 1024))  # pad to a block, then the two end-of-archive blocks
            z = gz.flush()
            gz_hash.update(z)
            out.write(z)
            size += len(z)
        h = gz_hash.hexdigest()
        os.rename(tmp, self._blob_path(h))
        desc = {"mediaType": OCI_LAYER_GZIP, "digest": "sha256:" + h, "size": size}
        return desc, "sha256:" + tar_hash.hexdigest()

    def put_image(self, platform, layers, label):
        """An image manifest over `layers` [(descriptor, diff_id)]; returns its descriptor."""
        config = {
            "created": "2024-01-01T00:00:00Z",
            "architecture": platform["architecture"],
            "os": platform["os"],
            "config": {"Labels": {"bench": label}},
            "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
        }
        if "variant" in platform:
            config["variant"] = platform["variant"]
        cdesc = self.put_json(config, OCI_CONFIG)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": cdesc,
            "layers": [d for d, _ in layers],
        }
        return self.put_json(manifest, OCI_MANIFEST)

    def put_index(self, children):
        """`children` [(manifest descriptor, platform)]; returns the index descriptor."""
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [dict(d, platform=p) for d, p in children],
        }
        return self.put_json(index, OCI_INDEX)

    def tag(self, desc, name):
        e = dict(desc)
        e["annotations"] = {"org.opencontainers.image.ref.name": name}
        self.entries.append(e)

    def finish(self):
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": self.entries}, f, indent=1)


def total_size(layout):
    return sum(
        os.path.getsize(os.path.join(layout.blobs, b)) for b in os.listdir(layout.blobs)
    )


def gen_multi(path, tag="multi", base_mib=16, layer_mib=8, layers_per_platform=3):
    """The issue-10 image: 5 platforms, a shared base layer, 3 own layers per platform."""
    lay = Layout(path)
    base = lay.put_random_layer(base_mib * MiB, "base")
    children = []
    for p in PLATFORMS:
        own = [lay.put_random_layer(layer_mib * MiB, "l%d" % i) for i in range(layers_per_platform)]
        children.append((lay.put_image(p, [base] + own, tag), p))
    idx = lay.put_index(children)
    lay.tag(idx, tag)
    lay.finish()
    return idx


def gen_big(path, mib=1024, tag="big"):
    """A single-platform image (a plain manifest) with one layer of `mib` MiB."""
    lay = Layout(path)
    layer = lay.put_random_layer(mib * MiB, "big")
    desc = lay.put_image(PLATFORMS[0], [layer], tag)
    lay.tag(desc, tag)
    lay.finish()
    return desc


def gen_small(path, n, layer_kib=64):
    """`n` small 2-platform images (OCI indexes), tags small-00 …, each with its own layers."""
    lay = Layout(path)
    descs = []
    for i in range(n):
        tag = "small-%02d" % i
        children = []
        for p in PLATFORMS[:2]:
            layer = lay.put_random_layer(layer_kib * 1024, "s")
            children.append((lay.put_image(p, [layer], tag), p))
        idx = lay.put_index(children)
        lay.tag(idx, tag)
        descs.append((tag, idx))
    lay.finish()
    return descs


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    kind, path = argv[1], argv[2]
    if kind == "multi":
        d = gen_multi(path)
    elif kind == "big":
        d = gen_big(path, int(argv[3]) if len(argv) > 3 else 1024)
    elif kind == "small":
        d = gen_small(path, int(argv[3]) if len(argv) > 3 else 50)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(d))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
