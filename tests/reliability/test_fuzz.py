"""Issue 7, item 8: fuzzed frames at the codec and over the wire.

- At the codec, Hypothesis writes JSON *text* with what a parser trips on:
  NaN and Infinity, integers past 64 bits and numbers past a double, deep
  nesting, duplicate keys, escaped lone surrogates, odd unicode, a BOM,
  trailing garbage. Only codes protocol.md documents come out.
- Over the wire, Hypothesis sends a logged-in connection text frames,
  binary frames and fragmented messages; after each batch a ``ping`` must
  get its ``pong`` on the same connection, and every ``error`` that comes back
  carries a documented code (never ``internal_error``).
- Raw bytes that are not WebSocket at all (before or after the handshake)
  end that connection with a documented close code, if any, and nothing else.
- The frame-size limit is exact: 4096 bytes pass, 4097 close with 1009,
  fragmented or not; a text frame that is not UTF-8 closes with 1007.

Afterwards the server is healthy, the game loop runs, and a new client is
served as usual.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from argon2 import PasswordHasher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pillarpayout_ws.engine.records import BetPlaced, RoundCrashed, RoundOpened, RoundRecord
from pillarpayout_ws.protocol import (
    COMMAND_TYPES,
    Chat,
    FrameError,
    Login,
    PlaceBet,
    Register,
    decode_command,
)
from pillarpayout_ws.server import limits
from pillarpayout_ws.server.routes import metrics_response
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.settle import settle_round

from ..serving import healthz
from ..storage.helpers import make_chain, make_users
from .conftest import Client, Rig, RigFactory, chain_where, documented_close_codes, documented_codes

MAX_FRAME = 4096
PASSWORD = "correct horse battery"  # what Rig.register uses
CODES = documented_codes("Error codes")
CLOSE_CODES = documented_close_codes()
# Documented, but each means a bug or an outage, which fuzzing must not cause.
NEVER = {"internal_error", "unknown_account", "unavailable", "shutting_down"}

# --- strategies -------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8"), max_size=40)
_odd_text = st.sampled_from(
    [
        "\u202e\u2066",  # bidi overrides
        "\ufeff",  # BOM
        "\u200b\u200d",  # zero width
        "\U0001f9f1" * 3,  # astral plane
        "e\u0301",  # combining accent
        "\ufffe\uffff",  # non-characters
        "\x00\x1f\x7f",
        "a\x00b",  # PostgreSQL text cannot hold U+0000
        "\u2028\u2029",  # line and paragraph separators
        "a" * 300,
    ]
)
_numbers = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, -1, 2**53, 2**53 + 1, 2**63, 2**64, 10**30]),
    st.floats(),  # NaN and infinities: json.dumps writes NaN / Infinity
)
_scalars = st.one_of(st.none(), st.booleans(), _numbers, _text, _odd_text)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(_text | st.sampled_from(["type", "ref"]), inner, max_size=3)
    ),
    max_leaves=12,
)
_fields = {
    name: _values
    | st.sampled_from(["ada_lovelace", "ada@example.org", "correct horse battery", "2.35"])
    for name in ("username", "email", "password", "token", "text")
}
_commands = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(COMMAND_TYPES)) | _values},
    optional={
        "ref": st.none() | st.text(max_size=70) | _values,
        "amount": _numbers | _values | st.integers(min_value=1, max_value=5000),
        "auto_cashout": _numbers | _values | st.sampled_from([1.01, 2.35, 2.355, 1e400]),
        **_fields,
    },
)


def _dumps(value: object, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)


@st.composite
def _nasty_json(draw: st.DrawFn) -> str:
    """JSON text with one of the things a parser trips on."""
    base = draw(_commands)
    text = _dumps(base, draw(st.booleans()))
    trick = draw(
        st.sampled_from(
            ["none", "nan", "huge", "deep", "dup", "surrogate", "bom", "trailing", "cut", "ws"]
        )
    )
    inner = text[1:-1]
    comma = ", " if inner else ""
    if trick == "nan":
        token = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "nan", "inf"]))
        return "{" + inner + comma + f'"amount": {token}' + "}"
    if trick == "huge":
        digits = draw(st.integers(min_value=20, max_value=500))
        number = draw(st.sampled_from(["1" * digits, "-" + "9" * digits, f"1e{digits}"]))
        return "{" + inner + comma + f'"amount": {number}' + "}"
    if trick == "deep":
        depth = draw(st.integers(min_value=500, max_value=1900))
        return "{" + inner + comma + '"x": ' + "[" * depth + "]" * depth + "}"
    if trick == "dup":
        return "{" + inner + comma + '"type": "ping", "type": "bet"}'
    if trick == "surrogate":
        escape = draw(st.sampled_from(["\\ud800", "\\udfff", "\\ud83d", "\\udc00\\ud800"]))
        return "{" + inner + comma + f'"text": "a{escape}b", "ref": "{escape}"' + "}"
    if trick == "bom":
        return "\ufeff" + text
    if trick == "trailing":
        return text + draw(st.sampled_from(["x", "}", " {}", "\x00", "//"]))
    if trick == "cut":
        return text[: draw(st.integers(min_value=0, max_value=max(0, len(text) - 1)))]
    if trick == "ws":
        return draw(st.sampled_from([" ", "\t\n", "\u00a0", "\u3000"])) + text
    return text


def _outcome_code(data: str | bytes) -> str | None:
    try:
        decode_command(data)
    except FrameError as error:
        return str(error.code)
    return None


@settings(max_examples=400, database=None, deadline=None)
@given(_nasty_json())
def test_the_codec_answers_nasty_json_with_documented_codes(text: str) -> None:
    code = _outcome_code(text)
    assert code is None or code in CODES


# --- over the wire ----------------------------------------------------------------


@dataclass
class Wire:
    """A server and one logged-in connection the fuzzer keeps using."""

    rig: Rig
    player: Client | None = None
    users: itertools.count[int] = field(default_factory=itertools.count)
    probes: itertools.count[int] = field(default_factory=itertools.count)
    closes: list[int | None] = field(default_factory=list)

    async def connection(self) -> Client:
        """The connection, or a new one with a new user once the last one closed or
        logged out (so every example can be replayed alone when Hypothesis shrinks)."""
        player = self.player
        if player is None or player.closed.done() or self.logged_out(player):
            if player is not None:
                if player.closed.done():
                    self.closes.append(player.ws.close_code)
                else:
                    await player.close()
            player, _ = await self.rig.register(f"fuzz{next(self.users)}")
            self.player = player
        return player

    @staticmethod
    def logged_out(player: Client) -> bool:
        last = {f["type"]: i for i, f in enumerate(player.frames)}
        return last.get("logged_out", -1) > last.get("session", -1)


@pytest.fixture
async def wire(make_rig: RigFactory, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Wire]:
    """The fuzzer's server; once the fuzzing is over, it must still be fine."""
    # The frame rate limits have their own tests; here they would only make
    # every connection a flood after 40 frames.
    monkeypatch.setattr(limits, "FRAME_RATE", 1e6)
    monkeypatch.setattr(limits, "FRAME_BURST", 1e6)
    # So would the budget of every frame, fragments included (60 a second): a
    # fast run of fragmented examples was closed with 1008 now and then.
    monkeypatch.setattr(limits, "ALL_FRAMES_RATE", 1e6)
    monkeypatch.setattr(limits, "ALL_FRAMES_BURST", 1e6)
    top, _ = chain_where(lambda points: all(150 <= p <= 400 for p in points), rounds=4)
    rig = await make_rig(top)
    # Fuzzed logins and registrations each hash a password; argon2 at full cost
    # (64 MiB, ~0.1 s) would turn a few hundred frames into a minute, and the
    # cost is not what is fuzzed here.
    monkeypatch.setattr(rig.app.accounts, "_hasher", PasswordHasher(1, 1024, 1))
    wire = Wire(rig)
    yield wire
    # No connection was closed: every frame was within the limits.
    assert wire.closes == []
    for player in rig.players:
        assert_documented(player.frames)
    await assert_server_fine(rig)
    # Every chat line taken was stored (none is kept back as refused by PostgreSQL).
    await rig.app.chat.save()
    assert rig.app.chat.unsaved == 0
    # Whatever the fuzzed bets and cashouts did, the money adds up.
    await rig.stop()
    await rig.assert_audit_clean()


@st.composite
def _fragments(draw: st.DrawFn) -> list[str] | list[bytes]:
    """One message in 2 to 5 fragments: JSON text, or binary."""
    whole: str | bytes = draw(
        _commands.map(lambda c: _dumps(c, False)) | _nasty_json() | st.binary(max_size=60)
    )
    cuts = sorted(draw(st.lists(st.integers(0, len(whole)), min_size=1, max_size=4)))
    bounds = [0, *cuts, len(whole)]
    parts = [whole[a:b] for a, b in itertools.pairwise(bounds)]
    if isinstance(whole, str):
        return [p for p in parts if isinstance(p, str)]
    return [p for p in parts if isinstance(p, bytes)]


_utf8 = st.characters(codec="utf-8")
_ref = st.none() | st.text(_utf8, max_size=10) | _odd_text.map(lambda t: t[:64])
# Well-formed or nearly: these get past the codec to the accounts, the chat
# and the engine (a bet, a cashout, a login) and come back with their errors.
_plausible = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.just("bet"),
            "amount": st.integers(-5, 20_000) | st.sampled_from([10, 100, 1000, 2**53]),
            "auto_cashout": st.none()
            | st.decimals(1, 30, places=2).map(float)
            | st.floats(0, 10**7),
            "ref": _ref,
        }
    ),
    st.fixed_dictionaries({"type": st.just("cashout"), "ref": _ref}),
    st.fixed_dictionaries({"type": st.just("chat"), "text": st.text(_utf8, max_size=300)}),
    st.fixed_dictionaries(
        {
            "type": st.just("login"),
            "username": st.sampled_from(["fuzz0", "FUZZ0", "nobody"]) | st.text(_utf8, max_size=33),
            "password": st.sampled_from(["correct horse battery"]) | st.text(_utf8, max_size=40),
        }
    ),
    st.fixed_dictionaries({"type": st.just("resume"), "token": st.text(_utf8, max_size=130)}),
    st.fixed_dictionaries(
        {
            "type": st.just("register"),
            "username": st.from_regex(r"[A-Za-z0-9_.\-]{2,33}", fullmatch=True),
            "email": st.from_regex(r"[a-z0-9.+]{1,10}@[a-z]{1,8}\.[a-z]{2,4}", fullmatch=True)
            | st.text(_utf8, max_size=20),
            "password": st.text(_utf8, min_size=6, max_size=20),
        }
    ),
    st.just({"type": "logout"}),
    st.fixed_dictionaries({"type": st.just("ping"), "ref": _ref}),
).flatmap(lambda command: st.booleans().map(lambda ascii_only: _dumps(command, ascii_only)))

Payload = str | bytes | list[str] | list[bytes]

_payloads: st.SearchStrategy[Payload] = st.one_of(
    _plausible,
    _plausible,
    _plausible,
    st.tuples(_commands, st.booleans()).map(lambda t: _dumps(*t)),  # NaN, \u escapes
    _nasty_json(),
    _values.map(lambda v: _dumps(v, False)),
    st.text(st.characters(codec="utf-8"), max_size=200),
    st.binary(max_size=200),  # a binary frame
    _fragments(),
)


def _size(payload: Payload) -> int:
    parts: list[str | bytes] = list(payload) if isinstance(payload, list) else [payload]
    return sum(len(p.encode() if isinstance(p, str) else p) for p in parts)


@settings(
    max_examples=250,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(_payloads.filter(lambda p: _size(p) <= MAX_FRAME), min_size=1, max_size=4))
async def test_fuzzed_frames_over_the_wire(wire: Wire, batch: list[Payload]) -> None:
    player = await wire.connection()
    start = len(player.frames)
    for payload in batch:
        await player.ws.send(payload)
    ref = f"probe-{next(wire.probes)}"
    await player.send(type="ping", ref=ref)
    # Every frame was within the limits: the connection carries on.
    pong = await player.next("pong", ref=ref)
    # The connection answers its frames in order, so its own answers (codec,
    # accounts, chat) are all in before the pong. The game loop's (bets,
    # cashouts) may come later: the fixture checks those at the end.
    assert_documented(player.frames[start : player.frames.index(pong)])


def assert_documented(frames: list[dict[str, Any]]) -> None:
    for frame in frames:
        if frame["type"] == "error":
            assert set(frame) == {"type", "code", "message", "ref"}, frame
            assert frame["code"] in CODES and frame["code"] not in NEVER, frame


async def assert_server_fine(rig: Rig) -> None:
    app = rig.app
    await app.health.check()
    assert app.health.state["game_loop"]
    assert await asyncio.to_thread(healthz, app.port) == 200
    newcomer = await rig.connect()
    await newcomer.next("hello")
    await newcomer.send(type="ping", ref="fine")
    await newcomer.next("pong", ref="fine")
    await newcomer.next("tick", within=30)  # the game goes on
    metrics = metrics_response(app.metrics.registry).body.decode()
    assert 'code="internal_error"' not in metrics


# --- what the codec lets through, storage can hold ---------------------------------


@dataclass
class Store:
    storage: Storage
    user_id: int
    chain_id: int
    rounds: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


@pytest.fixture
async def store(storage: Storage) -> Store:
    (user,) = await make_users(storage, 1, balance=10**12)
    return Store(storage, user.id, await make_chain(storage))


@settings(
    max_examples=150,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=st.text(_utf8, max_size=300) | _odd_text, other=st.text(_utf8, max_size=20))
async def test_every_string_the_codec_accepts_storage_can_hold(
    store: Store, text: str, other: str
) -> None:
    """Client text goes into PostgreSQL as user names, emails, chat and bet refs,
    and is looked up as a login name: none of it may be refused there (which
    would be an ``unavailable`` for nothing, or a round that cannot be flushed)."""
    db = store.storage.db

    def decoded(**fields: object) -> object:
        try:
            return decode_command(json.dumps(fields))
        except FrameError:
            return None

    login = decoded(type="login", username=text[:32] or "x", password=text or "x")
    if isinstance(login, Login):
        await db.user_by_name(login.username)  # found or not (earlier examples register)
    register = decoded(
        type="register", username=text, email=f"{other}@{text}.example", password=text
    )
    if isinstance(register, Register):
        await db.create_user(register.username, register.email, "argon2-hash", 0)
    chat = decoded(type="chat", text=text)
    if isinstance(chat, Chat):
        await db.save_chat([(store.user_id, None, chat.text)])
    bet = decoded(type="bet", amount=100, ref=text[:64])
    if isinstance(bet, PlaceBet):
        round_id = next(store.rounds)
        records: list[RoundRecord] = [
            RoundOpened(round_id, store.chain_id, round_id, "00" * 32, "salt", 1.0),
            BetPlaced(round_id, store.user_id, bet.ref, bet.amount, None, 0),
            RoundCrashed(round_id, 150, 1000, "ab" * 32),
        ]
        result = await db.flush([settle_round(records)])
        assert result.rounds_written == 1
        assert bet.ref in {r.ref for r in await db.bet_refs(round_id)}


# --- limits and raw bytes -----------------------------------------------------------


async def test_the_frame_size_limit_is_exact(make_rig: RigFactory) -> None:
    top, _ = chain_where(lambda points: all(150 <= p <= 400 for p in points), rounds=2)
    rig = await make_rig(top)

    def ping(size: int, ref: str) -> str:
        frame = f'{{"type":"ping","ref":"{ref}"}}'
        return frame + " " * (size - len(frame))

    player = await rig.connect()
    await player.ws.send(ping(MAX_FRAME, "whole"))
    await player.next("pong", ref="whole")
    half = ping(MAX_FRAME, "parts")
    await player.ws.send([half[:2000], half[2000:]])
    await player.next("pong", ref="parts")
    for oversize in (ping(MAX_FRAME + 1, "x"), [ping(MAX_FRAME, "y"), " "]):
        player = await rig.connect()
        await player.next("hello")
        await player.ws.send(oversize)
        await player.closed
        assert player.ws.close_code == 1009
        assert 1009 in CLOSE_CODES
    # A text frame that is not UTF-8 is a protocol error of its own: 1007.
    player = await rig.connect()
    await player.next("hello")
    player.ws.protocol.send_text(b'{"type":"ping","ref":"\xff"}')
    player.ws.send_data()
    await player.closed
    assert player.ws.close_code == 1007
    assert 1007 in CLOSE_CODES
    await assert_server_fine(rig)


def _read_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of the server's frames (unmasked) in ``data``, complete ones only."""
    frames = []
    while len(data) >= 2:
        opcode, length, at = data[0] & 0x0F, data[1] & 0x7F, 2
        if length == 126:
            length, at = int.from_bytes(data[2:4], "big"), 4
        elif length == 127:
            length, at = int.from_bytes(data[2:10], "big"), 10
        if len(data) < at + length:
            break
        frames.append((opcode, data[at : at + length]))
        data = data[at + length :]
    return frames


async def _raw_session(port: int, garbage: bytes, handshake: bool) -> tuple[bytes, bytes]:
    """Send ``garbage`` (after a WebSocket handshake if asked); (HTTP head, what followed).

    The server may reset the connection once it has given up on it (our
    garbage still unread), so what arrives is read as it comes and kept.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = b""

    async def read_until(done: Callable[[bytes], bool]) -> None:
        nonlocal data
        with contextlib.suppress(ConnectionResetError):
            while not done(data):
                chunk = await reader.read(65536)
                if not chunk:
                    return
                data += chunk

    try:
        async with asyncio.timeout(30):
            if handshake:
                key = base64.b64encode(os.urandom(16)).decode()
                writer.write(
                    f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                    f"Sec-WebSocket-Version: 13\r\n\r\n".encode()
                )
                # The 101 and the hello frame, before the garbage goes out.
                await read_until(lambda d: len(_read_frames(d.partition(b"\r\n\r\n")[2])) > 0)
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                writer.write(garbage)
                await writer.drain()
                writer.write_eof()
            await read_until(lambda d: False)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


async def test_random_bytes_on_the_socket(make_rig: RigFactory) -> None:
    top, _ = chain_where(lambda points: all(150 <= p <= 400 for p in points), rounds=2)
    rig = await make_rig(top)
    rng = random.Random(7)
    close_codes = []
    for i in range(60):
        garbage = rng.randbytes(rng.choice((1, 2, 7, 64, 300, 5000)))
        if i % 3 == 0:  # instead of HTTP: refused without an upgrade
            head, _ = await _raw_session(rig.app.port, garbage, handshake=False)
            assert head == b"" or head.startswith(b"HTTP/1.1 4"), head[:80]
            continue
        head, rest = await _raw_session(rig.app.port, garbage, handshake=True)
        assert head.startswith(b"HTTP/1.1 101"), head[:80]
        frames = _read_frames(rest)
        assert orjson.loads(frames[0][1])["type"] == "hello"
        for opcode, payload in frames[1:]:
            if opcode == 0x8:  # close: a documented code, if the server sent one
                close_codes.append(int.from_bytes(payload[:2], "big"))
            else:  # broadcasts, or an answer to a frame the garbage happened to spell
                assert opcode == 0x1
                frame = orjson.loads(payload)
                assert frame["type"] != "error" or frame["code"] in CODES, frame
    assert close_codes and set(close_codes) <= CLOSE_CODES, close_codes
    await assert_server_fine(rig)


async def test_a_nul_is_refused_not_stored_nor_an_outage(make_rig: RigFactory) -> None:
    """Found by the wire fuzzer: PostgreSQL text cannot hold U+0000.

    A bet ref with a NUL was accepted into the write-ahead, and then no flush
    could ever write its round (nor any later one, which share its batch); a
    login name with a NUL was answered ``unavailable``, as if PostgreSQL were
    down.
    """
    top, _ = chain_where(lambda points: all(150 <= p <= 400 for p in points), rounds=2)
    rig = await make_rig(top, betting_ms=100_000)  # 10 s of real time, never waited for
    alice, session = await rig.register("alice")
    await alice.send(type="bet", amount=100, ref="x\x00y")
    refused = await alice.next_where(lambda f: f["type"] in ("error", "bet_accepted"))
    assert (refused["type"], refused["code"], refused["ref"]) == ("error", "bad_frame", None)
    for name in ("alice\x00", "\x00", "a\x00' OR '1'='1"):
        await alice.send(type="login", username=name, password=PASSWORD, ref="l")
        assert (await alice.answer("l"))["code"] == "invalid_credentials"
    await alice.send(type="bet", amount=100, ref="fine")
    accepted = await alice.answer("fine")
    assert accepted["type"] == "bet_accepted"
    await rig.stop()  # flushes the round (void)
    assert await rig.storage.live.pending_round_ids() == []
    rounds = await rig.fetch("SELECT id, status FROM rounds")
    assert [tuple(r) for r in rounds] == [(accepted["round_id"], "void")]
    assert await rig.balance(session["user"]["id"]) == 100_000
    await rig.assert_audit_clean()
