"""The ``pillarpayout`` command: serve, relay, verify, chain, salt, audit, grant,
role, ban, unban, mute, unmute.

Every failure an operator can cause (bad URL, unwritable data dir, port in
use, missing wheel, unknown user, a bad environment variable or config file)
ends in one line on stderr and exit code 2; a failed audit exits 1.

Settings come from flags, the environment and a TOML file (``--config``), in
that order (``settings.py``); ``serve --print-config`` and ``relay
--print-config`` show the result and where each value came from.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeVar

from .exceptions import ConfigError, PillarPayoutError
from .logs import MASKED, LogConfig, secret_name, setup
from .settings import (
    ConfigFile,
    add_flags,
    config_path,
    flag_name,
    resolve,
    values_of,
)
from .storage import StorageConfig
from .storage.live import _mask

if TYPE_CHECKING:
    from .storage import Storage

log = logging.getLogger("pillarpayout")

MAX_GRANT_CENTS = 10**12  # 10 billion units: anything larger is a typo
T = TypeVar("T")
EPILOG = (
    "Every setting is also read from the environment, as PILLARPAYOUT_ and its name "
    "(the name --print-config shows, upper case: PILLARPAYOUT_BETTING_MS), and from the "
    "TOML file of --config (or PILLARPAYOUT_CONFIG): a flag wins over the environment, "
    "which wins over the file, which wins over the default."
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolConfig:
    """The settings of chain, salt, audit and grant: where the storage is, and the logs."""

    storage: StorageConfig = field(default_factory=StorageConfig)
    logs: LogConfig = field(default_factory=LogConfig)


def commands() -> dict[str, type[Any]]:
    """Each command that reads settings (and a config file's ``[table]``), and its class."""
    from .server.config import ServerConfig
    from .server.relay import RelayConfig

    tool = {name: ToolConfig for name in ("chain", "salt", "audit", "grant")}
    return {"serve": ServerConfig, "relay": RelayConfig, **tool}


def parse_amount(text: str) -> int:
    """``"25.00"`` -> 2500 cents; refuses zero, negatives, fractions of a cent and junk."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ConfigError(f"amount {text!r} is not a number like 25.00") from None
    if not value.is_finite() or value <= 0:
        raise ConfigError(f"amount {text!r} must be a positive number like 25.00")
    cents = value * 100
    if cents != cents.to_integral_value():
        raise ConfigError(f"amount {text!r} has more than two decimals")
    if cents > MAX_GRANT_CENTS:
        raise ConfigError(f"amount {text!r} is larger than {MAX_GRANT_CENTS // 100}")
    return int(cents)


def build_parser() -> argparse.ArgumentParser:
    from .server.config import ServerConfig
    from .server.relay import RelayConfig

    parser = argparse.ArgumentParser(
        prog="pillarpayout",
        description=__doc__.splitlines()[0],
        epilog=EPILOG,
    )
    parser.add_argument(
        "--log-level",
        default=argparse.SUPPRESS,
        help="DEBUG, INFO, WARNING or ERROR [env PILLARPAYOUT_LOG, else INFO]",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    for name, cls, text in (
        ("serve", ServerConfig, "run the game server"),
        ("relay", RelayConfig, "serve read-only spectator streams from Redis"),
    ):
        command = sub.add_parser(name, help=text, epilog=EPILOG)
        add_flags(command, cls)
        command.add_argument(
            "--print-config",
            action="store_true",
            help="print every setting, its value and where it came from; start nothing",
        )

    verify = sub.add_parser(
        "verify",
        help="print the crash point of a round, or check every round a server published",
    )
    verify.add_argument("--server-seed")
    verify.add_argument("--client-seed")
    verify.add_argument("--house-edge", type=float, default=1.0, help="percent [1.0]")
    verify.add_argument(
        "--url", help="check every round published by the server at http://HOST:PORT"
    )

    chain = sub.add_parser(
        "chain", help="create a new seed chain and print its commitment (salt it with salt)"
    )
    add_flags(chain, ToolConfig)
    chain.add_argument("--length", type=int, default=100_000, help="rounds [100000]")
    chain.add_argument(
        "--client-seed",
        default=None,
        help="salt it at once with a value chosen now (no seeding event) [unsalted]",
    )

    salt = sub.add_parser(
        "salt", help="set a new chain's salt, once: the seeding event's last step"
    )
    add_flags(salt, ToolConfig)
    salt.add_argument("--chain", type=int, required=True, help="the chain's id")
    salt.add_argument(
        "--client-seed", required=True, help="the value named in advance (a future block hash)"
    )
    salt.add_argument("--source", required=True, help="where it comes from, published with it")

    audit = sub.add_parser("audit", help="check the money invariants", epilog=EPILOG)
    add_flags(audit, ToolConfig)

    grant = sub.add_parser("grant", help="credit a user through the ledger", epilog=EPILOG)
    add_flags(grant, ToolConfig)
    grant.add_argument("username")
    grant.add_argument("amount", help="currency units, e.g. 25.00")

    # Moderation from the command line (server/moderation.py): through the running
    # server when one is up, else in PostgreSQL; logged as cli:<os user>.
    role = sub.add_parser(
        "role", help="set a user's role: player, moderator or admin", epilog=EPILOG
    )
    add_flags(role, ToolConfig)
    role.add_argument("username")
    role.add_argument("role", choices=["player", "moderator", "admin"])
    ban = sub.add_parser("ban", help="ban a user: no login, their sockets closed", epilog=EPILOG)
    unban = sub.add_parser("unban", help="lift a user's ban", epilog=EPILOG)
    mute = sub.add_parser("mute", help="refuse a user's chat for MINUTES", epilog=EPILOG)
    unmute = sub.add_parser("unmute", help="end a user's mute", epilog=EPILOG)
    for command in (ban, unban, mute, unmute):
        add_flags(command, ToolConfig)
        command.add_argument("username")
        if command is mute:
            command.add_argument("minutes", type=int, help="1 to 43200 (30 days)")
        command.add_argument("--reason", default="", help="logged with the action")
    return parser


def _verify(args: argparse.Namespace) -> int:
    from .engine.fairness import crash_point, format_multiplier

    if args.url is not None:
        from .verifier import verify_url

        return 1 if verify_url(args.url) else 0
    if args.server_seed is None or args.client_seed is None:
        raise ConfigError("give --server-seed and --client-seed, or --url")
    seed = args.server_seed.strip().lower()
    if len(seed) != 64 or any(c not in "0123456789abcdef" for c in seed):
        raise ConfigError("--server-seed must be 64 hex digits")
    try:
        args.client_seed.encode("ascii")
    except UnicodeEncodeError:
        raise ConfigError("--client-seed must be ASCII text") from None
    print(format_multiplier(crash_point(seed, args.client_seed, args.house_edge)))
    return 0


async def _chain(args: argparse.Namespace) -> int:
    from .server.seeds import create_chain

    storage = await _storage(args)
    try:
        row = await create_chain(storage.db, length=args.length, client_seed=args.client_seed)
    finally:
        await storage.close()
    print(f"chain {row.id}: {row.length} rounds")
    print(f"commitment (publish this): {row.commitment}")
    if row.client_seed is None:
        print(
            "no salt yet: announce the seeding event (a value nobody knows yet, e.g. a future "
            f"block hash), then: pillarpayout salt --chain {row.id} --client-seed VALUE "
            "--source TEXT"
        )
    else:
        print(f"client seed: {row.client_seed} ({row.client_seed_source})")
    return 0


async def _salt(args: argparse.Namespace) -> int:
    from .server.seeds import salt_chain

    storage = await _storage(args)
    try:
        await salt_chain(storage.db, args.chain, args.client_seed, args.source)
    finally:
        await storage.close()
    print(f"chain {args.chain} salted with {args.client_seed!r} ({args.source})")
    return 0


async def _audit(args: argparse.Namespace) -> int:
    from .storage.audit import audit

    storage = await _storage(args)
    try:
        report = await audit(storage.db, storage.live)
    finally:
        await storage.close()
    print(report.render())
    return 0 if report.clean else 1


async def _grant(args: argparse.Namespace) -> int:
    from .server.grants import grant

    amount = parse_amount(args.amount)
    storage = await _storage(args)
    try:
        user_id, balance, via = await grant(
            storage, args.username, amount, key=f"grant:cli:{uuid.uuid4()}"
        )
    finally:
        await storage.close()
    print(
        f"granted {amount / 100:.2f} to {args.username} (user {user_id}) {via}; "
        f"balance {balance / 100:.2f}"
    )
    return 0


async def _moderate(args: argparse.Namespace) -> int:
    import getpass

    from .protocol import MAX_MUTE_MINUTES, MAX_REASON_LENGTH
    from .server.moderation import moderate

    minutes: int | None = getattr(args, "minutes", None)
    if minutes is not None and not 1 <= minutes <= MAX_MUTE_MINUTES:
        raise ConfigError(f"minutes must be 1 to {MAX_MUTE_MINUTES} (30 days)")
    reason = getattr(args, "reason", "")
    if len(reason) > MAX_REASON_LENGTH:
        raise ConfigError(f"--reason is at most {MAX_REASON_LENGTH} characters")
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = str(os.getuid())
    storage = await _storage(args)
    try:
        outcome, via = await moderate(
            storage,
            args.command,
            args.username,
            actor=f"cli:{who}",
            reason=reason,
            minutes=minutes,
            role=getattr(args, "role", None),
        )
    finally:
        await storage.close()
    done = {
        "role": f"{outcome.username} is now {outcome.role}",
        "ban": f"{outcome.username} is banned",
        "unban": f"{outcome.username} is no longer banned",
        "mute": f"{outcome.username} is muted for {minutes} minute(s)",
        "unmute": f"{outcome.username} is no longer muted",
    }[args.command]
    print(f"{done} (user {outcome.user_id}) {via}")
    return 0


def _settings(cls: type[T], args: argparse.Namespace) -> T:
    config, sources = resolve(cls, args, args.config_file)
    if getattr(args, "print_config", False):
        print_config(args.command, config, sources)
        raise _Printed
    return config


class _Printed(Exception):
    """--print-config printed the configuration: exit 0, start nothing."""


def print_config(command: str, config: Any, sources: dict[str, str]) -> None:
    """Each setting as a line of TOML (fit for --config) with its source; URLs
    without their passwords, secrets masked, unset settings commented out."""
    print(f"# pillarpayout {command}: flag > environment > config file > default")
    for name, value in values_of(config).items():
        source = sources.get(name, "default")
        if value is None:
            print(f"# {name} = (none)  # {source}")
            continue
        if secret_name(name):
            value = MASKED
        elif isinstance(value, str) and name.endswith("_url"):
            value = _mask(value)
        print(f"{name} = {_toml(value)}  # {source}")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


async def _storage(args: argparse.Namespace) -> Storage:
    return await _settings(ToolConfig, args).storage.open()


async def _serve(args: argparse.Namespace) -> int:
    from .server.app import run
    from .server.config import ServerConfig

    return await run(_settings(ServerConfig, args))


async def _relay(args: argparse.Namespace) -> int:
    from .server.relay import RelayConfig, run_relay
    from .storage.embedded import EmbeddedServers

    config = _settings(RelayConfig, args)
    url = config.redis_url
    if url is None:
        url = EmbeddedServers(config.data_dir).running_redis_url()
        if url is None:
            raise ConfigError(
                f"no Redis: give --redis-url, or run serve on --data-dir {config.data_dir} first"
            )
    return await run_relay(config, url)


def _run(coro_fn: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace) -> int:
    import uvloop

    async def main() -> int:
        return await coro_fn(args)

    return uvloop.run(main())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        path = config_path(args)
        known = commands()
        args.config_file = (
            ConfigFile.read(path, args.command, known)
            if path is not None and args.command in known
            else None
        )
        setup(resolve(LogConfig, args, args.config_file)[0])
        if args.command == "verify":
            return _verify(args)
        handlers = {
            "serve": _serve,
            "chain": _chain,
            "salt": _salt,
            "audit": _audit,
            "grant": _grant,
            "relay": _relay,
            "role": _moderate,
            "ban": _moderate,
            "unban": _moderate,
            "mute": _moderate,
            "unmute": _moderate,
        }
        return _run(handlers[args.command], args)
    except _Printed:
        return 0
    except PillarPayoutError as exc:
        message = str(exc)
        if isinstance(exc, ConfigError) and exc.setting is not None:
            message = f"{flag_name(exc.setting)} {exc.reason}"
        print(f"pillarpayout {args.command}: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
