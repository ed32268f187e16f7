"""--log-format json: one object a line, and never a password or a token."""

from __future__ import annotations

import datetime
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from pillarpayout_ws.logs import JsonFormatter, LogConfig, TextFormatter, mask_text, setup
from pillarpayout_ws.settings import configure

from .test_cli import run_cli


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("pillarpayout.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_object_a_line_with_time_level_logger_message_and_extras(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info("round %d crashed at %s", 7, "2.35", extra={"round_id": 7, "players": 3})
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        logger.exception("handling a frame failed")
    first, second = lines(stream)
    assert {"time", "level", "logger", "message"} <= set(first)
    assert (first["level"], first["logger"]) == ("INFO", "pillarpayout.test_logs")
    assert first["message"] == "round 7 crashed at 2.35"
    assert (first["round_id"], first["players"]) == (7, 3)
    when = datetime.datetime.fromisoformat(str(first["time"]))
    assert when.utcoffset() == datetime.timedelta(0)
    assert abs((datetime.datetime.now(datetime.UTC) - when).total_seconds()) < 60
    assert second["level"] == "ERROR" and "RuntimeError: boom" in str(second["exc_info"])
    assert "exc_info" not in first


def test_no_password_or_token_reaches_a_line(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    url = "postgresql://pp:hunter2@db.example:5432/pp"
    logger.warning(
        "storage error while handling a frame: cannot connect to %s",
        url,
        extra={
            "session_token": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "redis_url": "redis://default:sesame@10.0.0.1:6379/0",
            "password": "correct horse",
        },
    )
    try:
        raise ConnectionError(f"could not reach {url}")
    except ConnectionError:
        logger.exception("flush failed")
    text = stream.getvalue()
    for secret in ("hunter2", "sesame", "9f86d081884c", "correct horse"):
        assert secret not in text
    first, second = lines(stream)
    assert first["message"] == (
        "storage error while handling a frame: cannot connect to "
        "postgresql://pp:***@db.example:5432/pp"
    )
    assert first["session_token"] == first["password"] == "***"
    assert first["redis_url"] == "redis://default:***@10.0.0.1:6379/0"
    assert "postgresql://pp:***@db.example" in str(second["exc_info"])


def test_the_text_format_masks_too() -> None:
    record = logging.makeLogRecord({"msg": "at %s", "args": ("redis://u:pw@h:1/0",)})
    assert TextFormatter().format(record).endswith("at redis://u:***@h:1/0")
    assert mask_text("no url here") == "no url here"


def test_setup_installs_the_chosen_format(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        setup(configure(LogConfig, log_format="json", log_level="debug"))
        logging.getLogger("pillarpayout.x").debug("hi", extra={"n": 1})
        line = json.loads(capsys.readouterr().err.splitlines()[-1])
        assert (line["message"], line["level"], line["n"]) == ("hi", "DEBUG", 1)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_a_real_command_logs_json_lines(tmp_path: Path) -> None:
    result = run_cli("--log-level", "INFO", "audit", "--data-dir", str(tmp_path / "d"),
                     "--log-format", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r["message"] == "embedded servers stopped" for r in records)
    bad = run_cli("serve", "--log-format", "xml", "--print-config")
    assert bad.returncode == 2 and "--log-format must be text or json" in bad.stderr
