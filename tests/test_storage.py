"""The file stores: what is saved is read back byte for byte, whole or a chunk at a time; no
reader sees a file half written, and a failed write leaves nothing. The local store on disk;
the database store on SQLite, PostgreSQL and MariaDB, in chunks and in bounded memory."""

import hashlib
import io
import os
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from nogil_bench.core.config import Settings
from nogil_bench.core.db import make_engine
from nogil_bench.core.migrations import upgrade_database
from nogil_bench.core.storage import (
    CHUNK_BYTES,
    DatabaseStore,
    FileStore,
    LocalStore,
    StoredFileChunk,
    get_store,
    output_key,
    upload_key,
)
from tests.utils.database import URL_FIXTURES

STORES = ["local", "database-sqlite", "database-postgresql", "database-mariadb"]
# Later than anything a test writes: every stored key was written before it.
END_OF_TIME = datetime(9000, 1, 1, tzinfo=UTC)


def open_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FileStore]:
    """The store FILE_STORE names, on a new SQLite database or the tests' PostgreSQL or
    MariaDB one."""
    file_store: Literal["local", "database"] = "local" if kind == "local" else "database"
    database = kind.removeprefix(f"{file_store}-")
    url = request.getfixturevalue(URL_FIXTURES[database]) if database in URL_FIXTURES else None
    settings = Settings(  # type: ignore[call-arg]
        DATA_DIR=tmp_path / "data", DATABASE_URL=url, FILE_STORE=file_store, _env_file=None
    )
    engine = make_engine(settings)
    if file_store == "database":
        upgrade_database(engine)
    yield get_store(settings, engine)
    engine.dispose()


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FileStore]:
    yield from open_store(request.param, request, tmp_path)


@pytest.fixture(params=STORES[1:])
def database_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseStore]:
    for store in open_store(request.param, request, tmp_path):
        assert isinstance(store, DatabaseStore)
        yield store


class RecordingStream(io.BytesIO):
    """Bytes to store, that remember how much each read asked for and can act on a read."""

    def __init__(self, content: bytes, on_read: Callable[[int], None] = lambda _: None) -> None:
        super().__init__(content)
        self.requested: list[int] = []
        self.on_read = on_read

    def read(self, size: int | None = -1, /) -> bytes:
        self.requested.append(-1 if size is None else size)
        self.on_read(len(self.requested))
        return super().read(size)


def noise(size_bytes: int) -> bytes:
    return os.urandom(size_bytes)


def test_the_setting_picks_the_store(store: FileStore, request: pytest.FixtureRequest) -> None:
    expected = LocalStore if request.node.callspec.params["store"] == "local" else DatabaseStore
    assert isinstance(store, expected)


def test_what_is_saved_is_read_back_byte_for_byte(store: FileStore) -> None:
    content = noise(2 * CHUNK_BYTES + 12_345)
    streamed, kept = upload_key(), output_key(uuid.uuid7())

    size_bytes, sha256 = store.save_stream(streamed, io.BytesIO(content))
    store.save(kept, content)

    assert (size_bytes, sha256) == (len(content), hashlib.sha256(content).hexdigest())
    for key in (streamed, kept):
        assert store.read(key) == content
        assert store.size_bytes(key) == len(content)
        assert b"".join(store.chunks(key)) == content


def test_an_empty_file_is_a_file(store: FileStore) -> None:
    key = upload_key()

    assert store.save_stream(key, io.BytesIO()) == (0, hashlib.sha256().hexdigest())
    assert store.read(key) == b""
    assert store.size_bytes(key) == 0
    assert list(store.chunks(key)) == []
    assert store.delete([key]) == 1


def test_a_key_never_saved_is_not_found(store: FileStore) -> None:
    key = upload_key()

    with pytest.raises(FileNotFoundError):
        store.read(key)
    with pytest.raises(FileNotFoundError):
        store.size_bytes(key)
    with pytest.raises(FileNotFoundError):
        list(store.chunks(key))
    assert store.delete([key]) == 0


def test_delete_removes_the_files_named_and_counts_those_that_were_there(
    store: FileStore,
) -> None:
    kept, *deleted = [upload_key() for _ in range(3)]
    for key in (kept, *deleted):
        store.save(key, b"image")

    assert store.delete([*deleted, upload_key(), deleted[0]]) == 2

    assert store.read(kept) == b"image"
    assert set(store.keys_written_before(END_OF_TIME)) == {kept}


def test_keys_written_before_a_moment_include_only_those(store: FileStore) -> None:
    keys = {upload_key(), output_key(uuid.uuid7())}
    for key in keys:
        store.save(key, b"image")
    now = datetime.now(UTC)

    assert store.keys_written_before(now - timedelta(minutes=1)) == []
    assert set(store.keys_written_before(now + timedelta(minutes=1))) == keys


def test_a_stream_is_read_a_chunk_at_a_time_and_sent_back_in_chunks(store: FileStore) -> None:
    content = noise(3 * CHUNK_BYTES + 1)
    source = RecordingStream(content)
    key = upload_key()

    store.save_stream(key, source)

    assert max(source.requested) == CHUNK_BYTES
    chunks = list(store.chunks(key))
    assert [len(chunk) for chunk in chunks] == [CHUNK_BYTES] * 3 + [1]


def test_a_reader_never_sees_a_file_half_written(store: FileStore) -> None:
    key = upload_key()
    seen: list[str] = []

    def look(reads: int) -> None:
        if reads == 3:  # two chunks in: the first is stored by now in the database store
            with pytest.raises(FileNotFoundError):
                store.read(key)
            with pytest.raises(FileNotFoundError):
                store.size_bytes(key)
            seen.append("missing")

    store.save_stream(key, RecordingStream(noise(3 * CHUNK_BYTES), look))

    assert seen == ["missing"]
    assert store.size_bytes(key) == 3 * CHUNK_BYTES


def test_a_write_that_fails_half_way_leaves_nothing(store: FileStore) -> None:
    key = upload_key()

    def fail(reads: int) -> None:
        if reads == 3:
            raise OSError("the client went away")

    with pytest.raises(OSError, match="went away"):
        store.save_stream(key, RecordingStream(noise(3 * CHUNK_BYTES), fail))

    with pytest.raises(FileNotFoundError):
        store.read(key)
    assert store.keys_written_before(END_OF_TIME) == []


def test_the_local_store_keeps_files_under_its_folders_only(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    key = upload_key()

    store.save(key, b"image")

    assert store.local_path(key) == tmp_path / key
    assert (tmp_path / key).stat().st_mode & 0o777 == 0o600
    for outside in ("../escape", "uploads/../../escape", "/etc/passwd", "other/file", "uploads"):
        with pytest.raises(ValueError, match="not a key"):
            store.read(outside)


def test_the_database_store_keeps_a_file_in_chunks_of_a_mib_and_nothing_on_disk(
    database_store: DatabaseStore, tmp_path: Path
) -> None:
    content = noise(3 * CHUNK_BYTES + CHUNK_BYTES // 2)
    key = upload_key()

    database_store.save_stream(key, io.BytesIO(content))

    with Session(database_store.engine) as session:
        sizes = session.exec(
            select(func.length(StoredFileChunk.data))
            .where(StoredFileChunk.key == key)
            .order_by(col(StoredFileChunk.seq))
        ).all()
    assert sizes == [CHUNK_BYTES] * 3 + [CHUNK_BYTES // 2]
    assert database_store.local_path(key) is None
    assert not any(
        path.is_file() and not path.name.startswith("nogil_bench.db")
        for path in tmp_path.rglob("*")
    )


def test_the_database_store_saves_and_sends_a_large_file_in_bounded_memory(
    database_store: DatabaseStore, tmp_path: Path
) -> None:
    size_bytes = 24 * CHUNK_BYTES
    source_path = tmp_path / "large.bin"
    with source_path.open("wb") as file:
        for _ in range(size_bytes // CHUNK_BYTES):
            file.write(noise(CHUNK_BYTES))
    key = upload_key()

    tracemalloc.start()
    try:
        with source_path.open("rb") as source:
            database_store.save_stream(key, source)
        saving_peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        sent = hashlib.sha256()
        for chunk in database_store.chunks(key):
            sent.update(chunk)
        sending_peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert sent.hexdigest() == hashlib.sha256(source_path.read_bytes()).hexdigest()
    # A few chunks in memory at once (the one read ahead, the driver's copies), not the file's
    # 24. PyMySQL writes bytes into the query as hex text, then encodes the query: about six
    # chunks' worth for the one it sends, where psycopg and sqlite3 send the bytes as they are.
    bound_bytes = (12 if database_store.engine.dialect.name == "mysql" else 8) * CHUNK_BYTES
    assert saving_peak_bytes < bound_bytes
    assert sending_peak_bytes < bound_bytes


def test_a_file_deleted_while_it_is_sent_ends_its_stream_with_an_error(
    database_store: DatabaseStore,
) -> None:
    key = upload_key()
    database_store.save(key, noise(2 * CHUNK_BYTES))
    chunks = database_store.chunks(key)

    next(chunks)
    database_store.delete([key])

    with pytest.raises(FileNotFoundError, match="deleted while it was read"):
        next(chunks)
