"""Seed chains (server/seeds.py): made with real randomness, served until used up."""

from __future__ import annotations

from pillarpayout_ws.engine.fairness import SeedChain, seed_hash
from pillarpayout_ws.server.seeds import create_chain, load_or_create_chain
from pillarpayout_ws.storage import Storage


async def test_a_chain_is_made_when_there_is_none_and_served_from_nonce_1(
    storage: Storage,
) -> None:
    source = await load_or_create_chain(storage.db, length=5, client_seed="salt")
    row = await storage.db.current_seed_chain()
    assert row is not None and (row.length, row.client_seed, row.last_nonce) == (5, "salt", 0)
    chain = SeedChain.from_top(row.top_seed, 5)
    assert chain.commitment == row.commitment
    first = source.next_round_seed()
    assert (first.nonce, first.client_seed) == (1, "salt")
    # Played from the end: the first round's seed hashes to the commitment.
    assert first.server_seed == chain.seed_for(1)
    assert seed_hash(first.server_seed) == row.commitment


async def test_the_existing_chain_is_kept_and_a_new_one_gets_a_random_salt(
    storage: Storage,
) -> None:
    made = await create_chain(storage.db, length=10, client_seed=None)
    assert len(made.client_seed) == 32  # 16 random bytes, hex
    again = await load_or_create_chain(storage.db, length=99, client_seed="ignored")
    assert again.next_round_seed().client_seed == made.client_seed
    other = await create_chain(storage.db, length=10, client_seed=None)
    assert (other.top_seed, other.client_seed) != (made.top_seed, made.client_seed)
