"""``python -m bench`` (``make bench``): every benchmark in turn, then a dated entry
at the top of BENCHMARKS.md (command, machine, numbers against their targets).

Minutes, not hours; never part of ``make test``. ``--no-record`` only prints.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
from pathlib import Path
from typing import Any

from bench import answers, bench_engine, bets, capacity, fanout, leaderboard, relay, storage
from bench.common import machine

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
MARKER = "\n## "  # entries start with a level-2 heading; the newest goes first


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def entry(results: dict[str, Any], when: str, commit: str) -> str:
    """The Markdown entry for one ``make bench`` run."""
    lines = [
        f"## {when}: make bench (at {commit})",
        "",
        f"Command: `make bench`. Machine: {machine()}. The load generator shares the machine.",
        "",
        "| benchmark | result | target |",
        "|---|---|---|",
    ]

    def row(name: str, value: str, target: str = "") -> None:
        lines.append(f"| {name} | {value} | {target} |")

    for case in results["fanout"]["cases"]:
        pairs = case["pairs"]
        for key, what in (("ratio", "frame delivered"), ("ratio_ticks", "tick delivered")):
            ratio = case[f"{key}_median"]
            shown = ", ".join(str(p[key]) for p in pairs)
            row(
                f"fan-out CPU per {what}, serve / bare floor, {case['clients']:,} clients",
                f"median {ratio} ({shown})",
                f"<= 1.10 {_met(ratio is not None and ratio <= 1.10)}",
            )
        p99s = [p["serve"]["tick_delay_ms"]["p99"] for p in pairs]
        floors = [p["floor"]["tick_delay_ms"]["p99"] for p in pairs]
        row(
            f"tick delay p99, {case['clients']:,} clients, serve (floor)",
            ", ".join(f"{s} ({f}) ms" for s, f in zip(p99s, floors, strict=True)),
        )
        rss = [p["serve"]["rss_per_connection_bytes"] for p in pairs]
        kib = sorted(r / 1024 for r in rss if r)
        if kib:
            median = kib[len(kib) // 2]
            row(
                f"RSS per idle connection, {case['clients']:,} clients",
                f"{median:.1f} KiB",
                f"<= 16 KiB {_met(median <= 16)}",
            )
    cap = results["capacity"]
    row(
        f"capacity at 10 Hz within {cap['budget_ms']:g} ms tick p99 (median of "
        f"{cap['repeat']}), serve vs floor",
        f"{cap['capacity']:,} vs {cap['floor_capacity']:,} clients: ratio {cap['ratio']} "
        f"(first over: {cap['first_over_budget'] or '-'} vs "
        f"{cap['floor_first_over_budget'] or '-'})",
        f"ratio >= 0.9 {_met(cap['ratio'] is not None and cap['ratio'] >= 0.9)}",
    )
    for case in results["answers"]["cases"]:
        for s in case["by_slice"]:
            n, sliced = case["spectators"], s["tick_slice_ms"]
            cash, bet = s["cashout_ack_p99"], s["bet_ack_p99"]
            player, ratio = s["player_tick_p99"], s["spectator_vs_floor_p99"]
            row(
                f"{n:,} spectators + {results['answers']['bettors']} players, "
                f"--tick-slice-ms {sliced:g}: cash-out / bet ack p99, players' tick p99 "
                f"(median of {s['repeats']})",
                f"{cash} / {bet} / {player} ms",
                f"<= 15 ms each {_met(max(cash or 1e9, bet or 1e9, player or 1e9) <= 15)}",
            )
            row(
                f"{n:,} spectators, --tick-slice-ms {sliced:g}: spectators' tick p99, "
                "serve / floor",
                f"{s['spectator_tick_p99']} ms, ratio {ratio}",
                f"<= 1.15 {_met(ratio is not None and ratio <= 1.15)}",
            )
            row(
                f"{n:,} spectators, --tick-slice-ms {sliced:g}: a tick made to its last "
                "spectator written, inside the server, mean serve / floor",
                f"{s['fanout_mean_ms']} / {s['floor_fanout_mean_ms']} ms",
            )
    r = results["relay"]
    hop = r["hop"]
    row(
        "relay hop: tick delay p50 / p99, game vs relay",
        f"{hop['game']['p50']} / {hop['game']['p99']} ms vs "
        f"{hop['relay']['p50']} / {hop['relay']['p99']} ms (hop p99 {hop['hop_p99_ms']} ms)",
        f"hop p99 <= 5 ms {_met(hop['hop_p99_ms'] <= 5)}",
    )
    row(
        f"spectators within {cap['budget_ms']:g} ms p99: game alone vs game + 1 relay",
        f"{r['capacity_game_alone']:,} vs {r['capacity_game_and_relay']:,}",
    )
    b = results["bets"]
    row(
        f"bets: {b['bettors']:,} at {b['target_rate']:g}/s",
        f"{b['achieved_rate']:,}/s achieved, ack p50 {b['bet_ack_ms']['p50']} ms, "
        f"p99 {b['bet_ack_ms']['p99']} ms, errors {sum(b['errors'].values())}",
        f"ack p99 <= 25 ms {_met((b['bet_ack_ms']['p99'] or 1e9) <= 25)}",
    )
    s = results["storage"]
    row(
        "flush of one round with 10,000 bets",
        f"median {s['flush_10k_bets_ms_median']} ms",
        f"<= 250 ms {_met(s['flush_10k_bets_ms_median'] <= 250)}",
    )
    row(
        "Redis group commit of 1,000 actions",
        f"median {s['group_commit_1000_ms_median']} ms, max {s['group_commit_1000_ms_max']} ms",
        f"<= 20 ms {_met(s['group_commit_1000_ms_median'] <= 20)}",
    )
    row(
        "serve start-up, new / existing data dir",
        f"{s['serve_startup_new_data_dir_s']} s / {s['serve_startup_existing_data_dir_s']} s",
        f"<= 5 s {_met(s['serve_startup_new_data_dir_s'] <= 5)}",
    )
    lb = results["leaderboard"]
    row(
        f"leaderboards on {lb['bets']:,} bets, {lb['users']:,} players: slowest of the 9 "
        f"by x period (median of {lb['repeat']})",
        f"{lb['leaderboard_ms_max']} ms",
        f"<= {lb['target_ms']:g} ms {_met(lb['leaderboard_ms_max'] <= lb['target_ms'])}",
    )
    row(
        "/api/users/NAME, /api/me/bets first / deep page (queries)",
        f"{lb['profile_ms_median']} / {lb['my_bets_first_page_ms_median']} / "
        f"{lb['my_bets_deep_page_ms_median']} ms",
    )
    row(
        "player_stats summary of a 10,000-bet round (after its flush)",
        f"median {lb['summary_10k_bets_ms_median']} ms",
    )
    e = results["engine"]
    row(
        "engine advance() median, 10k open bets",
        f"{e['advance_median_ms']:.3f} ms",
        f"<= 1 ms {_met(e['advance_median_ms'] <= 1)}",
    )
    row(
        "crash_point",
        f"{e['crash_points_per_s']:,.0f}/s",
        f">= 100k/s {_met(e['crash_points_per_s'] >= 100_000)}",
    )
    return "\n".join(lines) + "\n"


def record(text: str) -> None:
    """Put ``text`` above the newest entry of BENCHMARKS.md."""
    current = BENCHMARKS.read_text()
    at = current.find(MARKER)
    if at < 0:
        BENCHMARKS.write_text(current.rstrip("\n") + "\n\n" + text)
    else:
        BENCHMARKS.write_text(current[: at + 1] + text + "\n" + current[at + 1 :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-record", action="store_true", help="print, leave BENCHMARKS.md")
    args = parser.parse_args()
    results = {
        "engine": bench_engine.main(),
        "storage": storage.main(),
        "bets": bets.main([]),
        "fanout": fanout.main([]),
        "capacity": capacity.main([]),
        "answers": answers.main([]),
        "relay": relay.main([]),
        "leaderboard": leaderboard.main([]),
    }
    print(json.dumps(results, indent=1, default=str))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    text = entry(results, datetime.date.today().isoformat(), commit or "unknown commit")
    print(text)
    if not args.no_record:
        record(text)
        print(f"recorded in {BENCHMARKS}")


if __name__ == "__main__":
    main()
