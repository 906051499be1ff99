"""The Docker backend: its container settings (no engine needed) and its behaviour without one.

Running containers for real is covered by the contract and attack suites, which run on this
backend wherever a Docker engine answers; they are skipped with the reason elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from coditect.errors import SandboxUnavailableError
from coditect.sandbox.base import Sandbox, SandboxLimits, SandboxRequest
from coditect.sandbox.docker import DockerSandbox, container_options

docker = pytest.importorskip(
    "docker", reason="the Docker SDK is not installed (pip install docker)"
)


def _options(tmp_path: Path, *, stdin: Path | None = None, **limits: float) -> dict[str, object]:
    request = SandboxRequest(
        argv=("python", "-m", "pytest", "-q"), workdir=tmp_path, limits=SandboxLimits(**limits)
    )
    return container_options(
        request,
        workdir=tmp_path,
        image="python:3.12-slim",
        uid=1000,
        gid=1000,
        cpus=1.0,
        env=Sandbox.clean_env({"GIVEN": "yes"}),
        site={"/host/site/pytest": "/opt/coditect/site/pytest"},
        stdin_file=stdin,
    )


def test_container_is_confined(tmp_path: Path) -> None:
    options = _options(tmp_path, max_processes=32, max_memory_bytes=512 * 1024**2, cpu_s=7)
    assert options["network_disabled"] is True
    assert options["read_only"] is True
    assert options["cap_drop"] == ["ALL"]
    assert options["security_opt"] == ["no-new-privileges"]
    assert options["pids_limit"] == 32
    assert options["mem_limit"] == options["memswap_limit"] == 512 * 1024**2
    assert options["user"] == "1000:1000"
    assert options["working_dir"] == "/work"
    ulimits = {u["Name"]: (u["Soft"], u["Hard"]) for u in options["ulimits"]}  # type: ignore[attr-defined]
    assert ulimits["cpu"] == (7, 8)


def test_project_is_the_only_writable_mount(tmp_path: Path) -> None:
    volumes = _options(tmp_path)["volumes"]
    assert volumes == {
        str(tmp_path): {"bind": "/work", "mode": "rw"},
        "/host/site/pytest": {"bind": "/opt/coditect/site/pytest", "mode": "ro"},
    }


def test_environment_is_clean_and_finds_the_mounted_pytest(tmp_path: Path) -> None:
    env = _options(tmp_path)["environment"]
    assert env["PYTHONPATH"] == "/opt/coditect/site"  # type: ignore[index]
    assert env["GIVEN"] == "yes"  # type: ignore[index]
    assert not any("KEY" in name or "TOKEN" in name for name in env)  # type: ignore[union-attr]


def test_stdin_comes_from_a_read_only_file(tmp_path: Path) -> None:
    stdin = tmp_path / "stdin"
    options = _options(tmp_path, stdin=stdin)
    assert options["command"][:2] == ["sh", "-c"]  # type: ignore[index]
    assert options["volumes"][str(stdin)]["mode"] == "ro"  # type: ignore[index]


def test_node_commands_use_the_node_image() -> None:
    sandbox = DockerSandbox(image="py-img", node_image="node-img")
    assert sandbox.image_for(("npm", "test")) == "node-img"
    assert sandbox.image_for(("python", "-V")) == "py-img"


@pytest.mark.skipif(DockerSandbox.available(), reason="a Docker engine answers here")
async def test_without_an_engine_it_is_unavailable(tmp_path: Path) -> None:
    sandbox = DockerSandbox(base_url="unix:///nonexistent/docker.sock", ping_timeout_s=0.5)
    with pytest.raises(SandboxUnavailableError) as caught:
        await sandbox.run(SandboxRequest(argv=("python", "-V"), workdir=tmp_path))
    assert "Docker" in caught.value.hint


def test_the_sdk_accepts_every_option(tmp_path: Path) -> None:
    # The SDK's own translation into an engine request (no engine needed); a typo raises here.
    from docker.models.containers import _create_container_args

    args = _create_container_args({**_options(tmp_path), "version": "1.44"})
    host = args["host_config"]
    assert args["network_disabled"] is True
    assert host["ReadonlyRootfs"] is True
    assert host["PidsLimit"] == SandboxLimits().max_processes
    assert f"{tmp_path}:/work:rw" in host["Binds"]
