"""Configuration dataclasses are the one source of the command line's flags.

A dataclass field whose metadata has ``help`` is a setting: ``betting_ms``
is the flag ``--betting-ms``, typed from the field's annotation (``int``,
``float``, ``str``, ``Path``, ``X | None``; ``bool`` is a switch;
``tuple[str, ...]`` a repeatable flag), defaulting to the field's default or
to the environment variable its metadata names. A field holding another
settings dataclass (``game: GameConfig``) brings that class's flags along.

Nothing is copied by hand between flags and dataclasses: ``add_flags``
reads the fields to declare the flags and ``from_args`` reads them again to
build the dataclass from the parsed flags. Each range is checked once, by
the dataclass itself when it is built, with a ``ConfigError`` naming the
field (``setting``), which the command line words as its flag
(``--house-edge must be ...``).

``configure(cls, **values)`` builds the same dataclass from flat field names
(``configure(ServerConfig, port=0, betting_ms=3000)``), for code and tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from typing import Any, TypeVar

__all__ = ["add_flags", "configure", "flag_name", "from_args", "setting"]

T = TypeVar("T")


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
    names the environment variable of its default, ``flag`` a name other than
    the field's, ``shown`` how ``--help`` words the default."""
    metadata = {"help": help, "env": env, "flag": flag, "metavar": metavar, "shown": shown}
    return dataclasses.field(default=default, metadata=metadata)


def flag_name(name: str) -> str:
    """``betting_ms`` -> ``--betting-ms``."""
    return "--" + name.replace("_", "-")


def _settings(cls: type[Any]) -> list[tuple[dataclasses.Field[Any], Any]]:
    """The fields of ``cls`` that are settings or groups, with their resolved types."""
    hints = typing.get_type_hints(cls)
    return [
        (f, hints[f.name])
        for f in dataclasses.fields(cls)
        if "help" in f.metadata or _is_group(hints[f.name])
    ]


def _is_group(kind: Any) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def _base(kind: Any) -> Any:
    """``int | None`` -> ``int``."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        return next(arg for arg in typing.get_args(kind) if arg is not type(None))
    return kind


def add_flags(parser: argparse.ArgumentParser, cls: type[Any]) -> None:
    """Declare a flag for every setting of ``cls`` (and of its groups)."""
    for f, kind in _settings(cls):
        if _is_group(kind):
            add_flags(parser, kind)
            continue
        meta = f.metadata
        name = flag_name(meta.get("flag") or f.name)
        default: Any = f.default
        shown = meta.get("shown") or ("off" if default is False else default)
        env: str | None = meta.get("env")
        if env is not None:
            default = os.environ.get(env, default)
            shown = f"env {env}, else {shown}"
        help_text = f"{meta['help']} [{shown}]"
        base = _base(kind)
        options: dict[str, Any] = {"dest": f.name, "help": help_text}
        if meta.get("metavar"):
            options["metavar"] = meta.get("metavar")
        if base is bool:
            parser.add_argument(name, action="store_true", **options)
        elif typing.get_origin(base) is tuple:
            parser.add_argument(name, action="append", default=[], **options)
        else:
            parser.add_argument(name, type=base, default=default, **options)


def from_args(cls: type[T], args: argparse.Namespace) -> T:
    """Build ``cls`` from parsed flags; a bad value is a one-line ``ConfigError``."""
    names = _names(cls)
    return configure(cls, **{k: v for k, v in vars(args).items() if k in names})


def configure(cls: type[T], **values: Any) -> T:
    """Build ``cls`` from flat field names, its groups' included; the rest keep
    their defaults. A name that is no setting of ``cls`` is a ``TypeError``."""
    unknown = set(values) - _names(cls)
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


def _names(cls: type[Any]) -> set[str]:
    names: set[str] = set()
    for f, kind in _settings(cls):
        names |= _names(kind) if _is_group(kind) else {f.name}
    return names
