"""Finding dataset files on disk and proving they are the files we expect.

Every dataset file minift reads is checked against a SHA-256 digest written in the
source. Files that packagers may re-compress (the ``.gz`` files of a Debian package or a
Python wheel) are checked by the digest of their *decompressed* bytes, so that the same
digest accepts the Debian copy, the upstream download and an un-gzipped copy alike.

Users with a network can put downloaded files in a cache directory: ``$MINIFT_DATA`` if
that is set, else ``~/.cache/minift/data``. Nothing in minift downloads anything.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

GZIP_MAGIC = b"\x1f\x8b"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not on this machine; the message says how to get them."""


class ChecksumError(ValueError):
    """A dataset file exists but its bytes are not the ones minift knows."""


def data_home() -> Path:
    """The cache directory for dataset files: ``$MINIFT_DATA`` or ``~/.cache/minift/data``."""
    configured = os.environ.get("MINIFT_DATA")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "minift" / "data"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def find_file(filename: str, directories, how_to_get: str) -> Path:
    """The first ``directory/filename`` (or ``directory/filename.gz``) that exists.

    Raises ``DatasetNotFoundError`` naming every place searched and ``how_to_get``.
    """
    directories = [Path(d) for d in directories]
    for directory in directories:
        for candidate in (directory / filename, directory / f"{filename}.gz"):
            if candidate.is_file():
                return candidate
    searched = "\n".join(f"  {d}" for d in directories) or "  (no directory to search)"
    raise DatasetNotFoundError(
        f"{filename} (or {filename}.gz) was not found in:\n{searched}\nTo get it: {how_to_get}"
    )


def read_checked(path, expected_sha256: str, decompress: bool) -> bytes:
    """The bytes of ``path`` (gunzipped when ``decompress`` and the file is gzip), checked.

    The digest is taken over the returned bytes. A mismatch raises ``ChecksumError``.
    """
    path = Path(path)
    data = path.read_bytes()
    if decompress and data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ChecksumError(f"{path} is a damaged gzip file ({exc}); replace it") from exc
    actual = sha256_hex(data)
    if actual != expected_sha256:
        what = "decompressed content" if decompress else "bytes"
        raise ChecksumError(
            f"{path}: the SHA-256 of its {what} is {actual}, expected {expected_sha256}. "
            "The file is damaged or is not the version minift knows; delete it and get it again."
        )
    return data
