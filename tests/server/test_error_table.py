"""Every error code protocol.md documents is proven over real sockets, or is internal.

The codes are read from the tables under "## Error codes". Each one is proven
by a scenario in this module (``@proves``), by a named test elsewhere
(``PROVEN_ELSEWHERE``), or is unreachable from a client and proven in the
engine (``INTERNAL_ONLY``); a newly documented code with none of these fails.
Every error asserted here is the whole frame: its code and the frame's ``ref``
(null when the frame had none); the connection answers a ``ping`` afterwards
and nothing was created.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from .conftest import GameServer, ManualGame, Player

PROTOCOL_MD = Path(__file__).resolve().parents[2] / "protocol.md"

# Codes whose over-the-wire test lives elsewhere: "path::test function".
A_ROUND = "tests/server/test_runner.py::test_bet_and_cashout_errors_through_a_round"
MUTE = "tests/server/test_moderation.py::test_mute_refuses_chat_with_the_time_left_until_unmute"
PROVEN_ELSEWHERE = {
    "bad_frame": "tests/reliability/test_fuzz.py::test_a_nul_is_refused_not_stored_nor_an_outage",
    "invalid_amount": A_ROUND,
    "invalid_auto_cashout": A_ROUND,
    "insufficient_funds": A_ROUND,
    "betting_closed": A_ROUND,
    "already_bet": A_ROUND,
    "invalid_slot": (
        "tests/server/test_slots.py::"
        "test_an_auto_cashout_in_one_slot_and_a_hand_cashout_in_the_other"
    ),
    "no_active_bet": A_ROUND,
    "round_not_running": A_ROUND,
    "auth_required": "tests/server/test_handler.py::test_spectators_cannot_act",
    "invalid_credentials": (
        "tests/server/test_auth.py::test_wrong_password_and_unknown_user_look_the_same"
    ),
    "username_taken": "tests/server/test_auth.py::test_taken_names_and_emails",
    "email_taken": "tests/server/test_auth.py::test_taken_names_and_emails",
    "invalid_session": "tests/server/test_auth.py::test_expired_session_is_refused",
    "rate_limited": "tests/server/test_limits.py::test_a_flood_is_limited_then_closed",
    "shutting_down": "tests/server/test_runner.py::test_bets_are_refused_once_shutdown_begins",
    "unavailable": (
        "tests/server/test_health.py::test_postgres_down_gives_unavailable_and_503_then_recovers"
    ),
    "internal_error": (
        "tests/server/test_handler.py::test_a_bug_in_one_frame_reaches_only_that_client"
    ),
    "read_only": "tests/server/test_relay.py::test_a_relay_is_read_only_and_says_where_to_play",
    "ref_reused": (
        "tests/server/test_runner.py::test_a_ref_from_an_earlier_round_is_refused_not_replayed"
    ),
    "busy": "tests/server/test_auth.py::test_a_registration_flood_cannot_starve_logins",
    "forbidden": "tests/server/test_moderation.py::test_players_may_not_moderate",
    "unknown_user": MUTE,
    "invalid_minutes": MUTE,
    "muted": MUTE,
    "banned": (
        "tests/server/test_moderation.py::"
        "test_a_ban_closes_every_socket_and_refuses_login_and_resume"
    ),
    "unknown_chat": (
        "tests/server/test_moderation.py::test_delete_chat_broadcasts_and_keeps_the_line_marked"
    ),
}

# Codes no client can provoke. unknown_account: a connection gets a user id only
# after ConnectionHandler.logged_in() has loaded the account into the engine, the
# engine never unloads one, spectators are answered auth_required before the
# engine is asked, and a restart builds a new engine but closes every connection.
INTERNAL_ONLY = {
    "unknown_account": "tests/engine/test_game.py::test_bet_from_an_unknown_account",
}

# Codes proven by a scenario in this module (filled in by @proves).
PROVEN_HERE: dict[str, str] = {}

F = TypeVar("F", bound=Callable[..., Any])


def proves(*codes: str) -> Callable[[F], F]:
    """Register the decorated test as the over-the-wire proof of ``codes``."""

    def mark(test: F) -> F:
        for code in codes:
            PROVEN_HERE[code] = test.__name__
        return test

    return mark


def documented_codes() -> set[str]:
    """The first-column codes of every table under "## Error codes" in protocol.md."""
    section = PROTOCOL_MD.read_text().split("\n## Error codes\n", 1)[1].split("\n## ", 1)[0]
    codes = set()
    for line in section.splitlines():
        if not line.startswith("|"):
            continue
        first = line.split("|")[1].strip()
        if first == "code" or set(first) <= {"-", ":"}:
            continue  # a table's header or its separator
        match = re.fullmatch(r"`([a-z_]+)`", first)
        assert match, f"a row of the error tables without a code: {line!r}"
        codes.add(match[1])
    return codes


def named_test(where: str) -> Callable[..., object]:
    """The test function ``where`` ("tests/x/test_y.py::test_z") names."""
    path, name = where.split("::")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    test: object = getattr(module, name, None)
    assert callable(test) and name.startswith("test_"), f"no test {where}"
    return test


def test_every_documented_code_is_proven() -> None:
    homes = [set(PROVEN_HERE), set(PROVEN_ELSEWHERE), set(INTERNAL_ONLY)]
    proven = set().union(*homes)
    assert documented_codes() == proven
    assert sum(map(len, homes)) == len(proven), "a code is proven in two places"


@pytest.mark.parametrize(("code", "where"), sorted({**PROVEN_ELSEWHERE, **INTERNAL_ONLY}.items()))
def test_the_named_test_exists_and_names_the_code(code: str, where: str) -> None:
    assert f'"{code}"' in inspect.getsource(named_test(where))


# --- scenarios -----------------------------------------------------------------------


def register(**fields: object) -> dict[str, object]:
    """A valid ``register`` frame with ``fields`` replaced."""
    return {
        "type": "register",
        "username": "ada_l",
        "email": "ada@example.org",
        "password": "correct horse",
        **fields,
    }


def chat(text: str) -> dict[str, object]:
    return {"type": "chat", "text": text}


REFUSED: dict[str, list[dict[str, object]]] = {
    "unknown_type": [{"type": "dance"}, {"type": "PING"}, {"type": ""}],
    "invalid_username": [
        register(username=name) for name in ("ab", "a" * 33, "ada l", "adá", "ada!", "")
    ],
    "invalid_email": [
        register(email=email)
        for email in (
            "ada.example.org",
            "ada@example",
            "ada@@example.org",
            "ada@example..org",
            "ada @example.org",
            "ada@example.org\n",
            "ada\u200b@example.org",  # a format character
            "a" * 243 + "@example.org",  # 255 characters
        )
    ],
    "invalid_password": [register(password=pw) for pw in ("", "seven77", "p" * 257)],
    "invalid_text": [
        chat(text)
        for text in (
            "",
            "    ",  # empty after trimming
            "x" * 281,
            " " + "x" * 281 + " ",
            "gl\nall",
            "gl\x00all",
            "gl all\t",  # refused, not trimmed away
            "\u202egl all",  # a bidi override
            "gl\u2028all",  # a line separator
        )
    ],
}


async def refused(player: Player, code: str, frame: dict[str, object], ref: str | None) -> None:
    """Send ``frame`` (with ``ref`` if any); the next error is ``code`` with ``ref`` echoed."""
    await player.send(**frame, **({} if ref is None else {"ref": ref}))
    error = await player.next("error")
    assert error == {"type": "error", "code": code, "message": error["message"], "ref": ref}
    assert isinstance(error["message"], str) and error["message"]


async def still_usable(player: Player) -> None:
    await player.send(type="ping", ref="still-here")
    assert (await player.next("pong"))["ref"] == "still-here"


@proves(*REFUSED)
@pytest.mark.parametrize("code", sorted(REFUSED))
async def test_refused_frames(game_server: GameServer, code: str) -> None:
    app = game_server.app
    db = app.storage.db
    if code == "invalid_text":
        player, _ = await game_server.register("alice")
    else:
        player = await game_server.connect()
        await player.next("hello")
    frames = REFUSED[code]
    for i, frame in enumerate(frames):
        await refused(player, code, frame, f"{code}-{i}")
    await refused(player, code, frames[0], None)
    await still_usable(player)

    users = [r["username"] for r in await db.fetch("SELECT username FROM users")]
    assert users == (["alice"] if code == "invalid_text" else [])
    assert len(await db.fetch("SELECT 1 FROM sessions")) == len(users)
    await app.chat.save()
    assert await db.fetch("SELECT 1 FROM chat_messages") == []
    assert not app.chat.recent()
    types = [f["type"] for f in player.frames]
    assert types.count("session") == len(users) and "chat" not in types
    await player.close()


@proves("round_crashed")
async def test_a_cashout_after_the_crash(manual_game: ManualGame) -> None:
    app = manual_game.app
    alice, session = await manual_game.register("alice")
    await alice.send(type="bet", amount=1000, ref="b")
    assert (await alice.next("bet_accepted", ref="b"))["balance"] == 99_000
    await manual_game.to_phase("crashed")
    await alice.next("crashed", round_id=app.runner.round_id)
    await refused(alice, "round_crashed", {"type": "cashout"}, "late")
    await refused(alice, "round_crashed", {"type": "cashout"}, None)
    await still_usable(alice)

    assert not [f for f in alice.frames if f["type"] == "cashed_out"]
    assert app.runner.game.balance_of(session["user"]["id"]) == 99_000
    await alice.close()
