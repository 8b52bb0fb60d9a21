"""build_docker.sh, run_docker.sh and scripts/smoke_image.sh refuse bad arguments up front,
naming the problem.

The image itself is built and its test stage run by scripts/verify_docker.sh (called by .ci/run).
"""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", ROOT / script, *args], capture_output=True, text=True, check=False, timeout=30
    )


def test_build_docker_refuses_an_unknown_target_listing_the_valid_ones() -> None:
    result = run("build_docker.sh", "prod")

    assert result.returncode == 2
    assert "unknown target 'prod'; valid: production test app deps base builder" in result.stderr


def test_build_docker_refuses_a_tarball_that_does_not_exist(tmp_path: Path) -> None:
    result = run("build_docker.sh", "--tarball", str(tmp_path / "Python.tar.xz"))

    assert result.returncode == 2
    assert "Python.tar.xz: no such file" in result.stderr


@pytest.mark.parametrize("script", ["build_docker.sh", "run_docker.sh"])
def test_docker_scripts_document_their_options(script: str) -> None:
    result = run(script, "--help")

    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: ./{script}")


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_run_docker_refuses_a_port_that_is_not_a_tcp_port(port: str) -> None:
    result = run("run_docker.sh", "--port", port)

    assert result.returncode == 2
    assert f"--port {port} is not a TCP port" in result.stderr


def test_run_docker_refuses_a_missing_env_file(tmp_path: Path) -> None:
    result = run("run_docker.sh", "--env-file", str(tmp_path / "prod.env"))

    assert result.returncode == 2
    assert "prod.env: no such file" in result.stderr


def test_smoke_image_documents_its_options_and_refuses_unknown_ones() -> None:
    helped = run("scripts/smoke_image.sh", "--help")
    refused = run("scripts/smoke_image.sh", "--port", "8000")

    assert helped.returncode == 0
    assert helped.stdout.startswith("usage: scripts/smoke_image.sh [IMAGE]")
    assert refused.returncode == 2
    assert "unknown option '--port'" in refused.stderr
