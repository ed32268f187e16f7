"""deploy/: the commands the Dockerfile, compose.yaml and the systemd unit run are
real ``pillarpayout`` commands with real flags, and the durability settings are there.

Nothing here builds an image or starts a unit (README, "Deployment", says what was
checked by hand). compose.yaml writes every ``command:`` as a JSON array, so it is
read here without a YAML parser (PyYAML is not a dependency).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from pillarpayout_ws.cli import build_parser

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def parses(argv: list[str]) -> None:
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way of refusing
        pytest.fail(f"pillarpayout does not take {argv}: exit {exc.code}")


def compose_commands() -> dict[str, list[str]]:
    """service name -> its ``command:`` (a JSON array on one line)."""
    commands: dict[str, list[str]] = {}
    service = None
    for line in (DEPLOY / "compose.yaml").read_text().splitlines():
        if m := re.match(r"^  ([a-z][a-z0-9_-]*):\s*$", line):
            service = m.group(1)
        elif (m := re.match(r"^    command:\s*(.+)$", line)) and service is not None:
            commands[service] = json.loads(m.group(1))
    return commands


def test_compose_runs_real_commands_and_redis_appendonly() -> None:
    commands = compose_commands()
    assert set(commands) == {"redis", "pillarpayout", "relay"}
    assert commands["pillarpayout"][0] == "serve" and commands["relay"][0] == "relay"
    for name in ("pillarpayout", "relay"):
        parses(commands[name])
    redis = commands["redis"]
    assert redis[redis.index("--appendonly") + 1] == "yes"
    text = (DEPLOY / "compose.yaml").read_text()
    for needed in ("DATABASE_URL: postgresql://", "REDIS_URL: redis://", "/healthz", "volumes:"):
        assert needed in text


def test_the_image_runs_serve_as_a_user_and_checks_healthz() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1))  # type: ignore[union-attr]
    cmd = json.loads(re.search(r"^CMD (.+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert entry == ["pillarpayout"]
    parses(cmd)
    assert re.search(r"^USER pillarpayout$", text, re.M)
    assert (
        "HEALTHCHECK" in text and "/healthz" in text and "curl" not in text.split("HEALTHCHECK")[1]
    )
    assert "python:3.11" in text  # pyproject.toml: requires-python >= 3.11


def test_the_unit_runs_serve_behind_the_proxy_and_restarts() -> None:
    text = (DEPLOY / "systemd" / "pillarpayout.service").read_text()
    settings = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and line[:1] != "#"
    )
    argv = shlex.split(settings["ExecStart"])
    assert argv[0].endswith("/pillarpayout")
    parses(argv[1:])
    assert argv[argv.index("--trusted-proxy") + 1] == "127.0.0.1/32"
    assert settings["Restart"] == "on-failure"
    assert settings["EnvironmentFile"].startswith("/etc/pillarpayout/")
    assert settings["NoNewPrivileges"] == "yes" and settings["ProtectSystem"] == "strict"
    env = (DEPLOY / "systemd" / "pillarpayout.env").read_text()
    assert "DATABASE_URL=" in env and "REDIS_URL=" in env


def test_nginx_upgrades_websockets_and_forwards_the_address() -> None:
    text = (DEPLOY / "nginx" / "pillarpayout.conf").read_text()
    assert "proxy_set_header Upgrade $http_upgrade;" in text
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in text
    assert "listen 443 ssl;" in text and "proxy_pass http://127.0.0.1:8765" not in text
    assert "server 127.0.0.1:8765;" in text
