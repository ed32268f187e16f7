"""Flags made from configuration dataclasses (pillarpayout_ws/settings.py)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pillarpayout_ws.exceptions import ConfigError
from pillarpayout_ws.settings import add_flags, configure, flag_name, from_args, setting


@dataclass(frozen=True, kw_only=True)
class Inner:
    depth: int = setting(3, "how deep")

    def __post_init__(self) -> None:
        if self.depth < 0:
            raise ConfigError("must not be negative", setting="depth")


@dataclass(frozen=True, kw_only=True)
class Outer:
    name: str = setting("pillar", "what to call it")
    where: Path = setting(Path("."), "a folder")
    url: str | None = setting(None, "a URL", env="TEST_SETTINGS_URL", shown="none")
    loud: bool = setting(False, "say more")
    ratio: float = setting(0.5, "a share")
    tags: tuple[str, ...] = setting((), "repeatable", flag="tag", metavar="TAG")
    internal: int = 7  # no help: not a flag
    inner: Inner = field(default_factory=Inner)


def parse(*argv: str) -> Outer:
    parser = argparse.ArgumentParser()
    add_flags(parser, Outer)
    return from_args(Outer, parser.parse_args(argv))


def test_defaults_come_from_the_fields() -> None:
    assert parse() == Outer()


def test_every_kind_of_flag() -> None:
    config = parse(
        "--name", "x", "--where", "/tmp", "--url", "u", "--loud", "--ratio", "2",
        "--tag", "a", "--tag", "b", "--depth", "9",
    )  # fmt: skip
    assert config == Outer(
        name="x", where=Path("/tmp"), url="u", loud=True, ratio=2.0, tags=("a", "b"),
        inner=Inner(depth=9),
    )  # fmt: skip


def test_an_environment_variable_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SETTINGS_URL", "from-env")
    assert parse().url == "from-env"
    assert parse("--url", "flag").url == "flag"


def test_help_names_defaults_and_environment(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, Outer)
    help_text = " ".join(parser.format_help().split())
    assert "--tag TAG" in help_text and "--internal" not in help_text
    assert "a URL [env TEST_SETTINGS_URL, else none]" in help_text
    assert "say more [off]" in help_text and "how deep [3]" in help_text


def test_a_bad_value_names_its_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        parse("--depth", "-1")
    assert caught.value.setting == "depth"
    assert f"{flag_name(caught.value.setting)} {caught.value.reason}" == (
        "--depth must not be negative"
    )


def test_configure_takes_flat_names_and_refuses_unknown_ones() -> None:
    assert configure(Outer, depth=4, name="n") == Outer(name="n", inner=Inner(depth=4))
    with pytest.raises(TypeError, match="no setting bogus"):
        configure(Outer, bogus=1)
