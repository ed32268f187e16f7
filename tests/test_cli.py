from __future__ import annotations

import asyncio
import getpass
import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from pillarpayout_ws.cli import main, parse_amount
from pillarpayout_ws.exceptions import ConfigError
from pillarpayout_ws.storage import Storage

from .conftest import PILLARPAYOUT, SHARED
from .serving import pid_alive


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return subprocess.run(
        [*PILLARPAYOUT, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_verify_reproduces_the_public_vectors(capsys: pytest.CaptureFixture[str]) -> None:
    vectors = json.loads((SHARED / "vectors" / "fairness-public.json").read_text())["vectors"]
    for v in vectors:
        code = main(
            [
                "verify",
                "--server-seed",
                v["server_seed"],
                "--client-seed",
                v["client_seed"],
                "--house-edge",
                str(v["house_edge"]),
            ]
        )
        assert code == 0
        assert capsys.readouterr().out.strip() == f"{v['crash_point']:.2f}"


def test_verify_as_a_command() -> None:
    result = run_cli(
        "verify",
        "--server-seed",
        "6774ddd3dfe94e2c966d4ca5c5ed6dcd1f6a4fdab87ad12677ee7c5b96d6a3f5",
        "--client-seed",
        "0000000000000000004d6ec16dafe9d8370958664c1dc422f452892264c59526",
    )
    assert (result.returncode, result.stdout) == (0, "3.74\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["verify", "--server-seed", "xyz", "--client-seed", "a"], "64 hex digits"),
        (
            ["verify", "--server-seed", "ab" * 32, "--client-seed", "a", "--house-edge", "100"],
            "--house-edge",
        ),
        (["serve", "--data-dir", "/dev/null/x"], "not writable"),
        (["serve", "--broadcast-slice-ms", "-1"], "--broadcast-slice-ms must be 0 to 1000"),
        (
            [
                "audit",
                "--database-url",
                "postgresql://nobody:secret@127.0.0.1:1/x",
                "--redis-url",
                "redis://127.0.0.1:1",
            ],
            "cannot connect to PostgreSQL",
        ),
        (["grant", "--data-dir", "/dev/null/x", "bob", "1.001"], "more than two decimals"),
    ],
)
def test_bad_input_is_one_clear_line(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "secret" not in result.stderr  # passwords are masked
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("text", "cents"), [("25.00", 2500), ("25", 2500), ("0.01", 1), ("1e3", 100_000)]
)
def test_parse_amount(text: str, cents: int) -> None:
    assert parse_amount(text) == cents


@pytest.mark.parametrize("text", ["0", "-5", "abc", "NaN", "Infinity", "0.001", "1e20"])
def test_parse_amount_refuses(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_amount(text)


def test_grant_audit_and_chain_without_a_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run_cli("grant", "--data-dir", str(data), "nobody", "5.00")
    assert result.returncode == 2 and "no user named 'nobody'" in result.stderr
    assert run_cli("audit", "--data-dir", str(data)).returncode == 0
    chain = run_cli("chain", "--data-dir", str(data), "--length", "50", "--client-seed", "salt")
    assert chain.returncode == 0 and "commitment (publish this):" in chain.stdout
    # The command started the embedded servers for its own duration only.
    assert not (data / "redis" / "valkey.pid").exists() or not pid_alive(
        int((data / "redis" / "valkey.pid").read_text().split()[0])
    )


def test_the_seeding_event_from_the_command_line(tmp_path: Path) -> None:
    """chain publishes a commitment with no salt; serve refuses it until salt has run;
    salt works once."""
    data = ["--data-dir", str(tmp_path / "data")]
    chain = run_cli("chain", *data, "--length", "10")
    assert chain.returncode == 0, chain.stderr
    assert "no salt yet" in chain.stdout and "pillarpayout salt --chain 1" in chain.stdout
    serve = run_cli("serve", *data, "--port", "0")
    assert serve.returncode == 2
    assert "seed chain 1" in serve.stderr and "waits for its salt" in serve.stderr
    salt = ("salt", *data, "--chain", "1", "--client-seed", "block-880000")
    first = run_cli(*salt, "--source", "bitcoin block 880000")
    assert first.returncode == 0 and "chain 1 salted" in first.stdout
    again = run_cli(*salt, "--source", "again")
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1] == (
        "pillarpayout salt: seed chain 1 already has its salt"
    )


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run_cli("serve", "--data-dir", str(tmp_path / "d"), "--port", str(port))
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr


def test_print_config_shows_sources_and_masks_secrets(tmp_path: Path) -> None:
    config = tmp_path / "pp.toml"
    config.write_text(
        'betting_ms = 2000\nport = 9000\n[serve]\nredis_url = "redis://:sesame@10.0.0.1:6379/0"\n'
        "[relay]\nport = 9001\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PILLARPAYOUT_")},
        "DATABASE_URL": "postgresql://bob:hunter2@db.example/pp",
        "PILLARPAYOUT_TICK_MS": "50",
        "PILLARPAYOUT_CONFIG": str(config),
    }
    result = subprocess.run(
        [*PILLARPAYOUT, "serve", "--port", "9100", "--exempt-loopback", "--print-config"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = dict(
        line.split(" = ", 1) for line in result.stdout.splitlines() if not line.startswith("#")
    )
    assert lines["port"] == "9100  # flag"
    assert lines["exempt_loopback"] == "true  # flag"
    assert lines["tick_ms"] == "50  # env PILLARPAYOUT_TICK_MS"
    assert lines["betting_ms"] == f"2000  # file {config}"
    assert lines["database_url"] == '"postgresql://bob:***@db.example/pp"  # env DATABASE_URL'
    assert lines["redis_url"] == f'"redis://:***@10.0.0.1:6379/0"  # file {config}'
    assert lines["cooldown_ms"] == "3000  # default"
    assert "hunter2" not in result.stdout and "sesame" not in result.stdout
    assert not (tmp_path / ".pillarpayout").exists()  # nothing started
    relay = subprocess.run(
        [*PILLARPAYOUT, "relay", "--print-config"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert relay.returncode == 0 and f"port = 9001  # file {config}" in relay.stdout


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("bettingms = 1", "unknown key 'bettingms' in {file}: no such setting"),
        ("[serve]\ntick_ms = 'fast'", "[serve] tick_ms in {file} must be an integer"),
        ("[serve]\nport = 70000", "port in {file} must be 0 to 65535"),
        ("port = ", "config file {file} is not TOML"),
    ],
)
def test_a_bad_config_file_is_one_line_and_exit_2(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "pp.toml").write_text(toml)
    result = run_cli("serve", "--config", str(tmp_path / "pp.toml"), "--print-config")
    assert result.returncode == 2
    assert result.stderr.startswith("pillarpayout serve: ")
    assert message.format(file=tmp_path / "pp.toml") in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    missing = run_cli("audit", "--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


async def run_cli_async(*args: str) -> tuple[int, str, str]:
    """``run_cli`` from an async test (the event loop keeps serving meanwhile)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    proc = await asyncio.create_subprocess_exec(
        *PILLARPAYOUT,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def storage_flags(storage: Storage) -> list[str]:
    return ["--database-url", storage.db.url, "--redis-url", storage.live.url]


async def test_moderation_commands_without_a_server(storage: Storage) -> None:
    from .storage.helpers import make_users

    (user,) = await make_users(storage, 1)
    flags = storage_flags(storage)
    name = user.username
    expected = {
        ("role", name, "moderator"): f"{name} is now moderator",
        ("mute", name, "5", "--reason", "spam"): f"{name} is muted for 5 minute(s)",
        ("unmute", name): f"{name} is no longer muted",
        ("ban", name, "--reason", "cheating"): f"{name} is banned",
        ("unban", name): f"{name} is no longer banned",
    }
    for args, said in expected.items():
        code, out, err = await run_cli_async(args[0], *flags, *args[1:])
        assert code == 0, err
        assert out == f"{said} (user {user.id}) in PostgreSQL (no server running)\n"
    rows = await storage.db.fetch(
        "SELECT actor, action, target, reason, role FROM moderation_log ORDER BY id"
    )
    assert [(r["action"], r["target"], r["reason"], r["role"]) for r in rows] == [
        ("role", name, "", "moderator"),
        ("mute", name, "spam", None),
        ("unmute", name, "", None),
        ("ban", name, "cheating", None),
        ("unban", name, "", None),
    ]
    assert {r["actor"] for r in rows} == {f"cli:{getpass.getuser()}"}
    for args, message in (
        (("ban", "nobody"), "no user named 'nobody'"),
        (("mute", name, "0"), "minutes must be 1 to 43200"),
        (("mute", name, "99999"), "minutes must be 1 to 43200"),
    ):
        code, out, err = await run_cli_async(args[0], *flags, *args[1:])
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    code, _, err = await run_cli_async("role", *flags, name, "king")
    assert code == 2 and "invalid choice" in err
    assert len(await storage.db.fetch("SELECT 1 FROM moderation_log")) == 5
