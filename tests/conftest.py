from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nogil_bench.core.config import Settings
from nogil_bench.main import create_app


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # bcrypt's minimum cost: hashing at the production cost would dominate the suite's time.
    return Settings(DATA_DIR=tmp_path / "data", BCRYPT_ROUNDS=4, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client
