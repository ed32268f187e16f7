"""The ``pillarpayout`` command: serve, relay, verify, chain, salt, audit, grant, adjust,
void-round.

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
from typing import TYPE_CHECKING

from .exceptions import ConfigError, PillarPayoutError
from .settings import add_flags, flag_name, from_args

if TYPE_CHECKING:
    from .storage import Storage

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


def build_parser() -> argparse.ArgumentParser:
    from .server.config import ServerConfig
    from .server.relay import RelayConfig
    from .storage import StorageConfig

    parser = argparse.ArgumentParser(prog="pillarpayout", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default=os.environ.get("PILLARPAYOUT_LOG", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)

    add_flags(sub.add_parser("serve", help="run the game server"), ServerConfig)
    add_flags(
        sub.add_parser("relay", help="serve read-only spectator streams from Redis"), RelayConfig
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
    add_flags(chain, StorageConfig)
    chain.add_argument("--length", type=int, default=100_000, help="rounds [100000]")
    chain.add_argument(
        "--client-seed",
        default=None,
        help="salt it at once with a value chosen now (no seeding event) [unsalted]",
    )

    salt = sub.add_parser(
        "salt", help="set a new chain's salt, once: the seeding event's last step"
    )
    add_flags(salt, StorageConfig)
    salt.add_argument("--chain", type=int, required=True, help="the chain's id")
    salt.add_argument(
        "--client-seed", required=True, help="the value named in advance (a future block hash)"
    )
    salt.add_argument("--source", required=True, help="where it comes from, published with it")

    audit = sub.add_parser("audit", help="check the money invariants")
    add_flags(audit, StorageConfig)

    grant = sub.add_parser("grant", help="credit a user through the ledger")
    add_flags(grant, StorageConfig)
    grant.add_argument("username")
    grant.add_argument("amount", help="currency units, e.g. 25.00")

    adjust = sub.add_parser(
        "adjust", help="credit or debit (a negative AMOUNT) a user through the ledger"
    )
    add_flags(adjust, StorageConfig)
    adjust.add_argument("username")
    adjust.add_argument("amount", help="currency units, signed: 5.00 or -5.00")
    adjust.add_argument("--reason", required=True, help="why: stored with the ledger row")

    void = sub.add_parser(
        "void-round",
        help="void the running server's round: cash-outs paid, other bets refunded",
    )
    add_flags(void, StorageConfig)
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


async def _adjust(args: argparse.Namespace) -> int:
    from .server.admin import MAX_REASON_LENGTH, adjust

    text = str(args.amount).strip()
    sign = -1 if text.startswith("-") else 1
    amount = sign * parse_amount(text.removeprefix("-"))
    reason = str(args.reason).strip()
    if not reason or len(reason) > MAX_REASON_LENGTH or "\x00" in reason:
        raise ConfigError(f"--reason must be 1 to {MAX_REASON_LENGTH} characters")
    storage = await _storage(args)
    try:
        user_id, balance, via = await adjust(
            storage, args.username, amount, reason, key=f"adjust:cli:{uuid.uuid4()}"
        )
    finally:
        await storage.close()
    verb = "credited" if amount > 0 else "debited"
    print(
        f"{verb} {abs(amount) / 100:.2f} to {args.username} (user {user_id}) {via}; "
        f"balance {balance / 100:.2f}"
    )
    return 0


async def _void_round(args: argparse.Namespace) -> int:
    from .server.admin import void_round

    storage = await _storage(args)
    try:
        round_id, refunded = await void_round(storage, key=f"void:cli:{uuid.uuid4()}")
    finally:
        await storage.close()
    print(f"round {round_id} voided: {refunded} bet(s) refunded; the next round is open")
    return 0


async def _storage(args: argparse.Namespace) -> Storage:
    from .storage import StorageConfig

    return await from_args(StorageConfig, args).open()


async def _serve(args: argparse.Namespace) -> int:
    from .server.app import run
    from .server.config import ServerConfig

    return await run(from_args(ServerConfig, args))


async def _relay(args: argparse.Namespace) -> int:
    from .server.relay import RelayConfig, run_relay
    from .storage.embedded import EmbeddedServers

    config = from_args(RelayConfig, args)
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
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # websockets logs every HTTP request and connection at INFO: far too much here.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        if args.command == "verify":
            return _verify(args)
        commands = {
            "serve": _serve,
            "chain": _chain,
            "salt": _salt,
            "audit": _audit,
            "grant": _grant,
            "adjust": _adjust,
            "void-round": _void_round,
            "relay": _relay,
        }
        return _run(commands[args.command], args)
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
