"""What the harness shows: a live progress line, the final table, the plot."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from loadtest.run import Progress

console = Console(stderr=True)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def progress_line(p: Progress) -> str:
    return (
        f"[bold]{p.phase}[/] {p.elapsed:5.0f}s  clients {p.connected:,}/{p.wanted:,}  "
        f"ticks {p.ticks:,}  p99 {_ms(p.p99_ms)} ms  bets {p.bets:,}  "
        f"rounds {p.rounds}  errors {p.errors:,}"
    )


@contextlib.contextmanager
def live() -> Iterator[Callable[[Progress], None]]:
    """A callback that redraws the progress line (on a terminal; quiet elsewhere)."""
    with Live(console=console, refresh_per_second=4, transient=True) as view:
        yield lambda p: view.update(progress_line(p))


def final_table(r: dict[str, Any]) -> None:
    t = Table(title=f"loadtest {r['url']}", show_header=False)
    t.add_column(style="bold")
    t.add_column(justify="right")

    def row(name: str, value: Any) -> None:
        t.add_row(name, str(value))

    def pcts(values: dict[str, float | None]) -> str:
        return "  ".join(f"{k} {_ms(v)}" for k, v in values.items())

    row("clients connected", f"{r['clients_connected']:,} of {r['clients']:,}")
    row(
        "connects failed / still pending / dropped",
        f"{r['connect_failed']:,} / {r['connect_pending']:,} / {r['dropped']:,}",
    )
    row("connect ms", pcts(r["connect_ms"]))
    row("held for", f"{r['duration_s']} s (after a {r['ramp_s']} s ramp)")
    row("tick delay ms", pcts(r["tick_delay_ms"]))
    row("  while connecting", pcts(r["tick_delay_while_connecting_ms"]))
    row("ticks received", f"{r['ticks_received']:,}")
    row("ticks expected per client", r["ticks_expected_per_client"])
    row("ticks missed", f"{r['ticks_missed']:,} by {r['clients_missing_ticks']:,} clients")
    row(
        "bettors logged in",
        f"{r['bettors_logged_in']:,} of {r['bettors']:,} (retried after busy "
        f"{r['busy_retries']:,}, after rate_limited {r['limited_retries']:,})",
    )
    row("bets / cashouts", f"{r['bets']:,} / {r['cashouts']:,} (late {r['late_cashouts']})")
    row("bet ack ms", pcts(r["bet_ack_ms"]))
    row("cashout ack ms", pcts(r["cashout_ack_ms"]))
    row("frames/s in, out", f"{r['frames_in_per_s']:,} / {r['frames_out_per_s']:,}")
    row("rounds checked", r["rounds"])
    row("errors", r["errors"])
    for code, n in r["errors_by_code"].items():
        row(f"  {code}", n)
    console.print(t)


def step_line(r: dict[str, Any], budget: float, held: bool) -> None:
    verdict = "[green]held[/]" if held else "[red]over[/]"
    console.print(
        f"{r['clients']:>7,} clients: connected {r['clients_connected']:,}, "
        f"tick p99 {_ms(r['tick_delay_ms']['p99'])} ms (budget {budget:g}), "
        f"missed {r['ticks_missed']:,}  {verdict}"
    )


def capacity_table(r: dict[str, Any]) -> None:
    t = Table(title=f"capacity within {r['budget_ms']:g} ms tick p99")
    for name in ("clients", "connected", "p50 ms", "p99 ms", "missed ticks", "errors"):
        t.add_column(name, justify="right")
    for s in r["steps"]:
        d = s["tick_delay_ms"]
        t.add_row(
            f"{s['clients']:,}",
            f"{s['clients_connected']:,}",
            _ms(d["p50"]),
            _ms(d["p99"]),
            f"{s['ticks_missed']:,}",
            str(s["errors"]),
        )
    console.print(t)
    console.print(f"[bold]capacity: {r['capacity']:,} clients[/]")


def plot(r: dict[str, Any], path: Path) -> None:
    """Tick-delay percentiles and connected clients over time (or, for a capacity
    search, p99 against clients with the budget)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "capacity" in r:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        steps = sorted(r["steps"], key=lambda s: s["clients"])
        ax.plot(
            [s["clients"] for s in steps],
            [s["tick_delay_ms"]["p99"] for s in steps],
            marker="o",
            label="tick delay p99",
        )
        ax.axhline(r["budget_ms"], color="red", linestyle="--", label="budget")
        ax.set_xlabel("clients")
        ax.set_ylabel("ms")
        ax.set_title(f"capacity: {r['capacity']:,} clients within {r['budget_ms']:g} ms p99")
        ax.legend()
    else:
        timeline = r["timeline"]
        fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 6))
        seconds = [p["t"] for p in timeline]
        for key in ("p50", "p90", "p99"):
            top.plot(seconds, [p[key] for p in timeline], label=key)
        top.set_ylabel("tick delay, ms")
        top.legend()
        top.set_title(f"{r['clients']:,} clients, {r['bettors']:,} bettors: {r['url']}")
        bottom.plot(seconds, [p["connected"] for p in timeline], color="black")
        bottom.set_ylabel("clients connected")
        bottom.set_ylim(bottom=0)
        bottom.set_xlabel("seconds since start")
        if r["ramp_s"]:
            for ax in (top, bottom):
                ax.axvline(r["ramp_s"], color="grey", linestyle=":")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
