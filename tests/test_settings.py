"""Flags made from configuration dataclasses (pillarpayout_ws/settings.py)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pillarpayout_ws.exceptions import ConfigError
from pillarpayout_ws.settings import (
    ConfigFile,
    add_flags,
    configure,
    flag_name,
    from_args,
    resolve,
    setting,
)


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


COMMANDS = {"outer": Outer, "inner": Inner}


def resolved(
    *argv: str, toml: str | None = None, tmp: Path | None = None
) -> tuple[Outer, dict[str, str]]:
    parser = argparse.ArgumentParser()
    add_flags(parser, Outer)
    file = None
    if toml is not None:
        assert tmp is not None
        (tmp / "pp.toml").write_text(toml)
        file = ConfigFile.read(tmp / "pp.toml", "outer", COMMANDS)
    return resolve(Outer, parser.parse_args(argv), file)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("DEPTH", "LOUD", "WHERE", "TAGS", "URL", "NAME", "RATIO"):
        monkeypatch.delenv(f"PILLARPAYOUT_{name}", raising=False)
    monkeypatch.delenv("TEST_SETTINGS_URL", raising=False)
    return monkeypatch


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


@pytest.mark.parametrize(
    ("name", "flag", "env", "toml", "values"),
    [
        # an int, a switch, a path and a repeatable setting: flag > env > file > default
        ("depth", ["--depth", "1"], "2", "depth = 3", (1, 2, 3, 3)),
        ("loud", ["--loud"], "yes", "loud = true", (True, True, True, False)),
        ("where", ["--where", "/f"], "/e", 'where = "/c"', ("/f", "/e", "/c", ".")),
        ("tags", ["--tag", "f"], "e1, e2", 'tags = ["c1", "c2"]',
         (("f",), ("e1", "e2"), ("c1", "c2"), ())),
    ],
)  # fmt: skip
def test_flag_over_environment_over_file_over_default(
    clean_env: pytest.MonkeyPatch,
    tmp_path: Path,
    name: str,
    flag: list[str],
    env: str,
    toml: str,
    values: tuple[object, object, object, object],
) -> None:
    def value(config: Outer) -> object:
        got = config.inner.depth if name == "depth" else getattr(config, name)
        return str(got) if isinstance(got, Path) else got

    var = f"PILLARPAYOUT_{name.upper()}"
    clean_env.setenv(var, env)
    config, sources = resolved(*flag, toml=toml, tmp=tmp_path)
    assert (value(config), sources[name]) == (values[0], "flag")
    config, sources = resolved(toml=toml, tmp=tmp_path)
    assert (value(config), sources[name]) == (values[1], f"env {var}")
    clean_env.delenv(var)
    config, sources = resolved(toml=toml, tmp=tmp_path)
    assert (value(config), sources[name]) == (values[2], f"file {tmp_path / 'pp.toml'}")
    config, sources = resolved()
    assert (value(config), sources[name]) == (values[3], "default")


def test_the_prefixed_variable_wins_over_the_older_name(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TEST_SETTINGS_URL", "old")
    assert resolved()[0].url == "old"
    clean_env.setenv("PILLARPAYOUT_URL", "new")
    assert resolved()[0].url == "new"
    clean_env.setenv("PILLARPAYOUT_URL", "")  # empty: unset
    assert resolved()[1]["url"] == "env TEST_SETTINGS_URL"


def test_a_switch_can_be_turned_off_by_the_environment_over_the_file(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("PILLARPAYOUT_LOUD", "off")
    assert resolved(toml="loud = true", tmp=tmp_path)[0].loud is False


def test_the_commands_table_wins_and_dashes_are_accepted(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    toml = 'depth = 1\nname = "top"\n[outer]\ndepth = 2\n[inner]\ndepth = 3\n'
    config, _ = resolved(toml=toml, tmp=tmp_path)
    assert (config.inner.depth, config.name) == (2, "top")
    assert resolved(toml="ratio = 2", tmp=tmp_path)[0].ratio == 2.0  # an int for a float
    (tmp_path / "pp.toml").write_text('name = "top"\n')
    # a top-level key another command has is not this one's business
    assert ConfigFile.read(tmp_path / "pp.toml", "inner", COMMANDS).values == {}


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("bogus = 1", "unknown key 'bogus' in {file}: no such setting"),
        ("[outer]\ninternal = 1", "unknown key 'internal' in [outer] of {file}"),
        ("[inner]\nname = 'x'", "unknown key 'name' in [inner] of {file}"),
        ("[nope]\ndepth = 1", "unknown table [nope] in {file}"),
        ('depth = "3"', "depth in {file} must be an integer, got '3'"),
        ("depth = true", "depth in {file} must be an integer, got True"),
        ("loud = 1", "loud in {file} must be true or false, got 1"),
        ("tags = 'a'", "tags in {file} must be a list of strings, got 'a'"),
        ("where = 3", "where in {file} must be a string, got 3"),
        ("depth = -1", "depth in {file} must not be negative"),
        ("depth = [", "config file {file} is not TOML"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_key_and_the_file(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, toml: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolved(toml=toml, tmp=tmp_path)
    text = str(caught.value)
    assert message.format(file=tmp_path / "pp.toml") in text and "\n" not in text


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file .*nope\.toml does not exist"):
        ConfigFile.read(tmp_path / "nope.toml", "outer", COMMANDS)


@pytest.mark.parametrize(
    ("var", "text", "message"),
    [
        ("PILLARPAYOUT_DEPTH", "x", "PILLARPAYOUT_DEPTH must be an integer, got 'x'"),
        ("PILLARPAYOUT_DEPTH", "-2", "PILLARPAYOUT_DEPTH must not be negative"),
        ("PILLARPAYOUT_LOUD", "maybe", "PILLARPAYOUT_LOUD must be one of 1/true/yes/on"),
    ],
)
def test_a_bad_environment_variable_names_it(
    clean_env: pytest.MonkeyPatch, var: str, text: str, message: str
) -> None:
    clean_env.setenv(var, text)
    with pytest.raises(ConfigError, match=message):
        resolved()
