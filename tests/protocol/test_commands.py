"""Decoding client frames into commands (protocol/commands.py)."""

from __future__ import annotations

import json
import typing
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pillarpayout_ws.protocol import (
    COMMAND_TYPES,
    CancelBet,
    CashOut,
    Chat,
    Command,
    FrameCode,
    FrameError,
    GetLimits,
    Login,
    Logout,
    LogoutAll,
    Mute,
    Ping,
    PlaceBet,
    Register,
    Resume,
    SetLimits,
    decode_command,
    encode_error,
)

# Every code decode_command may raise; protocol.md lists the same set.
DOCUMENTED_CODES = {
    "bad_frame",
    "unknown_type",
    "invalid_amount",
    "invalid_auto_cashout",
    "invalid_slot",
    "invalid_username",
    "invalid_email",
    "invalid_password",
    "invalid_text",
    "invalid_minutes",
    "invalid_limit",
}


def frame(**fields: Any) -> str:
    return json.dumps(fields)


def refused(data: str | bytes) -> FrameError:
    with pytest.raises(FrameError) as caught:
        decode_command(data)
    return caught.value


def test_documented_codes_are_the_enum() -> None:
    assert {code.value for code in FrameCode} == DOCUMENTED_CODES


# --- each command decodes --------------------------------------------------------


def test_set_limits_and_limits_decode() -> None:
    assert decode_command(
        frame(
            type="set_limits",
            ref="l",
            limits={"daily_loss": 5000, "weekly_wager": None},
            cool_off_days=42,
            self_exclusion_months=6,
        )
    ) == SetLimits({"daily_loss": 5000, "weekly_wager": None}, 42, 6, "l")
    assert decode_command(frame(type="set_limits")) == SetLimits({})
    assert decode_command(frame(type="limits", ref="q")) == GetLimits("q")
    assert refused(frame(type="set_limits", limits={"daily": 1})).code == "invalid_limit"


@pytest.mark.parametrize(
    ("data", "command"),
    [
        (
            frame(type="register", username="ada_l.1-x", email="ada@example.org", password="p" * 8),
            Register("ada_l.1-x", "ada@example.org", "p" * 8),
        ),
        (frame(type="login", username="ada", password="secret"), Login("ada", "secret")),
        (frame(type="resume", token="t0k"), Resume("t0k")),
        (frame(type="logout"), Logout()),
        (frame(type="logout_all", ref="everywhere"), LogoutAll("everywhere")),
        (frame(type="bet", amount=1250), PlaceBet(1250, None)),
        (frame(type="bet", amount=1, auto_cashout=None, ref="b1"), PlaceBet(1, None, "b1")),
        (frame(type="bet", amount=500, auto_cashout=2.35, ref="b2"), PlaceBet(500, 235, "b2")),
        (frame(type="bet", amount=500, auto_cashout=1.01), PlaceBet(500, 101)),
        (frame(type="bet", amount=500, auto_cashout=2), PlaceBet(500, 200)),
        (frame(type="bet", amount=500, auto_cashout=1.1), PlaceBet(500, 110)),
        (frame(type="bet", amount=500, auto_cashout=1000000.99), PlaceBet(500, 100000099)),
        (frame(type="bet", amount=2**53), PlaceBet(2**53, None)),
        (frame(type="cashout"), CashOut()),
        (frame(type="cashout", ref="c1"), CashOut("c1")),
        (frame(type="bet", amount=500, slot=1, ref="b3"), PlaceBet(500, None, "b3", 1)),
        (frame(type="bet", amount=500, slot=0), PlaceBet(500, None)),
        (frame(type="bet", amount=500, slot=None), PlaceBet(500, None)),
        (frame(type="cashout", slot=1), CashOut(None, 1)),
        (frame(type="cashout", slot=None, ref="c2"), CashOut("c2")),
        (frame(type="cancel_bet", ref="x1"), CancelBet("x1")),
        (frame(type="cancel_bet", slot=1), CancelBet(None, 1)),
        (frame(type="chat", text="  hello 🎉 wörld  "), Chat("hello 🎉 wörld")),
        (frame(type="ping", ref="p"), Ping("p")),
        # Unknown extra fields are ignored.
        (frame(type="cashout", future={"x": [1, 2]}, ref=None), CashOut()),
    ],
)
def test_each_command_decodes(data: str, command: Command) -> None:
    assert decode_command(data) == command


def test_every_type_has_a_case() -> None:
    assert sorted(COMMAND_TYPES) == [
        "ban",
        "bet",
        "cancel_bet",
        "cashout",
        "chat",
        "delete_chat",
        "limits",
        "login",
        "logout",
        "logout_all",
        "mute",
        "ping",
        "register",
        "resume",
        "set_limits",
        "unban",
        "unmute",
    ]


def test_secrets_stay_out_of_repr() -> None:
    register = decode_command(
        frame(type="register", username="ada", email="a@b.co", password="hunter22")
    )
    login = decode_command(frame(type="login", username="ada", password="hunter22"))
    resume = decode_command(frame(type="resume", token="sekret-token"))
    assert "hunter22" not in repr(register)
    assert "hunter22" not in repr(login)
    assert "sekret-token" not in repr(resume)


def test_chat_keeps_inner_spaces_and_exactly_280() -> None:
    assert decode_command(frame(type="chat", text=" " + "x" * 280 + " ")) == Chat("x" * 280)
    assert decode_command(frame(type="chat", text="a  b")) == Chat("a  b")


# --- refusals --------------------------------------------------------------------

CASES: list[tuple[str | bytes, str]] = [
    # not a JSON object
    ("", "bad_frame"),
    ("{", "bad_frame"),
    ("[]", "bad_frame"),
    ('"bet"', "bad_frame"),
    ("null", "bad_frame"),
    ("42", "bad_frame"),
    ('{"type": "bet", "amount": NaN}', "bad_frame"),
    ('{"type": "bet", "amount": Infinity}', "bad_frame"),
    ('{"type": "bet", "amount": -Infinity}', "bad_frame"),
    ('{"type": "bet", "amount": 1e400}', "bad_frame"),
    ('{"type": "chat", "text": "\\ud800"}', "bad_frame"),  # lone surrogate escape
    ('{"type": "chat", "text": "\ud800"}', "bad_frame"),  # lone surrogate in the str
    ("[" * 2000 + "]" * 2000, "bad_frame"),
    ('{"type": "cashout"} trailing', "bad_frame"),
    # binary frames, even of valid JSON
    (b'{"type": "cashout"}', "bad_frame"),
    (b"", "bad_frame"),
    # type
    ("{}", "bad_frame"),
    (frame(type=None), "bad_frame"),
    (frame(type=1), "bad_frame"),
    (frame(type=["bet"]), "bad_frame"),
    (frame(type="Bet"), "unknown_type"),
    (frame(type=""), "unknown_type"),
    (frame(type="withdraw_all"), "unknown_type"),
    (frame(type="x" * 10_000), "unknown_type"),
    # missing fields and wrong types
    (frame(type="bet"), "bad_frame"),
    (frame(type="login", username="ada"), "bad_frame"),
    (frame(type="login", username=None, password="secret12"), "bad_frame"),
    (frame(type="login", username="", password="secret12"), "bad_frame"),
    (frame(type="login", username="a" * 33, password="secret12"), "bad_frame"),
    (frame(type="login", username="ada", password="p" * 257), "bad_frame"),
    (frame(type="resume"), "bad_frame"),
    (frame(type="resume", token=""), "bad_frame"),
    (frame(type="resume", token="t" * 129), "bad_frame"),
    (frame(type="resume", token={"$ne": None}), "bad_frame"),
    (frame(type="register", email="a@b.co", password="p" * 8), "bad_frame"),
    (frame(type="register", username=7, email="a@b.co", password="p" * 8), "bad_frame"),
    (frame(type="chat"), "bad_frame"),
    (frame(type="chat", text=["hi"]), "bad_frame"),
    (frame(type="chat", text=[[[[[[["deep"]]]]]]]), "bad_frame"),
    (frame(type="cashout", ref=5), "bad_frame"),
    (frame(type="cashout", ref="r" * 65), "bad_frame"),
    # amount
    (frame(type="bet", amount=0), "invalid_amount"),
    (frame(type="bet", amount=-5), "invalid_amount"),
    (frame(type="bet", amount=10.0), "invalid_amount"),
    (frame(type="bet", amount=10.5), "invalid_amount"),
    (frame(type="bet", amount=True), "invalid_amount"),
    (frame(type="bet", amount=False), "invalid_amount"),
    (frame(type="bet", amount="100"), "invalid_amount"),
    (frame(type="bet", amount=None), "invalid_amount"),
    (frame(type="bet", amount=[100]), "invalid_amount"),
    (frame(type="bet", amount=2**53 + 1), "invalid_amount"),
    (frame(type="bet", amount=2**64 - 1), "invalid_amount"),
    (frame(type="bet", amount=2**64), "invalid_amount"),  # orjson: a float
    (frame(type="bet", amount=10**300), "invalid_amount"),  # orjson: a float
    # Beyond a double's range orjson refuses the whole text: not valid JSON for us.
    (frame(type="bet", amount=10**400), "bad_frame"),
    ('{"type": "bet", "amount": 1e2}', "invalid_amount"),
    # auto_cashout
    (frame(type="bet", amount=100, auto_cashout=2.355), "invalid_auto_cashout"),
    # More than two decimals is refused, however close to two it is: never rounded.
    (frame(type="bet", amount=100, auto_cashout=2.3400000001), "invalid_auto_cashout"),
    (frame(type="bet", amount=100, auto_cashout=1.0100000000001), "invalid_auto_cashout"),
    # a slot is the integer 0 or 1, on a bet and a cashout
    (frame(type="bet", amount=100, slot=2), "invalid_slot"),
    (frame(type="bet", amount=100, slot=-1), "invalid_slot"),
    (frame(type="bet", amount=100, slot=1.0), "invalid_slot"),
    (frame(type="bet", amount=100, slot=True), "invalid_slot"),
    (frame(type="bet", amount=100, slot="1"), "invalid_slot"),
    (frame(type="bet", amount=100, slot=[0]), "invalid_slot"),
    (frame(type="cashout", slot=2), "invalid_slot"),
    (frame(type="cashout", slot=False), "invalid_slot"),
    (frame(type="cancel_bet", slot=2), "invalid_slot"),
    (frame(type="bet", amount=100, auto_cashout=1.005), "invalid_auto_cashout"),
    (frame(type="bet", amount=100, auto_cashout=1.00), "invalid_auto_cashout"),
    (frame(type="bet", amount=100, auto_cashout=1), "invalid_auto_cashout"),
    (frame(type="bet", amount=100, auto_cashout=0), "invalid_auto_cashout"),
    (frame(type="bet", amount=100, auto_cashout=-2.5), "invalid_auto_cashout"),
    (frame(type="bet", amount=100, auto_cashout="2.35"), "invalid_auto_cashout"),
    (frame(type="bet", amount=100, auto_cashout=True), "invalid_auto_cashout"),
    (frame(type="bet", amount=100, auto_cashout={}), "invalid_auto_cashout"),
    (frame(type="bet", amount=100, auto_cashout=1e300), "invalid_auto_cashout"),
    (frame(type="bet", amount=100, auto_cashout=1.7976931348623157e308), "invalid_auto_cashout"),
    (frame(type="bet", amount=100, auto_cashout=10**30), "invalid_auto_cashout"),
    (frame(type="bet", amount=100, auto_cashout=2**63), "invalid_auto_cashout"),
    ('{"type": "bet", "amount": 100, "auto_cashout": NaN}', "bad_frame"),
    # register
    (frame(type="register", username="ab", email="a@b.co", password="p" * 8), "invalid_username"),
    (
        frame(type="register", username="a" * 33, email="a@b.co", password="p" * 8),
        "invalid_username",
    ),
    (frame(type="register", username="ad a", email="a@b.co", password="p" * 8), "invalid_username"),
    (frame(type="register", username="ädä", email="a@b.co", password="p" * 8), "invalid_username"),
    (
        frame(type="register", username="ada\n", email="a@b.co", password="p" * 8),
        "invalid_username",
    ),
    (
        frame(type="register", username="\uff41\uff44\uff41", email="a@b.co", password="p" * 8),
        "invalid_username",
    ),
    (frame(type="register", username="ada", email="ada", password="p" * 8), "invalid_email"),
    (frame(type="register", username="ada", email="ada@b", password="p" * 8), "invalid_email"),
    (frame(type="register", username="ada", email="@b.co", password="p" * 8), "invalid_email"),
    (frame(type="register", username="ada", email="a@@b.co", password="p" * 8), "invalid_email"),
    (frame(type="register", username="ada", email="a@b..co", password="p" * 8), "invalid_email"),
    (frame(type="register", username="ada", email="a d@b.co", password="p" * 8), "invalid_email"),
    (
        frame(type="register", username="ada", email="a\u200b@b.co", password="p" * 8),
        "invalid_email",
    ),
    (
        frame(type="register", username="ada", email="a@" + "b" * 250 + ".co", password="p" * 8),
        "invalid_email",
    ),
    (frame(type="register", username="ada", email="a@b.co", password="p" * 7), "invalid_password"),
    (
        frame(type="register", username="ada", email="a@b.co", password="p" * 257),
        "invalid_password",
    ),
    # chat
    (frame(type="chat", text=""), "invalid_text"),
    (frame(type="chat", text="   \t "), "invalid_text"),
    (frame(type="chat", text="x" * 281), "invalid_text"),
    (frame(type="chat", text="hi\nthere"), "invalid_text"),
    (frame(type="chat", text="hi\n"), "invalid_text"),  # refused, not trimmed away
    (frame(type="chat", text="bell\x07"), "invalid_text"),
    (frame(type="chat", text="nul\x00"), "invalid_text"),
    (frame(type="chat", text="evil\u202etxt.exe"), "invalid_text"),  # RTL override, Cf
    (frame(type="chat", text="zero\u200bwidth"), "invalid_text"),  # Cf
    # Lines that render blank: a Hangul filler, the blank Braille pattern, marks alone.
    (frame(type="chat", text="\u3164\u3164"), "invalid_text"),
    (frame(type="chat", text="\u2800"), "invalid_text"),
    (frame(type="chat", text="\u0301\u0302\u0303"), "invalid_text"),
    (frame(type="chat", text="\u00a0\u3000\u115f"), "invalid_text"),
    (frame(type="chat", text="line\u2028sep"), "invalid_text"),  # Zl
    (frame(type="chat", text="\ufeffbom"), "invalid_text"),  # Cf
    (frame(type="mute", username="bob", minutes=0), "invalid_minutes"),
    (frame(type="mute", username="bob", minutes="5"), "invalid_minutes"),
    (frame(type="set_limits", limits=[]), "invalid_limit"),
    (frame(type="set_limits", limits={"daily_loss": 0}), "invalid_limit"),
    (frame(type="set_limits", limits={"daily_loss": False}), "invalid_limit"),
    (frame(type="set_limits", cool_off_days=43), "invalid_limit"),
    (frame(type="set_limits", self_exclusion_months=5), "invalid_limit"),
]


@pytest.mark.parametrize(("data", "code"), CASES)
def test_refused_with_code(data: str | bytes, code: str) -> None:
    error = refused(data)
    assert error.code == code
    assert error.message


def test_every_code_is_exercised() -> None:
    assert {code for _, code in CASES} == DOCUMENTED_CODES


def test_binary_frame_message() -> None:
    error = refused(b"\x00\x01")
    assert (error.code, error.message, error.ref) == (
        "bad_frame",
        "binary frames are not accepted",
        None,
    )


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({}, "bad_frame"),  # no type
        ({"type": 3}, "bad_frame"),
        ({"type": "nope"}, "unknown_type"),
        ({"type": "bet"}, "bad_frame"),
        ({"type": "bet", "amount": 0}, "invalid_amount"),
        ({"type": "bet", "amount": 1, "auto_cashout": 2.355}, "invalid_auto_cashout"),
        ({"type": "register", "username": "a", "email": "a@b.co", "password": "x" * 8}, None),
        ({"type": "register", "username": "ada", "email": "x", "password": "x" * 8}, None),
        ({"type": "register", "username": "ada", "email": "a@b.co", "password": "x"}, None),
        ({"type": "login", "username": "ada"}, "bad_frame"),
        ({"type": "chat", "text": ""}, "invalid_text"),
    ],
)
def test_ref_is_carried_in_errors(fields: dict[str, Any], code: str | None) -> None:
    error = refused(json.dumps({**fields, "ref": "my-ref-7"}))
    if code is not None:
        assert error.code == code
    assert error.ref == "my-ref-7"


@pytest.mark.parametrize("ref", [5, 1.5, True, [], {}, "r" * 65, "nul\x00", "\x00"])
def test_invalid_ref_is_bad_frame_without_ref(ref: object) -> None:
    error = refused(json.dumps({"type": "bet", "amount": 100, "ref": ref}))
    assert (error.code, error.ref) == ("bad_frame", None)


def test_ref_limits() -> None:
    assert decode_command(frame(type="cashout", ref="r" * 64)) == CashOut("r" * 64)
    assert decode_command(frame(type="cashout", ref="")) == CashOut("")
    assert decode_command(frame(type="cashout", ref="é" * 64)) == CashOut("é" * 64)


def test_frame_error_is_in_the_project_tree() -> None:
    from pillarpayout_ws.exceptions import PillarPayoutError

    error = FrameError(FrameCode.BAD_FRAME, "nope", "r")
    assert isinstance(error, PillarPayoutError)
    assert (error.code, error.message, error.ref, str(error)) == ("bad_frame", "nope", "r", "nope")


# --- nothing but a command or a FrameError ever comes out --------------------------

_texts = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and infinities included: json.dumps writes NaN/Infinity
    | _texts
    | st.sampled_from(["", "2.35", "bet", "a@b.co", "ada", "x" * 300])
)
_json_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(_texts | st.sampled_from(["type", "ref"]), children, max_size=4)
    ),
    max_leaves=20,
)
_field_names = (
    "ref",
    "username",
    "email",
    "password",
    "token",
    "amount",
    "auto_cashout",
    "text",
)
# Mostly plausible values, so the fuzzing reaches past the first checks.
_field_value = st.one_of(
    st.from_regex(r"[ -~]{0,40}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_.@ -]{0,300}", fullmatch=True),
    _texts,
    st.integers(),
    st.floats(min_value=-1e6, max_value=1e6),
    st.decimals(min_value=-5, max_value=1000, places=3).map(float),
    _json_values,
)
_command_like = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(COMMAND_TYPES)) | _json_values},
    optional={
        "ref": st.none() | st.text(max_size=70) | _json_values,
        **{name: _field_value for name in _field_names if name != "ref"},
    },
)


def outcome(data: str | bytes) -> Command | FrameError:
    try:
        return decode_command(data)
    except FrameError as error:
        return error


def check_outcome(data: str | bytes) -> None:
    result = outcome(data)
    if isinstance(result, FrameError):
        assert result.code in DOCUMENTED_CODES
        assert result.ref is None or (isinstance(result.ref, str) and len(result.ref) <= 64)
        assert orjson.loads(encode_error(result.code, result.message, result.ref)) == {
            "type": "error",
            "code": result.code,
            "message": result.message,
            "ref": result.ref,
        }
        return
    assert isinstance(result, typing.get_args(Command))
    if isinstance(result, Mute):
        assert type(result.minutes) is int and 1 <= result.minutes <= 43_200
    if isinstance(result, PlaceBet):
        assert type(result.amount) is int and 1 <= result.amount <= 2**53
        assert result.auto_cashout is None or (
            type(result.auto_cashout) is int and result.auto_cashout >= 101
        )
    if isinstance(result, Chat):
        assert 1 <= len(result.text) <= 280
        orjson.dumps(result.text)  # fit to broadcast as it is


_FUZZ = settings(
    max_examples=300, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@_FUZZ
@given(_json_values, st.booleans())
def test_arbitrary_json_values(value: object, ascii_only: bool) -> None:
    check_outcome(json.dumps(value, ensure_ascii=ascii_only))


@_FUZZ
@given(_command_like, st.booleans())
def test_arbitrary_command_shaped_objects(value: dict[str, object], ascii_only: bool) -> None:
    check_outcome(json.dumps(value, ensure_ascii=ascii_only))


@_FUZZ
@given(st.text(st.characters(codec=None, exclude_categories=())) | st.binary())
def test_arbitrary_text_and_bytes(data: str | bytes) -> None:
    check_outcome(data)


@_FUZZ
@given(st.decimals(min_value=1, max_value=10**6, places=2, allow_nan=False))
def test_two_decimal_auto_cashouts_convert_exactly(value: Any) -> None:
    data = f'{{"type": "bet", "amount": 1, "auto_cashout": {value}}}'
    hundredths = int(value * 100)
    if hundredths < 101:
        assert refused(data).code == "invalid_auto_cashout"
    else:
        command = decode_command(data)
        assert isinstance(command, PlaceBet)
        assert command.auto_cashout == hundredths


# --- moderation commands ---------------------------------------------------------


def test_moderation_commands_decode() -> None:
    from pillarpayout_ws.protocol import Ban, DeleteChat, Mute, Unban, Unmute

    assert decode_command(frame(type="mute", username="bob", minutes=10, reason=" spam ")) == (
        Mute("bob", 10, "spam")
    )
    assert decode_command(frame(type="ban", username="bob", ref="r")) == Ban("bob", "", "r")
    assert decode_command(frame(type="unban", username="bob", reason=None)) == Unban("bob")
    assert decode_command(frame(type="unmute", username="bob")) == Unmute("bob")
    assert decode_command(frame(type="delete_chat", id=12, reason="x")) == DeleteChat(12, "x")


@pytest.mark.parametrize("minutes", [0, -5, 43_201, 10**30, 1.5, 10.0, "10", None, True, []])
def test_mute_minutes_are_a_whole_number_of_1_to_43200(minutes: object) -> None:
    with pytest.raises(FrameError) as refused:
        decode_command(frame(type="mute", username="bob", minutes=minutes, ref="m"))
    assert (refused.value.code, refused.value.ref) == ("invalid_minutes", "m")


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "ban"},
        {"type": "ban", "username": ""},
        {"type": "ban", "username": 5},
        {"type": "ban", "username": "b" * 33},
        {"type": "ban", "username": "bob", "reason": 5},
        {"type": "ban", "username": "bob", "reason": "r" * 201},
        {"type": "ban", "username": "bob", "reason": "two\nlines"},
        {"type": "delete_chat"},
        {"type": "delete_chat", "id": "12"},
        {"type": "delete_chat", "id": 1.5},
        {"type": "delete_chat", "id": True},
    ],
)
def test_malformed_moderation_frames_are_bad_frames(fields: dict[str, Any]) -> None:
    with pytest.raises(FrameError) as refused:
        decode_command(frame(**fields))
    assert refused.value.code == "bad_frame"
