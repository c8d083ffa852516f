"""The Dockerfile exposes every standard port and runs unprivileged, checked statically. The image
is never built here: the build machines have no Docker daemon (docs/deploy.md says so)."""

from __future__ import annotations

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
