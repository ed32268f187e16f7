"""Seed chains: created with real randomness here, played by the engine.

The engine only computes; this module owns the secret top seed (``secrets``)
and the chain's row in PostgreSQL. A chain is played from nonce 1 upwards;
the first nonce not yet in PostgreSQL is the next round's (recovery has
flushed every earlier round by the time the server starts, void ones too, so
no nonce is ever played twice).
"""

from __future__ import annotations

import logging
import secrets

from ..engine.fairness import ChainSeedSource, SeedChain
from ..storage.postgres import Database, SeedChainRow

log = logging.getLogger("pillarpayout.server")


async def create_chain(db: Database, *, length: int, client_seed: str | None) -> SeedChainRow:
    """Generate and store a new chain; the newest chain is the one served."""
    if length < 1:
        raise ValueError("a seed chain needs at least one round")
    top_seed = secrets.token_hex(32)
    chain = SeedChain.from_top(top_seed, length)
    salt = client_seed if client_seed is not None else secrets.token_hex(16)
    chain_id = await db.create_seed_chain(top_seed, length, chain.commitment, salt)
    log.info(
        "new seed chain %d: %d rounds, commitment %s, client seed %s",
        chain_id,
        length,
        chain.commitment,
        salt,
    )
    return SeedChainRow(chain_id, top_seed, length, chain.commitment, salt, 0)


async def load_or_create_chain(
    db: Database, *, length: int, client_seed: str | None
) -> ChainSeedSource:
    """The engine's seed source over the newest chain if it has rounds left, else a new one."""
    row = await db.current_seed_chain()
    if row is None or row.last_nonce >= row.length:
        row = await create_chain(db, length=length, client_seed=client_seed)
    log.info(
        "serving seed chain %d (commitment %s), %d round(s) left",
        row.id,
        row.commitment,
        row.length - row.last_nonce,
    )
    return ChainSeedSource(
        SeedChain.from_top(row.top_seed, row.length),
        chain_id=row.id,
        client_seed=row.client_seed,
        next_nonce=row.last_nonce + 1,
    )
