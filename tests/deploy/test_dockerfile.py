"""The Dockerfile exposes every standard port and runs unprivileged; it is built only where a
Docker daemon answers (the build machines have none, so the image is untested there)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from mailcove.config.settings import LISTENER_PORTS
from mailcove_testing import REPO

DOCKERFILE = REPO / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    out = []
    for line in DOCKERFILE.read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_exposes_the_standard_ports_and_runs_unprivileged() -> None:
    ins = _instructions()
    assert ins[0] == ("FROM", "python:3.11-slim")
    exposed = {int(p) for word, rest in ins if word == "EXPOSE" for p in rest.split()}
    assert exposed == {std for std, _ in LISTENER_PORTS.values()}
    users = [rest for word, rest in ins if word == "USER"]
    assert users == ["mailcove"]
    assert ("VOLUME", '["/var/lib/mailcove"]') in ins


def test_docker_build() -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("no Docker daemon here: the image is not built (docs/deploy.md says it is untested)")
    r = subprocess.run([docker, "build", "-q", "-t", "mailcove-test", str(REPO)], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr
