from pathlib import Path

import pytest
from pydantic import ValidationError

from nogil_bench.core.config import Settings


def test_settings_come_from_prefixed_environment_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NOGIL_BENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NOGIL_BENCH_PORT", "9001")
    monkeypatch.setenv("DATA_DIR", "/not/this/one")

    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    assert settings.DATA_DIR == tmp_path
    assert settings.PORT == 9001


def test_settings_read_an_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("NOGIL_BENCH_LOG_LEVEL=DEBUG\nUNRELATED=ignored\n")

    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]

    assert settings.LOG_LEVEL == "DEBUG"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NOGIL_BENCH_PORT", "70000"),
        ("NOGIL_BENCH_ENVIRONMENT", "staging"),
        ("NOGIL_BENCH_FILE_STORE", "s3"),
        ("NOGIL_BENCH_REGISTER_RATE_LIMIT", "ten a minute"),
        ("NOGIL_BENCH_ARGON2_MEMORY_KIB", "4"),  # Argon2 needs 8 KiB a lane
    ],
)
def test_invalid_settings_are_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValidationError, match=variable.removeprefix("NOGIL_BENCH_")):
        Settings(_env_file=None)  # type: ignore[call-arg]
