"""Build deploy/krew/kubectl-jit.tar.gz byte for byte the same every time, and print its sha256.

krew checks the archive's sha256 against the manifest (jit.yaml); a reproducible archive lets the
manifest be checked in CI (tests/unit/test_krew_manifest.py) before a release uploads it.
Usage: python deploy/krew/archive.py [OUT]
"""

from __future__ import annotations

import gzip
import hashlib
import io
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).parent
FILES = {"kubectl-jit": 0o755}


def archive_bytes() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, mode in FILES.items():
            data = (HERE / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", fileobj=packed, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def main() -> None:
    data = archive_bytes()
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "kubectl-jit.tar.gz"
    out.write_bytes(data)
    print(f"{out}  sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
