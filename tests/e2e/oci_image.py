"""An OCI image-layout tarball built from busybox-static (for ``ctr images import``)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import time
from pathlib import Path

APPLETS = ("sh", "sleep", "cat", "echo", "ls", "dd", "md5sum", "touch")


def _blob(tar: tarfile.TarFile, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size, info.mtime = len(data), int(time.time())
    tar.addfile(info, io.BytesIO(data))
    return digest


def _layer() -> bytes:
    busybox = Path(shutil.which("busybox") or "/bin/busybox").read_bytes()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as layer:
        for name in ("bin", "tmp", "data"):
            d = tarfile.TarInfo(name)
            d.type, d.mode = tarfile.DIRTYPE, 0o755 if name != "tmp" else 0o1777
            layer.addfile(d)
        f = tarfile.TarInfo("bin/busybox")
        f.size, f.mode = len(busybox), 0o755
        layer.addfile(f, io.BytesIO(busybox))
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            layer.addfile(link)
    return out.getvalue()


def build(path: Path, ref: str = "docker.io/opsbook/bb:1") -> Path:
    """Write the tarball to *path*: one layer (busybox and its applets), a config, a manifest."""
    layer = _layer()
    layer_digest = hashlib.sha256(layer).hexdigest()
    with tarfile.open(path, "w") as tar:
        _blob(tar, layer)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
                "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
            }
        ).encode()
        config_digest = _blob(tar, config)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": f"sha256:{config_digest}",
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": f"sha256:{layer_digest}",
                        "size": len(layer),
                    }
                ],
            }
        ).encode()
        manifest_digest = _blob(tar, manifest)
        index = json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": f"sha256:{manifest_digest}",
                        "size": len(manifest),
                        "annotations": {"org.opencontainers.image.ref.name": ref, "io.containerd.image.name": ref},
                    }
                ],
            }
        ).encode()
        for name, data in (("index.json", index), ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path
