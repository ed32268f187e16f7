"""Seed chains: made with real randomness, published, salted by a seeding event, played.

The engine only computes; this module owns the secret top seed (``secrets``)
and the chains' rows in PostgreSQL. bustabit's seeding event, step by step:

1. ``pillarpayout chain`` makes a chain and stores it with its commitment (the
   hash the chain ends in), which ``/api/fairness`` publishes at once. It has
   no salt yet, so it cannot be played.
2. ``pillarpayout salt`` sets the salt (the client seed) once, for a chain
   never played, from a value the operator names in advance and does not
   control (a future block hash, say), with its source.
3. ``serve`` plays only salted chains: the newest with rounds left, from the
   nonce after the last one PostgreSQL holds (recovery has flushed every
   earlier round, void ones too, so no nonce is ever played twice); when it
   is used up, the newest other salted chain with rounds left (the runner
   announces the change with a ``fairness`` frame).

A round's seed is public once it crashes. Redis remembers the last round
opened on each chain (``pp:played``, never deleted); when a salted chain's
last nonce in PostgreSQL is behind it, PostgreSQL was restored to an earlier
point and the chain would replay seeds already published, so ``serve``
refuses to start until a new chain is made and salted. The remembered
round's seed hash must be the chain's own at that nonce, so a chain whose id
a restored database gave again to a new chain is not mistaken for it.

With no chain at all, ``serve`` makes and salts its own, and says so in
``client_seed_source`` and in the log: fine for development, not a seeding
event. With a chain that waits for its salt, it refuses to start.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping

from ..engine.errors import SeedChainExhausted
from ..engine.fairness import ChainSeedSource, RoundSeed, SeedChain, seed_hash
from ..exceptions import ConfigError
from ..protocol import Fairness
from ..storage.live import Played
from ..storage.postgres import CHOSEN_WITH_CHAIN, Database, SeedChainRow

__all__ = ["Chains", "create_chain", "load_chains", "salt_chain"]

log = logging.getLogger("pillarpayout.server")

DEVELOPMENT_SOURCE = "server random, development (no seeding event)"
MAX_CLIENT_SEED = 256


def check_client_seed(client_seed: str) -> str:
    """A salt is printable ASCII (the HMAC key), 1 to 256 characters."""
    if not (1 <= len(client_seed) <= MAX_CLIENT_SEED and client_seed.isascii()):
        raise ConfigError(f"must be 1 to {MAX_CLIENT_SEED} ASCII characters", setting="client_seed")
    if not client_seed.isprintable():
        raise ConfigError("must be printable", setting="client_seed")
    return client_seed


async def create_chain(
    db: Database, *, length: int, client_seed: str | None = None, source: str | None = None
) -> SeedChainRow:
    """Make and store a new chain; salted at once only when ``client_seed`` is given."""
    if length < 1:
        raise ConfigError("must be at least 1", setting="length")
    if client_seed is not None:
        check_client_seed(client_seed)
    top_seed = secrets.token_hex(32)
    chain = SeedChain.from_top(top_seed, length)
    chain_id = await db.create_seed_chain(top_seed, length, chain.commitment, client_seed, source)
    log.info("new seed chain %d: %d rounds, commitment %s", chain_id, length, chain.commitment)
    (row,) = [r for r in await db.seed_chains() if r.id == chain_id]
    return row


async def salt_chain(db: Database, chain_id: int, client_seed: str, source: str) -> None:
    """The seeding event's last step: the chain's salt, and where it came from."""
    check_client_seed(client_seed)
    if not source.strip():
        raise ConfigError("must say where the salt comes from", setting="source")
    await db.salt_seed_chain(chain_id, client_seed, source.strip())
    log.info("seed chain %d salted (%s)", chain_id, source.strip())


class Chains:
    """The engine's seed source: the salted chains this server plays (module docstring)."""

    def __init__(self, playable: list[SeedChainRow]) -> None:
        if not playable:
            raise ValueError("no salted chain with rounds left")
        # Newest last: the current chain is the last one.
        self._rows = sorted(playable, key=lambda r: r.id)
        self._source = self._open(self._rows[-1])

    @staticmethod
    def _open(row: SeedChainRow) -> ChainSeedSource:
        assert row.client_seed is not None
        return ChainSeedSource(
            SeedChain.from_top(row.top_seed, row.length),
            chain_id=row.id,
            client_seed=row.client_seed,
            next_nonce=row.last_nonce + 1,
        )

    @property
    def current(self) -> SeedChainRow:
        return self._rows[-1]

    def fairness(self, house_edge: float) -> Fairness:
        """What a client needs to check every round of the current chain."""
        row = self.current
        assert row.client_seed is not None and row.client_seed_source is not None
        return Fairness(
            row.id, row.commitment, row.length, row.client_seed, row.client_seed_source, house_edge
        )

    def next_round_seed(self) -> RoundSeed:
        try:
            return self._source.next_round_seed()
        except SeedChainExhausted:
            if len(self._rows) == 1:
                raise
        used = self._rows.pop()
        self._source = self._open(self._rows[-1])
        log.warning(
            "seed chain %d is used up: playing seed chain %d (commitment %s)",
            used.id,
            self.current.id,
            self.current.commitment,
        )
        return self._source.next_round_seed()

    def add(self, rows: list[SeedChainRow]) -> None:
        """Chains salted since the start, to play once the current one is used up."""
        known = {r.id for r in self._rows}
        fresh = [r for r in rows if r.id not in known and _playable(r)]
        if fresh:
            current = self._rows.pop()
            self._rows = [*sorted([*self._rows, *fresh], key=lambda r: r.id), current]
            log.info("seed chain(s) %s ready to play next", ", ".join(str(r.id) for r in fresh))


def _playable(row: SeedChainRow) -> bool:
    return row.client_seed is not None and row.rounds_left > 0


def _replayed(row: SeedChainRow, played: Mapping[int, Played]) -> str | None:
    """Why ``row`` must not be played from its next nonce, or None (module docstring)."""
    seen = played.get(row.id)
    if seen is None or not row.last_nonce < seen.nonce <= row.length:
        return None
    if seed_hash(SeedChain.from_top(row.top_seed, row.length).seed_for(seen.nonce)) != (
        seen.seed_hash
    ):
        return None  # another chain, which had this id before a restore
    return (
        f"seed chain {row.id} was played up to nonce {seen.nonce} (round {seen.round_id}), "
        f"as Redis remembers, but PostgreSQL's last round of it is nonce {row.last_nonce}: "
        "PostgreSQL was restored to an earlier point, and those rounds' seeds are public"
    )


def _not_replayed(playable: list[SeedChainRow], played: Mapping[int, Played]) -> list[SeedChainRow]:
    """``playable`` (oldest first) without the chains that would replay public seeds;
    refuses when the chain to play now is one."""
    kept = []
    for row in playable:
        why = _replayed(row, played)
        if why is None:
            kept.append(row)
        elif row is playable[-1]:
            raise ConfigError(
                f"{why}. Make and salt a new seed chain (pillarpayout chain, pillarpayout "
                "salt) before starting serve (README: PostgreSQL lost)"
            )
        else:
            log.warning("%s: it will not be played", why)
    return kept


async def load_chains(
    db: Database,
    *,
    length: int,
    client_seed: str | None,
    played: Mapping[int, Played] | None = None,
) -> Chains:
    """The chains to play (module docstring), making a development chain if there is
    none; ``played`` is what Redis remembers of each chain's last round."""
    rows = await db.seed_chains()
    playable = _not_replayed([r for r in rows if _playable(r)], played or {})
    if not playable:
        waiting = [r for r in rows if r.client_seed is None]
        if waiting:
            chain = waiting[-1]
            raise ConfigError(
                f"seed chain {chain.id} (commitment {chain.commitment}) waits for its salt: "
                f"pillarpayout salt --chain {chain.id} --client-seed VALUE --source TEXT"
            )
        salt = client_seed if client_seed is not None else secrets.token_hex(16)
        source = CHOSEN_WITH_CHAIN if client_seed is not None else DEVELOPMENT_SOURCE
        playable = [await create_chain(db, length=length, client_seed=salt, source=source)]
        log.warning("seed chain %d was salted by this server (%s)", playable[0].id, source)
    chains = Chains(playable)
    row = chains.current
    log.info(
        "serving seed chain %d (commitment %s, client seed %s: %s), %d round(s) left",
        row.id,
        row.commitment,
        row.client_seed,
        row.client_seed_source,
        row.rounds_left,
    )
    return chains
