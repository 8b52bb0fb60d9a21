"""Where uploads and outputs live: one file store, chosen by FILE_STORE.

A key names a file the same way in every store: `uploads/<uuid>` for an uploaded image,
`outputs/<job id>.<hex>.png` for a job's result; a job keeps its keys in `upload_path` and
`output_path`. Each key is written once (a new uuid or hex is in it), and no reader ever sees a
file half written: it is there whole, or not at all.

- `LocalStore` ("local", the default): files under DATA_DIR, written atomically (temp file,
  fsync, rename; core/files.py). One machine, or processes that share that directory.
- `DatabaseStore` ("database"): rows of the database, in chunks of a MiB, so every process that
  reaches the database reaches the files. A stream is stored a chunk per transaction, and sent
  to a client a chunk per query: memory stays bounded, no transaction is held while a request
  body or a client is waited for, and SQLite's write lock is never held for long. A file's
  header row (`stored_file`) gets its size and SHA-256 with its last chunk; until then readers
  take it for missing.
"""

import hashlib
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from functools import partial
from io import BytesIO
from itertools import batched
from pathlib import Path, PurePosixPath
from typing import Annotated, BinaryIO, Protocol

from fastapi import Depends, Request
from sqlalchemy import Engine, delete, insert, update
from sqlmodel import Field, Session, SQLModel, col, select

from nogil_bench.core.config import OUTPUTS_DIR, UPLOADS_DIR, Settings
from nogil_bench.core.db import engine_of, write
from nogil_bench.core.deps import settings_of
from nogil_bench.core.files import COPY_CHUNK_BYTES, copy_atomically, write_atomically
from nogil_bench.core.models import BigInt, LongBlob, UTCDateTime, utc_now

CHUNK_BYTES = COPY_CHUNK_BYTES
MAX_KEY_CHARS = 255
# Keys deleted per transaction: up to this many files' chunks go under one write lock.
DELETE_KEYS_PER_TRANSACTION = 16
# Owner-only: clients get the files through the API, never from the disk.
FILE_MODE = 0o600


def upload_key() -> str:
    return f"{UPLOADS_DIR}/{uuid.uuid4()}"


def output_key(job_id: uuid.UUID) -> str:
    """A name of this run's own, so a run that lost its claim removes only what it wrote."""
    return f"{OUTPUTS_DIR}/{job_id}.{uuid.uuid4().hex[:12]}.png"


class FileStore(Protocol):
    """Uploads and outputs by key. Every method blocks: call them off the event loop."""

    def save(self, key: str, content: bytes) -> None:
        """Stores `content` under a new key."""
        ...

    def save_stream(self, key: str, source: BinaryIO) -> tuple[int, str]:
        """Stores what `source` holds under a new key, a chunk at a time; returns its size and
        SHA-256. On an error nothing is left under the key."""
        ...

    def read(self, key: str) -> bytes:
        """The whole file; FileNotFoundError when there is none."""
        ...

    def size_bytes(self, key: str) -> int:
        """FileNotFoundError when there is no such file."""
        ...

    def chunks(self, key: str) -> Iterator[bytes]:
        """The file a chunk at a time; FileNotFoundError if it goes (or never was) before its
        end, so that a stream never ends short in silence."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The file on this machine's disk, for stores that keep one there."""
        ...

    def delete(self, keys: Iterable[str]) -> int:
        """Removes the files that exist among `keys`; how many there were."""
        ...

    def keys_written_before(self, moment: datetime) -> list[str]:
        """Every key written before `moment`, half-written ones (a crash's) included."""
        ...


class LocalStore:
    """Files under a directory (DATA_DIR): `uploads/` and `outputs/`."""

    FOLDERS = (str(UPLOADS_DIR), str(OUTPUTS_DIR))

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        """Where the key's file is; ValueError for a key outside the store's folders."""
        parts = PurePosixPath(key).parts
        if len(parts) != 2 or parts[0] not in self.FOLDERS or parts[1] in {".", ".."}:
            raise ValueError(f"not a key of this store: {key!r}")
        return self.root / key

    def save(self, key: str, content: bytes) -> None:
        write_atomically(self.path(key), content, mode=FILE_MODE)

    def save_stream(self, key: str, source: BinaryIO) -> tuple[int, str]:
        return copy_atomically(source, self.path(key), mode=FILE_MODE)

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def size_bytes(self, key: str) -> int:
        return self.path(key).stat().st_size

    def chunks(self, key: str) -> Iterator[bytes]:
        with self.path(key).open("rb") as file:
            while chunk := file.read(CHUNK_BYTES):
                yield chunk

    def local_path(self, key: str) -> Path:
        return self.path(key)

    def delete(self, keys: Iterable[str]) -> int:
        removed = 0
        for key in keys:
            try:
                self.path(key).unlink()
            except FileNotFoundError:
                continue
            removed += 1
        return removed

    def keys_written_before(self, moment: datetime) -> list[str]:
        keys = []
        for folder in self.FOLDERS:
            directory = self.root / folder
            if not directory.is_dir():
                continue
            for path in directory.iterdir():
                if path.is_file() and path.stat().st_mtime < moment.timestamp():
                    keys.append(f"{folder}/{path.name}")
        return keys


class StoredFile(SQLModel, table=True):
    """A file of the database store: its chunks are in `stored_file_chunk`."""

    __tablename__ = "stored_file"

    key: str = Field(primary_key=True, max_length=MAX_KEY_CHARS)
    size_bytes: int | None = Field(
        default=None, sa_type=BigInt, description="None until its last chunk is written."
    )
    sha256: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, index=True)


class StoredFileChunk(SQLModel, table=True):
    """Up to CHUNK_BYTES of a file; `seq` counts from 0."""

    __tablename__ = "stored_file_chunk"

    key: str = Field(
        foreign_key="stored_file.key",
        primary_key=True,
        ondelete="CASCADE",
        max_length=MAX_KEY_CHARS,
    )
    seq: int = Field(primary_key=True)
    data: bytes = Field(sa_type=LongBlob)


class DatabaseStore:
    """Files as rows of the database: a header in `stored_file`, chunks in
    `stored_file_chunk`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save(self, key: str, content: bytes) -> None:
        self.save_stream(key, BytesIO(content))

    def save_stream(self, key: str, source: BinaryIO) -> tuple[int, str]:
        digest = hashlib.sha256()
        size_bytes = 0
        seq = 0
        try:
            chunk = source.read(CHUNK_BYTES)
            while True:
                # One chunk read ahead: the transaction with the last chunk completes the file.
                following = source.read(CHUNK_BYTES) if chunk else b""
                digest.update(chunk)
                size_bytes += len(chunk)
                complete = None if following else (size_bytes, digest.hexdigest())
                write(self.engine, partial(_write_chunk, key, seq, chunk, complete))
                if complete is not None:
                    return complete
                chunk, seq = following, seq + 1
        except BaseException:
            if seq > 0:  # chunk 0 came with the header: before it, nothing here is this write's
                self.delete([key])  # should this fail too, the orphan sweep removes the rest
            raise

    def read(self, key: str) -> bytes:
        with Session(self.engine) as session:
            size_bytes = _complete_size(session, key)
            content = b"".join(
                session.exec(
                    select(StoredFileChunk.data)
                    .where(StoredFileChunk.key == key)
                    .order_by(col(StoredFileChunk.seq))
                ).all()
            )
        if len(content) != size_bytes:  # deleted between the two reads (PostgreSQL)
            raise FileNotFoundError(f"{key} was deleted while it was read")
        return content

    def size_bytes(self, key: str) -> int:
        with Session(self.engine) as session:
            return _complete_size(session, key)

    def chunks(self, key: str) -> Iterator[bytes]:
        size_bytes = self.size_bytes(key)
        sent_bytes = 0
        seq = 0
        while sent_bytes < size_bytes:
            # A query per chunk: no transaction, nor connection, waits on the client.
            with Session(self.engine) as session:
                chunk = session.exec(
                    select(StoredFileChunk.data).where(
                        StoredFileChunk.key == key, StoredFileChunk.seq == seq
                    )
                ).first()
            if chunk is None:
                raise FileNotFoundError(f"{key} was deleted while it was read")
            yield chunk
            sent_bytes += len(chunk)
            seq += 1

    def local_path(self, key: str) -> Path | None:
        return None  # its files are rows

    def delete(self, keys: Iterable[str]) -> int:
        return sum(
            write(self.engine, partial(_delete_files, group))
            for group in batched(dict.fromkeys(keys), DELETE_KEYS_PER_TRANSACTION, strict=False)
        )

    def keys_written_before(self, moment: datetime) -> list[str]:
        with Session(self.engine) as session:
            return list(
                session.exec(select(StoredFile.key).where(StoredFile.created_at < moment)).all()
            )


def _write_chunk(
    key: str, seq: int, chunk: bytes, complete: tuple[int, str] | None, session: Session
) -> None:
    """Chunk `seq` of the file, its header first with chunk 0, its size and hash with the last."""
    connection = session.connection()
    if seq == 0:
        connection.execute(insert(StoredFile).values(key=key, created_at=utc_now()))
    if chunk:
        connection.execute(insert(StoredFileChunk).values(key=key, seq=seq, data=chunk))
    if complete is not None:
        size_bytes, sha256 = complete
        connection.execute(
            update(StoredFile)
            .where(col(StoredFile.key) == key)
            .values(size_bytes=size_bytes, sha256=sha256)
        )


def _complete_size(session: Session, key: str) -> int:
    header = session.get(StoredFile, key)
    if header is None or header.size_bytes is None:
        raise FileNotFoundError(f"no file {key}")
    return header.size_bytes


def _delete_files(keys: tuple[str, ...], session: Session) -> int:
    connection = session.connection()
    connection.execute(delete(StoredFileChunk).where(col(StoredFileChunk.key).in_(keys)))
    return connection.execute(delete(StoredFile).where(col(StoredFile.key).in_(keys))).rowcount


def get_store(settings: Settings, engine: Engine) -> FileStore:
    """The store FILE_STORE names."""
    if settings.FILE_STORE == "database":
        return DatabaseStore(engine)
    return LocalStore(settings.DATA_DIR)


async def get_file_store(request: Request) -> FileStore:
    return get_store(settings_of(request), engine_of(request))


FileStoreDep = Annotated[FileStore, Depends(get_file_store)]
