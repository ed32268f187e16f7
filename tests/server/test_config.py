"""``serve``'s settings (server/config.py): one source for flags and the game's rules."""

from __future__ import annotations

import dataclasses

import pytest

from pillarpayout_ws.cli import build_parser
from pillarpayout_ws.engine.config import GameConfig
from pillarpayout_ws.exceptions import ConfigError
from pillarpayout_ws.server.config import ServerConfig
from pillarpayout_ws.settings import configure, flag_name, from_args


def serve(*argv: str) -> ServerConfig:
    return from_args(ServerConfig, build_parser().parse_args(["serve", *argv]))


def test_the_contracts_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    config = serve()
    assert config == ServerConfig()
    assert (config.host, config.port, str(config.storage.data_dir)) == (
        "127.0.0.1",
        8765,
        ".pillarpayout",
    )
    assert (config.storage.database_url, config.storage.redis_url) == (None, None)
    game = config.game
    assert (game.betting_ms, game.tick_ms, game.cooldown_ms, game.house_edge) == (
        5000,
        100,
        3000,
        1.0,
    )
    assert (config.starting_balance, config.client_seed) == (100_000, None)


def test_every_game_rule_with_a_flag_reaches_the_engine(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = serve("--betting-ms", "2000", "--house-edge", "5", "--min-bet", "100")
    assert config.game == GameConfig(betting_ms=2000, house_edge=5.0, min_bet=100)
    with pytest.raises(SystemExit):
        serve("--help")
    shown = capsys.readouterr().out
    flagged = [f.name for f in dataclasses.fields(GameConfig) if "help" in f.metadata]
    assert len(flagged) >= 4
    assert all(flag_name(name) in shown for name in flagged)


@pytest.mark.parametrize(
    ("argv", "setting"),
    [
        (["--house-edge", "100"], "house_edge"),
        (["--tick-ms", "0"], "tick_ms"),
        (["--betting-ms", "-1"], "betting_ms"),
        (["--flush-rounds", "0"], "flush_rounds"),
        (["--port", "70000"], "port"),
        (["--broadcast-slice-ms", "-1"], "broadcast_slice_ms"),
        (["--tick-slice-ms", "101"], "tick_slice_ms"),
        (["--min-bet", "0"], "min_bet"),
    ],
)
def test_a_bad_value_is_refused_by_the_one_check_that_owns_it(
    argv: list[str], setting: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        serve(*argv)
    assert caught.value.setting == setting


def test_configure_routes_flat_names_to_their_group() -> None:
    config = configure(ServerConfig, port=0, betting_ms=100, data_dir="/tmp/x")
    assert (config.port, config.game.betting_ms, str(config.storage.data_dir)) == (0, 100, "/tmp/x")
