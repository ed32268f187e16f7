"""Seed chains (server/seeds.py): made, published, salted once by a seeding event, played."""

from __future__ import annotations

import pytest

from pillarpayout_ws.engine.errors import SeedChainExhausted
from pillarpayout_ws.engine.fairness import SeedChain, seed_hash
from pillarpayout_ws.engine.records import RoundOpened
from pillarpayout_ws.exceptions import ConfigError
from pillarpayout_ws.server.app import App
from pillarpayout_ws.server.clock import ManualClock
from pillarpayout_ws.server.seeds import (
    DEVELOPMENT_SOURCE,
    Chains,
    create_chain,
    load_chains,
    salt_chain,
)
from pillarpayout_ws.storage import Storage

from .conftest import ManualGame, fast_config, start_game


async def test_a_new_chain_is_published_unsalted_and_cannot_be_played(storage: Storage) -> None:
    row = await create_chain(storage.db, length=5)
    assert (row.client_seed, row.client_seed_source, row.salted_at) == (None, None, None)
    assert SeedChain.from_top(row.top_seed, 5).commitment == row.commitment
    with pytest.raises(ConfigError, match=f"seed chain {row.id} .* waits for its salt"):
        await load_chains(storage.db, length=5, client_seed=None)


async def test_the_seeding_event_salts_once(storage: Storage) -> None:
    row = await create_chain(storage.db, length=5)
    await salt_chain(storage.db, row.id, "0000000000000000000301e2", "bitcoin block 880000")
    with pytest.raises(ConfigError, match="already has its salt"):
        await salt_chain(storage.db, row.id, "another", "second thoughts")
    with pytest.raises(ConfigError, match="no seed chain 999"):
        await salt_chain(storage.db, 999, "x", "y")
    with pytest.raises(ConfigError, match="ASCII"):
        await salt_chain(storage.db, row.id, "sél", "y")
    chains = await load_chains(storage.db, length=5, client_seed=None)
    first = chains.next_round_seed()
    assert (first.chain_id, first.nonce, first.client_seed) == (
        row.id,
        1,
        "0000000000000000000301e2",
    )
    # Played from the end: the first round's seed hashes to the commitment.
    assert seed_hash(first.server_seed) == row.commitment
    fairness = chains.fairness(1.0)
    assert (fairness.client_seed_source, fairness.chain_length) == ("bitcoin block 880000", 5)


async def test_a_chain_already_played_cannot_be_salted(storage: Storage) -> None:
    row = await create_chain(storage.db, length=5)
    await storage.db.execute(
        "INSERT INTO rounds (id, chain_id, nonce, seed_hash, client_seed, house_edge, status) "
        "VALUES (1, $1, 1, $2, 'x', 1, 'void')",
        row.id,
        "00" * 32,
    )
    with pytest.raises(ConfigError, match="has been played"):
        await salt_chain(storage.db, row.id, "late", "too late")


async def test_with_no_chain_at_all_the_server_salts_its_own_and_says_so(storage: Storage) -> None:
    chains = await load_chains(storage.db, length=7, client_seed=None)
    assert chains.current.client_seed_source == DEVELOPMENT_SOURCE
    assert len(chains.current.client_seed or "") == 32  # 16 random bytes, hex
    again = await load_chains(storage.db, length=99, client_seed="ignored")
    assert again.current.id == chains.current.id  # the same chain, resumed


async def test_a_used_up_chain_hands_over_to_the_next_salted_one(storage: Storage) -> None:
    old = await create_chain(storage.db, length=2, client_seed="first")
    new = await create_chain(storage.db, length=3, client_seed="second")
    chains = await load_chains(storage.db, length=5, client_seed=None)
    assert chains.current.id == new.id  # the newest is played first
    assert [chains.next_round_seed().nonce for _ in range(3)] == [1, 2, 3]
    after = chains.next_round_seed()
    assert (after.chain_id, after.nonce, after.client_seed) == (old.id, 1, "first")
    chains.next_round_seed()
    with pytest.raises(SeedChainExhausted):
        chains.next_round_seed()


async def test_chains_salted_while_serving_are_played_next(storage: Storage) -> None:
    current = await create_chain(storage.db, length=1, client_seed="now")
    chains = Chains([current])
    later = await create_chain(storage.db, length=2)
    chains.add(await storage.db.seed_chains())  # not salted yet: not playable
    chains.next_round_seed()
    with pytest.raises(SeedChainExhausted):
        chains.next_round_seed()
    await salt_chain(storage.db, later.id, "later", "block")
    chains.add(await storage.db.seed_chains())
    assert chains.next_round_seed().chain_id == later.id


async def opened_in_redis(storage: Storage, chain_id: int, nonce: int, seed: str) -> None:
    """What a server's write-ahead says when it opens round ``100 + nonce`` of a chain."""
    record = RoundOpened(100 + nonce, chain_id, nonce, seed_hash(seed), "salt", 1.0)
    await storage.live.commit([record])


async def test_a_chain_redis_saw_played_further_than_postgresql_is_not_played(
    storage: Storage,
) -> None:
    """PostgreSQL restored to an earlier point: the next nonces' seeds are public."""
    old = await create_chain(storage.db, length=5, client_seed="old")
    current = await create_chain(storage.db, length=5, client_seed="current")
    for row in (old, current):
        seed = SeedChain.from_top(row.top_seed, 5).seed_for(2)
        await opened_in_redis(storage, row.id, 2, seed)
    played = await storage.live.played()
    assert (played[current.id].nonce, played[current.id].round_id) == (2, 102)
    with pytest.raises(ConfigError, match=f"seed chain {current.id} was played up to nonce 2 "):
        await load_chains(storage.db, length=5, client_seed=None, played=played)

    # A new chain is played; the old ones never again.
    newest = await create_chain(storage.db, length=5, client_seed="new")
    chains = await load_chains(storage.db, length=5, client_seed=None, played=played)
    assert chains.current.id == newest.id
    assert [chains.next_round_seed().chain_id for _ in range(5)] == [newest.id] * 5
    with pytest.raises(SeedChainExhausted):
        chains.next_round_seed()


async def test_a_chain_with_the_id_of_one_redis_saw_is_played_when_its_seeds_differ(
    storage: Storage,
) -> None:
    """After a restore a new chain may get an old one's id: the seed hash tells them apart."""
    row = await create_chain(storage.db, length=5, client_seed="salt")
    await opened_in_redis(storage, row.id, 3, "ab" * 32)  # not this chain's seed
    chains = await load_chains(
        storage.db, length=5, client_seed=None, played=await storage.live.played()
    )
    assert chains.next_round_seed().nonce == 1


async def test_a_restored_postgresql_stops_serve_before_it_replays_a_seed(
    storage_for_game: Storage,
) -> None:
    clock = ManualClock()
    app = await start_game(storage_for_game, clock=clock, stop_timeout_s=0)
    game = ManualGame(app, clock)
    try:
        while (first := app.runner.game.round_id) is None:  # the first round opens
            app.runner.turn_done.clear()
            await app.runner.turn_done.wait()
        for _ in range(2):  # two more rounds crash and publish their seeds
            await game.to_phase("crashed")
            await game.to_phase("betting")
    finally:
        await app.stop()  # voids and flushes the round open
    # The database as a backup taken after the first round held it.
    for table, column in (("goal_progress", "round_id"), ("rounds", "id")):
        await storage_for_game.db._pool.execute(f"DELETE FROM {table} WHERE {column} > $1", first)
    again = App(fast_config(), storage_for_game, clock=ManualClock(), stop_timeout_s=0)
    with pytest.raises(ConfigError, match="restored to an earlier point"):
        await again.start()
    await storage_for_game.db.release_server_lock()

    await create_chain(storage_for_game.db, length=5, client_seed="after the restore")
    again = App(fast_config(), storage_for_game, clock=ManualClock(), stop_timeout_s=0)
    await again.start()
    await again.stop()
