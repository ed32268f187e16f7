"""deploy/grafana and deploy/prometheus use only metric names the servers export.

The names come from the registries (``Metrics``, ``RelayMetrics``), each family
expanded to the names Prometheus sees (``_total``/``_created`` for counters,
``_bucket``/``_sum``/``_count``/``_created`` for histograms): a labelled counter
has no series before its first label is used, so a scrape alone would miss it.
A real server's ``/metrics`` (after a bet) is checked to serve nothing else.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from pillarpayout_ws.server.metrics import Metrics
from pillarpayout_ws.server.relay import RelayMetrics

from .conftest import ManualGame

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NAME = re.compile(r"\bpillarpayout_[a-z0-9_]+\b")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}


def dashboard_exprs() -> list[str]:
    exprs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "query", "definition") and isinstance(value, str):
                    exprs.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads((DEPLOY / "grafana" / "pillarpayout.json").read_text()))
    return exprs


def alert_exprs() -> list[str]:
    """The ``expr:`` of every rule (one line each, as alerts.yml writes them)."""
    text = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    return [m.group(1) for m in re.finditer(r"^\s*expr:\s*(.+)$", text, re.M)]


def exported(registry: CollectorRegistry) -> set[str]:
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + s for s in SUFFIXES.get(family.type, ("",)))
    return names


def scraped(port: int) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {re.split(r"[{ ]", line, maxsplit=1)[0] for line in text.splitlines() if line[:1] != "#"}


def test_the_files_hold_what_they_should() -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    assert len(alert_exprs()) >= 6
    used = {n for e in exprs for n in NAME.findall(e)}
    for needed in (
        "pillarpayout_ticks_total",
        "pillarpayout_answer_seconds_bucket",
        "pillarpayout_flush_lag_seconds",
        "pillarpayout_flush_held_rounds",
        "pillarpayout_connections",
        "pillarpayout_slow_disconnects",
        "pillarpayout_gc_seconds_bucket",
    ):
        assert needed in used


async def test_every_metric_name_they_use_is_exported(manual_game: ManualGame) -> None:
    alice, _ = await manual_game.register("alice")
    await alice.send(type="bet", amount=1000, ref="b")
    await alice.next("bet_accepted", ref="b")
    game = await asyncio.to_thread(scraped, manual_game.app.port)
    assert "pillarpayout_answer_seconds_bucket" in game
    game_names = exported(Metrics().registry)
    assert game <= game_names  # the registry is what the server serves
    known = game_names | exported(RelayMetrics().registry)
    for where, exprs in (("grafana", dashboard_exprs()), ("alerts.yml", alert_exprs())):
        unknown = {n for e in exprs for n in NAME.findall(e)} - known
        assert not unknown, f"{where} uses metrics no server exports: {sorted(unknown)}"
    await alice.close()
