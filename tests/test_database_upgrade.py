"""A database an earlier version made is upgraded in place at start, keeping its rows."""

from pathlib import Path

from sqlalchemy import inspect
from sqlmodel import Session, select

from nogil_bench.auth.models import User
from nogil_bench.core.config import Settings
from nogil_bench.core.db import create_tables, make_engine
from nogil_bench.jobs.models import Batch


def test_columns_added_since_are_added_to_old_tables_and_rows_are_kept(tmp_path: Path) -> None:
    engine = make_engine(Settings(DATA_DIR=tmp_path, _env_file=None))  # type: ignore[call-arg]
    create_tables(engine)
    with Session(engine) as session:
        user = User(email="old@example.com", hashed_password="x")
        session.add(user)
        session.add(Batch(owner_id=user.id, runner="threads", workers=2, pipeline=[]))
        session.commit()
    # The job table as it was before boot ids, and batches before attempts were counted.
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP INDEX ix_job_boot_id")
        connection.exec_driver_sql("ALTER TABLE job DROP COLUMN boot_id")
        connection.exec_driver_sql("ALTER TABLE batch DROP COLUMN attempts")

    create_tables(engine)

    schema = inspect(engine)
    assert "boot_id" in {column["name"] for column in schema.get_columns("job")}
    assert "ix_job_boot_id" in {index["name"] for index in schema.get_indexes("job")}
    attempts = {column["name"]: column for column in schema.get_columns("batch")}["attempts"]
    assert (attempts["nullable"], attempts["default"]) == (False, "'0'")
    with Session(engine) as session:
        assert session.exec(select(User.email)).all() == ["old@example.com"]
        assert session.exec(select(Batch.runner, Batch.attempts)).all() == [("threads", 0)]
    engine.dispose()
