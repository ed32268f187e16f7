"""engine/ stays pure: no I/O, clock or randomness imports (checked with ast)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pillarpayout_ws.engine

ENGINE = Path(pillarpayout_ws.engine.__file__).resolve().parent
MODULES = sorted(ENGINE.glob("*.py"))

FORBIDDEN = {
    "asyncio",
    "websockets",
    "asyncpg",
    "redis",
    "time",
    "random",
    "secrets",
    "os",
    "uvloop",
    "socket",
    "threading",
    "datetime",
    "importlib",
    "subprocess",
}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                names.add("pillarpayout_ws.engine")  # relative: stays inside
            elif node.module:
                names.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
        ):
            names.add("__import__")
    return names


def test_every_engine_module_is_checked() -> None:
    names = {path.name for path in MODULES}
    assert {"game.py", "fairness.py", "growth.py", "records.py", "bets.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=[path.name for path in MODULES])
def test_no_forbidden_imports(path: Path) -> None:
    imported = _imported_modules(path)
    assert "__import__" not in imported
    bad = {name for name in imported if name.split(".")[0] in FORBIDDEN}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", MODULES, ids=[path.name for path in MODULES])
def test_project_imports_stay_pure(path: Path) -> None:
    # Inside the project, the engine may lean only on itself and the
    # exception tree: never on server/ or storage/.
    for name in _imported_modules(path):
        if name.split(".")[0] == "pillarpayout_ws":
            assert name.startswith("pillarpayout_ws.engine") or name == "pillarpayout_ws.exceptions"
