"""``python -m bench`` (``make bench``): every benchmark in turn, numbers as JSON.

Minutes, not hours; never part of ``make test``. Record what it prints in
BENCHMARKS.md with the date and the machine.
"""

from __future__ import annotations

import json

from bench import bench_engine, bets, fanout, storage


def main() -> None:
    results = {
        "engine": bench_engine.main(),
        "storage": storage.main(),
        "bets": bets.main([]),
        "fanout": fanout.main([]),
    }
    print(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
