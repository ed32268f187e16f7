"""The ``pillarpayout`` command: serve, relay, verify, chain, audit, grant.

Every failure an operator can cause (bad URL, unwritable data dir, port in
use, missing wheel, unknown user) ends in one line on stderr and exit code 2;
a failed audit exits 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path

from .exceptions import ConfigError, PillarPayoutError

log = logging.getLogger("pillarpayout")

MAX_GRANT_CENTS = 10**12  # 10 billion units: anything larger is a typo


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


def _storage_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("./.pillarpayout"),
        help="where the embedded servers keep their data [./.pillarpayout]",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="PostgreSQL URL [env DATABASE_URL, else embedded]",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL"),
        help="Redis URL [env REDIS_URL, else embedded]",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pillarpayout", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default=os.environ.get("PILLARPAYOUT_LOG", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the game server")
    _storage_flags(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--betting-ms", type=int, default=5000)
    serve.add_argument("--tick-ms", type=int, default=100)
    serve.add_argument("--cooldown-ms", type=int, default=3000)
    serve.add_argument(
        "--starting-balance",
        type=int,
        default=100_000,
        help="cents granted to a new account [100000]",
    )
    serve.add_argument("--house-edge", type=float, default=1.0, help="percent [1.0]")
    serve.add_argument(
        "--client-seed",
        default=None,
        help="public salt of a new seed chain (generated and logged if absent)",
    )
    serve.add_argument(
        "--chain-length", type=int, default=100_000, help="rounds in a new seed chain [100000]"
    )
    serve.add_argument(
        "--flush-rounds",
        type=int,
        default=10,
        help="flush to PostgreSQL every N completed rounds [10]",
    )
    serve.add_argument(
        "--flush-interval-ms",
        type=int,
        default=1000,
        help="...or after this long, whichever comes first [1000]",
    )
    serve.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="accept browser connections only from this Origin (exact match; repeatable) [any]",
    )
    serve.add_argument(
        "--max-connections-per-ip",
        type=int,
        default=1000,
        help="open WebSockets per client address; loopback is exempt [1000]",
    )
    serve.add_argument(
        "--limit-loopback",
        action="store_true",
        help="apply the per-IP limits to loopback addresses too [off]",
    )
    serve.add_argument(
        "--broadcast-slice-ms",
        type=float,
        default=0.5,
        help="a broadcast other than a tick writes this long, then lets bets and cashouts "
        "in; 0: all at once [0.5]",
    )

    relay = sub.add_parser("relay", help="serve read-only spectator streams from Redis")
    relay.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL"),
        help="the game's Redis [env REDIS_URL, else the embedded one of a running serve]",
    )
    relay.add_argument(
        "--data-dir",
        type=Path,
        default=Path("./.pillarpayout"),
        help="with no Redis URL: the data dir of the running serve [./.pillarpayout]",
    )
    relay.add_argument("--host", default="127.0.0.1")
    relay.add_argument("--port", type=int, default=8766)
    relay.add_argument(
        "--reuse-port", action="store_true", help="share the port with other relays (SO_REUSEPORT)"
    )
    relay.add_argument(
        "--game-url",
        default="ws://127.0.0.1:8765/ws",
        help="where players play, named in read_only errors [ws://127.0.0.1:8765/ws]",
    )

    verify = sub.add_parser("verify", help="print the crash point of a round")
    verify.add_argument("--server-seed", required=True)
    verify.add_argument("--client-seed", required=True)
    verify.add_argument("--house-edge", type=float, default=1.0)

    chain = sub.add_parser("chain", help="create a new seed chain and print its commitment")
    _storage_flags(chain)
    chain.add_argument("--length", type=int, default=100_000)
    chain.add_argument("--client-seed", default=None)

    audit = sub.add_parser("audit", help="check the money invariants")
    _storage_flags(audit)

    grant = sub.add_parser("grant", help="credit a user through the ledger")
    _storage_flags(grant)
    grant.add_argument("username")
    grant.add_argument("amount", help="currency units, e.g. 25.00")
    return parser


def _verify(args: argparse.Namespace) -> int:
    from .engine.fairness import crash_point, format_multiplier

    seed = args.server_seed.strip().lower()
    if len(seed) != 64 or any(c not in "0123456789abcdef" for c in seed):
        raise ConfigError("--server-seed must be 64 hex digits")
    if not 0 <= args.house_edge < 100:
        raise ConfigError("--house-edge must be a percentage from 0 up to 100")
    try:
        args.client_seed.encode("ascii")
    except UnicodeEncodeError:
        raise ConfigError("--client-seed must be ASCII text") from None
    print(format_multiplier(crash_point(seed, args.client_seed, args.house_edge)))
    return 0


async def _chain(args: argparse.Namespace) -> int:
    from .server.seeds import create_chain
    from .storage import open_storage

    storage = await open_storage(
        data_dir=args.data_dir, database_url=args.database_url, redis_url=args.redis_url
    )
    try:
        row = await create_chain(storage.db, length=args.length, client_seed=args.client_seed)
    finally:
        await storage.close()
    print(f"chain {row.id}: {row.length} rounds")
    print(f"commitment (publish this): {row.commitment}")
    print(f"client seed: {row.client_seed}")
    return 0


async def _audit(args: argparse.Namespace) -> int:
    from .storage import open_storage
    from .storage.audit import audit

    storage = await open_storage(
        data_dir=args.data_dir, database_url=args.database_url, redis_url=args.redis_url
    )
    try:
        report = await audit(storage.db, storage.live)
    finally:
        await storage.close()
    print(report.render())
    return 0 if report.clean else 1


async def _grant(args: argparse.Namespace) -> int:
    from .server.grants import grant

    amount = parse_amount(args.amount)
    from .storage import open_storage

    storage = await open_storage(
        data_dir=args.data_dir, database_url=args.database_url, redis_url=args.redis_url
    )
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


async def _relay(args: argparse.Namespace) -> int:
    from .server.relay import relay_config_from_args, run_relay
    from .storage.embedded import EmbeddedServers

    url = args.redis_url
    if url is None:
        url = EmbeddedServers(args.data_dir).running_redis_url()
        if url is None:
            raise ConfigError(
                f"no Redis: give --redis-url, or run serve on --data-dir {args.data_dir} first"
            )
    return await run_relay(relay_config_from_args(args, url))


def _run(coro_fn: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace) -> int:
    import uvloop

    async def main() -> int:
        return await coro_fn(args)

    return uvloop.run(main())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # websockets logs every HTTP request and connection at INFO: far too much here.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        if args.command == "verify":
            return _verify(args)
        if args.command == "serve":
            from .server.app import serve_from_args

            return _run(serve_from_args, args)
        commands = {"chain": _chain, "audit": _audit, "grant": _grant, "relay": _relay}
        return _run(commands[args.command], args)
    except PillarPayoutError as exc:
        print(f"pillarpayout {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
