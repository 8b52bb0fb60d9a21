"""scripts/build_python.sh: verified sources, reused builds, dependencies named up front."""

import platform
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

BUILD_PYTHON = Path(__file__).parents[1] / "scripts" / "build_python.sh"


def pinned_version() -> str:
    """The CPython release the script pins, read from the script itself."""
    pinned = re.search(r"^readonly PY_VERSION=(\S+)$", BUILD_PYTHON.read_text(), re.MULTILINE)
    assert pinned is not None, "build_python.sh no longer pins PY_VERSION"
    return pinned[1]


PY_VERSION = pinned_version()


def run_build_python(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", BUILD_PYTHON, *args],
        env=env,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )


def test_it_refuses_a_tarball_whose_checksum_does_not_match(tmp_path: Path) -> None:
    fake_tarball = tmp_path / f"Python-{PY_VERSION}.tar.xz"
    fake_tarball.write_bytes(b"not the release")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "NOGIL_BENCH_CACHE_DIR": str(tmp_path / "cache"),
        "CPYTHON_TARBALL": str(fake_tarball),
    }

    result = run_build_python(env=env)

    assert result.returncode == 1
    assert "SHA-256 mismatch" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "cache" / f"cpython-{PY_VERSION}t").exists()


def test_it_refuses_a_tarball_that_does_not_exist(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "NOGIL_BENCH_CACHE_DIR": str(tmp_path),
        "CPYTHON_TARBALL": str(tmp_path / "missing.tar.xz"),
    }

    result = run_build_python(env=env)

    assert result.returncode == 1
    assert "missing.tar.xz: no such file" in result.stderr


@pytest.mark.skipif(
    platform.python_version() != PY_VERSION or not sysconfig.get_config_var("Py_GIL_DISABLED"),
    reason="reuse is checked against the interpreter the script builds",
)
def test_it_reuses_a_matching_build_without_building(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "NOGIL_BENCH_CACHE_DIR": str(tmp_path)}

    result = run_build_python("--prefix", sys.base_prefix, env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{sys.base_prefix}/bin/python3.14t"
    assert "building" not in result.stderr


def test_it_lists_the_debian_packages_the_build_needs() -> None:
    result = run_build_python("--deps", env={"PATH": "/usr/bin:/bin"})

    packages = result.stdout.split()
    assert {"build-essential", "libzstd-dev", "libssl-dev", "libsqlite3-dev"} <= set(packages)


def test_it_rejects_an_unknown_option() -> None:
    result = run_build_python("--fast", env={"PATH": "/usr/bin:/bin"})

    assert result.returncode == 1
    assert "unknown argument '--fast'" in result.stderr
