"""Crash points, seed hashes and the seed chain (engine/fairness.py)."""

from __future__ import annotations

import hashlib
import itertools
import time
from typing import Any

import pytest

from pillarpayout_ws.engine.errors import SeedChainExhausted
from pillarpayout_ws.engine.fairness import (
    ChainSeedSource,
    RoundSeed,
    SeedChain,
    crash_point,
    format_multiplier,
    seed_hash,
    verify_chain,
    verify_link,
    verify_round,
)
from tests.engine.helpers import load_vectors

VECTORS = load_vectors()
TOP = "ab" * 32


def _hundredths(vector: dict[str, Any]) -> int:
    # The vectors write 3.74; compare as integer hundredths, no float money.
    whole, _, cents = f"{vector['crash_point']:.2f}".partition(".")
    return int(whole) * 100 + int(cents)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["note"] for v in VECTORS])
def test_public_vectors_reproduce(vector: dict[str, Any]) -> None:
    expected = _hundredths(vector)
    result = crash_point(vector["server_seed"], vector["client_seed"], vector["house_edge"])
    assert result == expected
    assert format_multiplier(result) == f"{vector['crash_point']:.2f}"


def test_first_vector_is_374() -> None:
    vector = VECTORS[0]
    assert crash_point(vector["server_seed"], vector["client_seed"]) == 374


def test_public_vectors_form_a_chain() -> None:
    # Games #12424169 .. #12424166: each earlier game's seed hashes from the later one.
    chained = VECTORS[1:]
    for later, earlier in itertools.pairwise(chained):
        assert seed_hash(later["server_seed"]) == earlier["server_seed"]
        assert verify_link(later["server_seed"], earlier["server_seed"])
        assert not verify_link(earlier["server_seed"], later["server_seed"])


def test_seed_chain_rebuilds_bustabits_games() -> None:
    chained = VECTORS[1:]  # newest game first
    chain = SeedChain.from_top(chained[0]["server_seed"], len(chained))
    # Played from the bottom up: nonce 1 is the oldest game of the four.
    played = list(chain)
    assert played == [v["server_seed"] for v in reversed(chained)]
    assert chain.commitment == seed_hash(played[0])
    assert verify_chain(played, chain.commitment)
    for nonce, vector in zip(range(len(chained), 0, -1), chained, strict=True):
        seed = chain.seed_for(nonce)
        assert crash_point(seed, vector["client_seed"]) == _hundredths(vector)


def test_crash_point_formula_by_hand() -> None:
    import hmac

    server, client = "00" * 32, "salt"
    digest = hmac.new(client.encode("ascii"), bytes.fromhex(server), hashlib.sha256).hexdigest()
    x = int(digest[:13], 16) / 2**52
    assert crash_point(server, client, 1.0) == max(100, int((100 - 1.0) / (1 - x)))
    assert crash_point(server, client, 0.0) == max(100, int(100 / (1 - x)))


def test_crash_point_never_below_one() -> None:
    for i in range(2000):
        assert crash_point(hashlib.sha256(str(i).encode()).hexdigest(), "c") >= 100


@pytest.mark.parametrize(
    ("server", "client", "edge"),
    [
        ("zz" * 32, "salt", 1.0),  # not hex
        ("abc", "salt", 1.0),  # odd-length hex
        ("00" * 32, "sält", 1.0),  # client seed must be ASCII
        ("00" * 32, "salt", -0.5),
        ("00" * 32, "salt", 100.0),
    ],
)
def test_crash_point_refuses_bad_input(server: str, client: str, edge: float) -> None:
    with pytest.raises(ValueError, match=r"hex|ascii|house_edge|non-hexadecimal"):
        crash_point(server, client, edge)


def test_seed_hash_is_sha256_of_the_bytes() -> None:
    seed = VECTORS[0]["server_seed"]
    assert seed_hash(seed) == hashlib.sha256(bytes.fromhex(seed)).hexdigest()
    assert seed_hash(seed.upper()) == seed_hash(seed)


def test_verify_link_answers_false_on_garbage() -> None:
    assert not verify_link("not hex", "00")
    assert not verify_link("00" * 32, "ünicode")


def test_verify_round() -> None:
    vector = VECTORS[0]
    seed, client = vector["server_seed"], vector["client_seed"]
    assert verify_round(seed, client, 374)
    assert verify_round(seed, client, 374, claimed_seed_hash=seed_hash(seed))
    assert not verify_round(seed, client, 375)
    assert not verify_round(seed, client, 374, claimed_seed_hash="00" * 32)
    assert not verify_round("xyz", client, 374)


def test_seed_chain_links_and_commitment() -> None:
    chain = SeedChain.from_top(TOP, 50)
    assert chain.length == len(chain) == 50
    assert chain.seed_for(50) == TOP
    for nonce in range(1, 50):
        assert seed_hash(chain.seed_for(nonce + 1)) == chain.seed_for(nonce)
    assert seed_hash(chain.seed_for(1)) == chain.commitment
    assert verify_chain(list(chain), chain.commitment)
    assert not verify_chain(list(chain)[1:], chain.commitment)


def test_seed_chain_of_one() -> None:
    chain = SeedChain.from_top(TOP, 1)
    assert chain.seed_for(1) == TOP
    assert chain.commitment == seed_hash(TOP)


@pytest.mark.parametrize("nonce", [0, 11, -1])
def test_seed_chain_refuses_nonces_outside(nonce: int) -> None:
    with pytest.raises(IndexError):
        SeedChain.from_top(TOP, 10).seed_for(nonce)


@pytest.mark.parametrize(("top", "length"), [("ab" * 31, 5), ("xy" * 32, 5), (TOP, 0)])
def test_seed_chain_refuses_bad_input(top: str, length: int) -> None:
    with pytest.raises(ValueError, match=r"hex|length"):
        SeedChain.from_top(top, length)


def test_hundred_thousand_links_well_under_a_second() -> None:
    began = time.perf_counter()
    chain = SeedChain.from_top(TOP, 100_000)
    took = time.perf_counter() - began
    assert took < 0.5, f"{took:.3f} s"
    assert seed_hash(chain.seed_for(100_000)) == chain.seed_for(99_999)
    assert seed_hash(chain.seed_for(1)) == chain.commitment


def test_chain_seed_source_plays_in_order_then_stops() -> None:
    chain = SeedChain.from_top(TOP, 3)
    source = ChainSeedSource(chain, chain_id=4, client_seed="salt")
    seeds = [source.next_round_seed() for _ in range(3)]
    assert seeds == [RoundSeed(4, n, chain.seed_for(n), "salt") for n in (1, 2, 3)]
    assert source.next_nonce == 4
    with pytest.raises(SeedChainExhausted):
        source.next_round_seed()


def test_chain_seed_source_resumes_and_checks() -> None:
    chain = SeedChain.from_top(TOP, 3)
    source = ChainSeedSource(chain, chain_id=1, client_seed="salt", next_nonce=3)
    assert source.next_round_seed().nonce == 3
    with pytest.raises(ValueError, match="next_nonce"):
        ChainSeedSource(chain, chain_id=1, client_seed="salt", next_nonce=5)
    with pytest.raises(ValueError, match="ascii"):
        ChainSeedSource(chain, chain_id=1, client_seed="sälz")


@pytest.mark.parametrize(
    ("hundredths", "text"),
    [
        (374, "3.74"),
        (100, "1.00"),
        (101, "1.01"),
        (1000, "10.00"),
        (5, "0.05"),
        (1_000_000, "10000.00"),
    ],
)
def test_format_multiplier(hundredths: int, text: str) -> None:
    assert format_multiplier(hundredths) == text


def test_format_multiplier_refuses_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_multiplier(-1)
