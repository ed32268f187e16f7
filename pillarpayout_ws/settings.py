"""Configuration dataclasses are the one source of flags, environment and config file.

A dataclass field whose metadata has ``help`` is a setting: ``betting_ms``
is the flag ``--betting-ms``, typed from the field's annotation (``int``,
``float``, ``str``, ``Path``, ``X | None``; ``bool`` is a switch;
``tuple[str, ...]`` a repeatable flag). A field holding another settings
dataclass (``game: GameConfig``) brings that class's settings along.

Every setting is read, by one rule, from the first of:

1. its flag (``--betting-ms 2000``);
2. the environment: ``PILLARPAYOUT_BETTING_MS``, else the older name its
   metadata gives as ``env`` (``DATABASE_URL``); an empty variable is unset;
   a switch takes ``1/true/yes/on`` or ``0/false/no/off``, a repeatable
   setting a comma-separated list;
3. the TOML file of ``--config PATH`` (or ``PILLARPAYOUT_CONFIG``): keys are
   the field names (``betting_ms``; ``betting-ms`` too) at the top level, for
   every command that has the setting, or in the table of one command
   (``[serve]``), which wins over the top level;
4. the field's default.

Nothing is copied by hand: ``add_flags`` reads the fields to declare the
flags and ``resolve``/``from_args`` read them again to build the dataclass,
recording where each value came from. Each range is checked once, by the
dataclass itself when it is built, with a ``ConfigError`` naming the field
(``setting``); a bad value from the environment or the file is reworded to
name the variable or the file's key (``port in pp.toml must be 0 to 65535``),
one from a flag is left for the command line to word as its flag.

``configure(cls, **values)`` builds the same dataclass from flat field names
(``configure(ServerConfig, port=0, betting_ms=3000)``), for code and tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from .exceptions import ConfigError

__all__ = [
    "ENV_PREFIX",
    "ConfigFile",
    "add_flags",
    "config_path",
    "configure",
    "env_names",
    "flag_name",
    "from_args",
    "resolve",
    "setting",
    "setting_names",
    "values_of",
]

T = TypeVar("T")

ENV_PREFIX = "PILLARPAYOUT_"
CONFIG_ENV = "PILLARPAYOUT_CONFIG"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def setting(
    default: Any,
    help: str,
    *,
    env: str | None = None,
    flag: str | None = None,
    metavar: str | None = None,
    shown: str | None = None,
) -> Any:
    """A dataclass field that is also a flag (see the module docstring): ``env``
    names an environment variable read after ``PILLARPAYOUT_<NAME>`` (an older
    name kept working), ``flag`` a name other than the field's, ``shown`` how
    ``--help`` words the default."""
    metadata = {"help": help, "env": env, "flag": flag, "metavar": metavar, "shown": shown}
    return dataclasses.field(default=default, metadata=metadata)


def flag_name(name: str) -> str:
    """``betting_ms`` -> ``--betting-ms``."""
    return "--" + name.replace("_", "-")


def env_names(f: dataclasses.Field[Any]) -> list[str]:
    """The environment variables of a setting, the first one set winning."""
    names = [ENV_PREFIX + f.name.upper()]
    if f.metadata.get("env"):
        names.append(f.metadata["env"])
    return names


def _settings(cls: type[Any]) -> list[tuple[dataclasses.Field[Any], Any]]:
    """The fields of ``cls`` that are settings or groups, with their resolved types."""
    hints = typing.get_type_hints(cls)
    return [
        (f, hints[f.name])
        for f in dataclasses.fields(cls)
        if "help" in f.metadata or _is_group(hints[f.name])
    ]


def _leaves(cls: type[Any]) -> list[tuple[dataclasses.Field[Any], Any]]:
    """Every setting of ``cls``, its groups' included, in declaration order."""
    out: list[tuple[dataclasses.Field[Any], Any]] = []
    for f, kind in _settings(cls):
        out.extend(_leaves(kind) if _is_group(kind) else [(f, kind)])
    return out


def setting_names(cls: type[Any]) -> list[str]:
    return [f.name for f, _ in _leaves(cls)]


def _is_group(kind: Any) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def _base(kind: Any) -> Any:
    """``int | None`` -> ``int``."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        return next(arg for arg in typing.get_args(kind) if arg is not type(None))
    return kind


def add_flags(parser: argparse.ArgumentParser, cls: type[Any]) -> None:
    """Declare a flag for every setting of ``cls`` (and of its groups), and ``--config``.

    A flag not given leaves no attribute in the parsed namespace, so that
    ``resolve`` can tell it from a value given on the command line."""
    for f, kind in _leaves(cls):
        meta = f.metadata
        name = flag_name(meta.get("flag") or f.name)
        default: Any = f.default
        shown = meta.get("shown") or ("off" if default is False else default)
        if meta.get("env") is not None:
            shown = f"env {meta['env']}, else {shown}"
        options: dict[str, Any] = {
            "dest": f.name,
            "help": f"{meta['help']} [{shown}]",
            "default": argparse.SUPPRESS,
        }
        if meta.get("metavar"):
            options["metavar"] = meta.get("metavar")
        base = _base(kind)
        if base is bool:
            parser.add_argument(name, action="store_true", **options)
        elif typing.get_origin(base) is tuple:
            parser.add_argument(name, action="append", **options)
        else:
            parser.add_argument(name, type=base, **options)
    if not any("--config" in a.option_strings for a in parser._actions):
        parser.add_argument(
            "--config",
            metavar="PATH",
            default=argparse.SUPPRESS,
            help="a TOML file of settings (flag > environment > file > default) "
            f"[env {CONFIG_ENV}]",
        )


# -- the config file ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ConfigFile:
    """The settings a TOML file gives one command: its top level, then its table."""

    path: Path
    values: dict[str, Any]

    @classmethod
    def read(cls, path: Path, command: str, commands: Mapping[str, type[Any]]) -> ConfigFile:
        """Read ``path`` for ``command``; ``commands`` maps every command that reads
        config files to its settings class. Unknown keys or tables, wrong types:
        a one-line ``ConfigError`` naming the key and the file."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not TOML: {exc}") from None
        kinds: dict[str, dict[str, Any]] = {
            name: {f.name: kind for f, kind in _leaves(c)} for name, c in commands.items()
        }
        anywhere = {key for k in kinds.values() for key in k}
        mine = kinds.get(command, {})
        top: dict[str, Any] = {}
        table: dict[str, Any] = {}
        for raw_key, value in data.items():
            key = raw_key.replace("-", "_")
            if isinstance(value, dict):
                if raw_key not in commands:
                    raise ConfigError(
                        f"unknown table [{raw_key}] in {path} (tables: "
                        f"{', '.join(f'[{c}]' for c in commands)})"
                    )
                theirs = kinds[raw_key]
                for inner_raw, inner in value.items():
                    inner_key = inner_raw.replace("-", "_")
                    if inner_key not in theirs:
                        raise ConfigError(
                            f"unknown key {inner_raw!r} in [{raw_key}] of {path}: "
                            f"no setting of {raw_key}"
                        )
                    checked = _from_toml(inner, theirs[inner_key], f"[{raw_key}] {inner_raw}", path)
                    if raw_key == command:
                        table[inner_key] = checked
                continue
            if key not in anywhere:
                raise ConfigError(f"unknown key {raw_key!r} in {path}: no such setting")
            if key in mine:
                top[key] = _from_toml(value, mine[key], raw_key, path)
        return cls(path, {**top, **table})


def _kind_word(base: Any) -> str:
    if base is bool:
        return "true or false"
    if base is int:
        return "an integer"
    if base is float:
        return "a number"
    if typing.get_origin(base) is tuple:
        return "a list of strings"
    return "a string"


def _from_toml(value: Any, kind: Any, key: str, path: Path) -> Any:
    base = _base(kind)
    ok: bool
    if base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif typing.get_origin(base) is tuple:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, str)
        value = base(value) if ok else value
    if not ok:
        raise ConfigError(f"{key} in {path} must be {_kind_word(base)}, got {value!r}")
    return value


def _from_env(text: str, kind: Any, var: str) -> Any:
    base = _base(kind)
    if base is bool:
        if text.strip().lower() in _TRUE:
            return True
        if text.strip().lower() in _FALSE:
            return False
        raise ConfigError(f"{var} must be one of 1/true/yes/on or 0/false/no/off, got {text!r}")
    if typing.get_origin(base) is tuple:
        return tuple(part.strip() for part in text.split(",") if part.strip())
    try:
        return base(text)
    except ValueError:
        raise ConfigError(f"{var} must be {_kind_word(base)}, got {text!r}") from None


# -- resolving ---------------------------------------------------------------


def config_path(args: argparse.Namespace) -> Path | None:
    """``--config``, else ``PILLARPAYOUT_CONFIG``, else none."""
    given = getattr(args, "config", None) or os.environ.get(CONFIG_ENV) or None
    return None if given is None else Path(given)


def resolve(
    cls: type[T], args: argparse.Namespace, file: ConfigFile | None = None
) -> tuple[T, dict[str, str]]:
    """Build ``cls`` by flag > environment > file > default; with each setting's
    source: ``flag``, ``env NAME``, ``file PATH`` or ``default``."""
    given = vars(args)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for f, kind in _leaves(cls):
        name = f.name
        if name in given:
            values[name], sources[name] = given[name], "flag"
            continue
        for var in env_names(f):
            text = os.environ.get(var)
            if text:
                values[name], sources[name] = _from_env(text, kind, var), f"env {var}"
                break
        else:
            if file is not None and name in file.values:
                values[name], sources[name] = file.values[name], f"file {file.path}"
            else:
                sources[name] = "default"
    try:
        return _build(cls, values), sources
    except ConfigError as exc:
        source = sources.get(exc.setting or "", "flag")
        if exc.setting is None or source == "flag":
            raise
        if source.startswith("env "):
            raise ConfigError(f"{source[4:]} {exc.reason}") from None
        raise ConfigError(f"{exc.setting} in {source[5:]} {exc.reason}") from None


def from_args(cls: type[T], args: argparse.Namespace, file: ConfigFile | None = None) -> T:
    """Build ``cls`` from parsed flags, the environment and ``file``."""
    return resolve(cls, args, file)[0]


def configure(cls: type[T], **values: Any) -> T:
    """Build ``cls`` from flat field names, its groups' included; the rest keep
    their defaults. A name that is no setting of ``cls`` is a ``TypeError``."""
    unknown = set(values) - set(setting_names(cls))
    if unknown:
        raise TypeError(f"{cls.__name__} has no setting {', '.join(sorted(unknown))}")
    return _build(cls, values)


def _build(cls: type[T], values: dict[str, Any]) -> T:
    kwargs: dict[str, Any] = {}
    for f, kind in _settings(cls):
        if _is_group(kind):
            kwargs[f.name] = _build(kind, values)
        elif f.name in values:
            value = values[f.name]
            kwargs[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


def values_of(config: Any) -> dict[str, Any]:
    """Every setting's value in a built settings dataclass, flat, in order."""
    out: dict[str, Any] = {}
    for f, kind in _settings(type(config)):
        value = getattr(config, f.name)
        if _is_group(kind):
            out.update(values_of(value))
        else:
            out[f.name] = value
    return out
