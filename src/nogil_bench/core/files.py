"""Files other processes may read while they are written: temp file in the same directory, then
rename, so a reader (or a crash) never sees half a file."""

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

COPY_CHUNK_BYTES = 1024 * 1024


@contextmanager
def _replacing(path: Path, mode: int) -> Iterator[BinaryIO]:
    """A temp file beside `path`; synced and renamed onto it when the block ends well."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        Path(temporary).chmod(mode)  # mkstemp makes files owner-only
        Path(temporary).replace(path)  # os.replace: atomic on POSIX and Windows
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_atomically(path: Path, content: bytes, *, mode: int = 0o644) -> None:
    with _replacing(path, mode) as file:
        file.write(content)


def copy_atomically(source: BinaryIO, path: Path, *, mode: int = 0o644) -> tuple[int, str]:
    """Streams `source` into `path` a chunk at a time; returns its size and SHA-256."""
    digest = hashlib.sha256()
    size_bytes = 0
    with _replacing(path, mode) as file:
        while chunk := source.read(COPY_CHUNK_BYTES):
            digest.update(chunk)
            size_bytes += len(chunk)
            file.write(chunk)
    return size_bytes, digest.hexdigest()
