"""``pillarpayout verify --url``: check every published round from ``/api/*`` alone.

It reads what anyone can read (``/api/fairness``, then ``/api/rounds`` page by
page) and checks each crashed round against the chain it was played from:

- its seed hashes to the ``seed_hash`` published before it was played;
- its seed links through the chain to the chain's commitment: hashing the
  seed of nonce ``n`` ``n - k`` times gives the seed of nonce ``k`` (``k`` the
  round before it, or 0 for the commitment itself);
- its salt is the chain's published salt;
- its crash point is the formula's for that seed, salt and house edge.

Void rounds (never crashed, so never revealed) are counted, not checked. One
line per failure, then a summary; ``verify_url`` returns how many failed.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urljoin

import orjson

from .engine.fairness import crash_point, format_multiplier, seed_hash
from .exceptions import ConfigError

__all__ = ["verify_url"]

PAGE = 100


def _get(url: str) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return orjson.loads(response.read())
    except (urllib.error.URLError, OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {url}: {exc}") from None


def _rounds(base: str) -> Iterator[dict[str, Any]]:
    before: int | None = None
    while True:
        query = f"?limit={PAGE}" + ("" if before is None else f"&before={before}")
        page = _get(urljoin(base, "/api/rounds") + query)["rounds"]
        yield from page
        if len(page) < PAGE:
            return
        before = page[-1]["id"]


def verify_url(base: str, say: Callable[[str], object] = print) -> int:
    """Check every published round of the server at ``base`` (``http://host:port``);
    the number of failures (each said in one line, then a summary)."""
    if not base.startswith(("http://", "https://")):
        raise ConfigError(f"--url must be http://HOST:PORT or https://..., got {base!r}")
    chains = {c["chain_id"]: c for c in _get(urljoin(base, "/api/fairness"))["chains"]}
    failures = checked = void = 0
    by_chain: dict[int, list[dict[str, Any]]] = {}
    for r in _rounds(base):
        if r["status"] != "crashed":
            void += 1
            continue
        by_chain.setdefault(r["chain_id"], []).append(r)

    def fail(r: dict[str, Any], why: str) -> None:
        nonlocal failures
        failures += 1
        say(f"round {r['id']} (chain {r['chain_id']}, nonce {r['nonce']}): {why}")

    for chain_id, rounds in by_chain.items():
        chain = chains.get(chain_id)
        if chain is None:
            for r in rounds:
                fail(r, "its chain is not published on /api/fairness")
            continue
        # Walking up from the commitment (nonce 0): each seed hashes down to the last one.
        anchor_nonce, anchor = 0, chain["commitment"]
        for r in sorted(rounds, key=lambda r: r["nonce"]):
            checked += 1
            seed = r["server_seed"]
            try:
                published = seed_hash(seed)
            except (TypeError, ValueError):
                fail(r, f"the server seed {seed!r} is not hex")
                continue
            if published != r["seed_hash"]:
                fail(r, "the seed does not hash to the seed_hash published before the round")
            value = seed
            for _ in range(r["nonce"] - anchor_nonce):
                value = seed_hash(value)
            if value != anchor:
                fail(r, f"the seed does not link to nonce {anchor_nonce} of its chain")
            else:
                anchor_nonce, anchor = r["nonce"], seed
            if r["client_seed"] != chain["client_seed"]:
                fail(r, "its client seed is not its chain's published salt")
            try:
                expected = crash_point(seed, r["client_seed"], float(r["house_edge"]))
            except ValueError as exc:
                fail(r, f"the crash point cannot be computed: {exc}")
                continue
            if round(r["crash_point"] * 100) != expected:
                fail(
                    r,
                    f"crash point {r['crash_point']:.2f} published, the formula gives "
                    f"{format_multiplier(expected)}",
                )
    verdict = "every one verified" if not failures else f"{failures} failure(s)"
    say(
        f"{checked} crashed round(s) of {len(by_chain)} chain(s) checked, "
        f"{void} void round(s) skipped: {verdict}"
    )
    return failures
