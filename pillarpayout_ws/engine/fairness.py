"""Provable fairness: crash points from a pre-committed chain of server seeds.

The rules, which anyone can check with an independent verifier:

* **Crash point** (the formula bustabit and BC.Game publish; house edge ``e``
  percent)::

      d = HMAC_SHA256(key=client_seed as ASCII, msg=bytes.fromhex(server_seed))
      X = int(d[:13 hex digits], 16) / 2**52
      crash = max(1.00, floor((100 - e) / (1 - X)) / 100)

  With ``e = 1`` this reproduces bustabit's published games bit for bit
  (``shared/vectors/fairness-public.json``). ``P(crash >= x) = (1 - e/100) / x``
  for every ``x > 1.00`` with two decimals.
* **Seed chain**: ``seed[i] = sha256(bytes.fromhex(seed[i+1]))`` (hex text).
  The chain is generated from a random top seed by hashing down and played
  from the bottom up: nonce 1 is the deepest seed, nonce ``length`` the top
  seed. The **commitment** is the hash of the first seed played; it is
  published before the first round, so every revealed seed can be hashed down
  to it and the operator cannot have chosen seeds after seeing bets.
* ``client_seed`` is a public salt fixed for the whole chain; the ``nonce`` is
  the round's position in the chain.
* Before a round crashes only ``seed_hash(server_seed)`` is public (it equals
  the previous round's seed once that is revealed); the seed itself is
  revealed in ``crashed``.

Crash points and multipliers are integer hundredths (``374`` = 3.74x).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Protocol

from pillarpayout_ws.engine.errors import ConfigError, SeedChainExhausted

__all__ = [
    "ChainSeedSource",
    "RoundSeed",
    "SeedChain",
    "SeedSource",
    "check_house_edge",
    "crash_point",
    "format_multiplier",
    "seed_hash",
    "verify_chain",
    "verify_link",
    "verify_round",
]

_SEED_BYTES: Final = 32
# X uses the first 13 hex digits of the HMAC: 52 bits, i.e. the first 7 bytes
# shifted right by 4. Reading bytes avoids a hex round trip on the hot path.
_X_BYTES: Final = 7
_X_SHIFT: Final = 4
_TWO_52: Final = float(2**52)


def check_house_edge(house_edge: float) -> float:
    """``house_edge`` if it is a percentage in [0, 100), else ``ConfigError``.

    The one definition of the range: the game's config, ``verify`` and the
    formula itself all check through here.
    """
    if not (math.isfinite(house_edge) and 0.0 <= house_edge < 100.0):
        raise ConfigError(
            f"must be a percentage from 0 up to 100, got {house_edge!r}", setting="house_edge"
        )
    return house_edge


def crash_point(server_seed: str, client_seed: str, house_edge: float = 1.0) -> int:
    """The round's crash point in hundredths (``374`` = 3.74x), at least 100.

    Promises: exactly the published formula above, so ``crash_point`` of
    bustabit's game seeds with its client seed and ``house_edge=1.0`` equals
    its published result. Raises ``ValueError`` if ``server_seed`` is not hex,
    ``client_seed`` is not ASCII, or the house edge is outside [0, 100)
    (``ConfigError``, a ``ValueError``).
    """
    check_house_edge(house_edge)
    digest = hmac.digest(client_seed.encode("ascii"), bytes.fromhex(server_seed), "sha256")
    x = (int.from_bytes(digest[:_X_BYTES], "big") >> _X_SHIFT) / _TWO_52
    # The one place floats meet the game's numbers: the published formula is
    # defined in IEEE doubles (bustabit's verifier is JavaScript), so computing
    # it the same way is what makes us bit-compatible.
    return max(100, math.floor((100.0 - house_edge) / (1.0 - x)))


def seed_hash(server_seed: str) -> str:
    """``sha256(bytes.fromhex(server_seed))`` as lowercase hex.

    This is what is public about a round before it crashes, and it is the
    seed of the round played just before it (the chain rule).
    """
    return hashlib.sha256(bytes.fromhex(server_seed)).hexdigest()


def verify_link(seed: str, previous_seed: str) -> bool:
    """True when ``previous_seed`` (played one round earlier) is ``seed_hash(seed)``.

    Non-hex input gives ``False`` rather than an exception: a verifier answers.
    """
    try:
        return seed_hash(seed) == previous_seed.lower()
    except ValueError:
        return False


def verify_round(
    server_seed: str,
    client_seed: str,
    claimed_crash_point: int,
    *,
    claimed_seed_hash: str | None = None,
    house_edge: float = 1.0,
) -> bool:
    """True when a revealed round is what the formula says it must be.

    Checks the crash point (hundredths) and, when given, that the seed hash
    published before the round matches the revealed seed.
    """
    try:
        if crash_point(server_seed, client_seed, house_edge) != claimed_crash_point:
            return False
    except ValueError:
        return False
    return claimed_seed_hash is None or verify_link(server_seed, claimed_seed_hash)


def verify_chain(seeds: list[str], commitment: str) -> bool:
    """True when ``seeds`` (in play order, nonce 1 first) hash down to ``commitment``.

    ``seed_hash(seeds[0]) == commitment`` and every seed hashes to the one
    played before it.
    """
    previous = commitment
    for seed in seeds:
        if not verify_link(seed, previous):
            return False
        previous = seed
    return True


def format_multiplier(hundredths: int) -> str:
    """Two-decimal text of a multiplier in hundredths: ``374 -> "3.74"``.

    Exact integer formatting (no float), as ``pillarpayout verify`` prints it.
    """
    if hundredths < 0:
        raise ValueError(f"a multiplier cannot be negative, got {hundredths}")
    return f"{hundredths // 100}.{hundredths % 100:02d}"


class SeedChain:
    """A hash chain of server seeds, generated ahead and played from the end.

    Built with ``SeedChain.from_top``; holds ``length`` seeds of 32 bytes each
    in one flat buffer (3.2 MB per 100,000 rounds).
    """

    __slots__ = ("_buffer", "_commitment", "_length")

    def __init__(self, buffer: bytes, length: int) -> None:
        """Wrap a buffer of ``length`` 32-byte seeds, nonce 1 first. Use ``from_top``."""
        if length < 1 or len(buffer) != length * _SEED_BYTES:
            raise ValueError("a seed chain needs length >= 1 and 32 bytes per seed")
        self._buffer = buffer
        self._length = length
        self._commitment = hashlib.sha256(buffer[:_SEED_BYTES]).hexdigest()

    @classmethod
    def from_top(cls, top_seed: str, length: int) -> SeedChain:
        """The chain of ``length`` seeds whose last-played seed is ``top_seed``.

        Promises: ``seed_for(length) == top_seed``; ``seed_hash(seed_for(n + 1))
        == seed_for(n)``; ``seed_hash(seed_for(1)) == commitment``. ``top_seed``
        must be 64 hex digits (32 random bytes, from the caller: the engine
        has no randomness of its own).
        """
        top = bytes.fromhex(top_seed)
        if len(top) != _SEED_BYTES:
            raise ValueError(f"top_seed must be {_SEED_BYTES} bytes of hex")
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        links = [top]
        sha256 = hashlib.sha256
        current = top
        for _ in range(length - 1):
            current = sha256(current).digest()
            links.append(current)
        # Hashed from the top down, played from the bottom up.
        links.reverse()
        return cls(b"".join(links), length)

    @property
    def length(self) -> int:
        """How many seeds (rounds) the chain holds."""
        return self._length

    @property
    def commitment(self) -> str:
        """The terminating hash: ``seed_hash(seed_for(1))``, published before round 1."""
        return self._commitment

    def seed_for(self, nonce: int) -> str:
        """The server seed of the round at position ``nonce`` (1-based, 1 played first)."""
        if not 1 <= nonce <= self._length:
            raise IndexError(f"nonce must be in 1..{self._length}, got {nonce}")
        start = (nonce - 1) * _SEED_BYTES
        return self._buffer[start : start + _SEED_BYTES].hex()

    def __iter__(self) -> Iterator[str]:
        """The seeds in play order."""
        for nonce in range(1, self._length + 1):
            yield self.seed_for(nonce)

    def __len__(self) -> int:
        return self._length


@dataclass(frozen=True, slots=True)
class RoundSeed:
    """Everything that decides one round's crash point."""

    chain_id: int
    nonce: int
    server_seed: str
    client_seed: str


class SeedSource(Protocol):
    """Hands the engine the seed of each new round, in chain order."""

    def next_round_seed(self) -> RoundSeed:
        """The seed for the round being opened now; never the same one twice."""
        ...


class ChainSeedSource:
    """A ``SeedSource`` that plays a ``SeedChain`` from ``next_nonce`` upwards.

    Where to resume after a restart (``next_nonce``) is the caller's to store:
    it is the nonce after the last ``RoundOpened`` record.
    """

    __slots__ = ("_chain", "_chain_id", "_client_seed", "_next_nonce")

    def __init__(
        self, chain: SeedChain, *, chain_id: int, client_seed: str, next_nonce: int = 1
    ) -> None:
        if not 1 <= next_nonce <= chain.length + 1:
            raise ValueError(f"next_nonce must be in 1..{chain.length + 1}, got {next_nonce}")
        client_seed.encode("ascii")  # the HMAC key must be ASCII: fail now, not mid-game
        self._chain = chain
        self._chain_id = chain_id
        self._client_seed = client_seed
        self._next_nonce = next_nonce

    @property
    def next_nonce(self) -> int:
        """The nonce the next call will hand out."""
        return self._next_nonce

    def next_round_seed(self) -> RoundSeed:
        """The next unplayed seed; raises ``SeedChainExhausted`` at the end of the chain."""
        nonce = self._next_nonce
        if nonce > self._chain.length:
            raise SeedChainExhausted(
                f"seed chain {self._chain_id} is exhausted after {self._chain.length} rounds"
            )
        self._next_nonce = nonce + 1
        return RoundSeed(self._chain_id, nonce, self._chain.seed_for(nonce), self._client_seed)
