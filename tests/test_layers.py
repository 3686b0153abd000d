"""The layer rules, checked on the source tree so they stay true.

schemas <- models <- producers <- streams: each package imports only the ones to
its left (and itself), under the one import root ``trialwatch``; no package has an
import cycle inside it, and no module reaches for another module's private names.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "models", "producers", "streams")
# What each package may import of ours, and which third-party roots it must not.
ALLOWED = {
    "schemas": {"schemas"},
    "models": {"schemas", "models"},
    "producers": {"schemas", "models", "producers"},
    "streams": set(PACKAGES),
}
FORBIDDEN_THIRD_PARTY = {
    "schemas": {"faust", "mode", "aiokafka", "redis", "lightgbm", "numpy", "rich", "mlflow"},
    "models": {"faust", "mode", "aiokafka", "redis", "rich", "mlflow"},
    "producers": {"faust", "mode", "redis"},
    "streams": set(),
}


def source_modules() -> dict[str, Path]:
    """``trialwatch.<package>.<module>`` -> file, for every shipped module."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(("trialwatch", *parts))
            modules[name.removesuffix(".__init__")] = path
    return modules


def imports_of(path: Path, module: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import, at any depth."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.append((base, [alias.name for alias in node.names], node.lineno))
    return found


MODULES = source_modules()


def test_the_tree_has_the_four_packages() -> None:
    for package in PACKAGES:
        assert f"trialwatch.{package}" in MODULES, f"{package}/__init__.py is missing"
    assert len(MODULES) > 40


def test_every_import_of_ours_goes_through_trialwatch() -> None:
    bare = []
    for path in [*MODULES.values(), *sorted((ROOT / "tests").rglob("*.py"))]:
        for imported, _, line in imports_of(path, "x.y"):
            if imported.split(".")[0] in PACKAGES:
                bare.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    assert not bare, "\n".join(bare)


@pytest.mark.parametrize("package", PACKAGES)
def test_layers_point_down(package: str) -> None:
    wrong = []
    for module, path in MODULES.items():
        if module.split(".")[1] != package:
            continue
        for imported, _, line in imports_of(path, module):
            root, *rest = imported.split(".")
            if root == "trialwatch" and rest and rest[0] not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
            if root in FORBIDDEN_THIRD_PARTY[package]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    assert not wrong, f"{package} must import only {sorted(ALLOWED[package])}:\n" + "\n".join(wrong)


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        for imported, names, _ in imports_of(path, module):
            targets = [imported, *(f"{imported}.{n}" for n in names)]
            graph[module] |= {t for t in targets if t in MODULES and t != module}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among modules of the same package, if there is any."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt.split(".")[1] != node.split(".")[1]:
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(MODULES):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_inside_a_package() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_finds_a_cycle() -> None:
    first, second = sorted(m for m in MODULES if m.startswith("trialwatch.streams."))[:2]
    assert _cycle({first: {second}, second: {first}}) == [first, second, first]


def test_no_private_names_imported_across_modules() -> None:
    private = []
    for module, path in MODULES.items():
        for imported, names, line in imports_of(path, module):
            if imported.startswith("trialwatch."):
                for name in names:
                    if name.startswith("_") and not name.startswith("__"):
                        private.append(f"{path.relative_to(ROOT)}:{line} {imported}.{name}")
    assert not private, "\n".join(private)


@pytest.mark.parametrize(
    "modules",
    [
        "trialwatch.schemas.codec, trialwatch.schemas.contract, trialwatch.schemas.files",
        "trialwatch.models.pipeline, trialwatch.models.scorer, trialwatch.models.training",
        "trialwatch.producers.simulator, trialwatch.producers.files",
    ],
)
def test_importing_the_lower_layers_loads_no_kafka_faust_or_redis(modules: str) -> None:
    code = (
        f"import sys, {modules};"
        "print(sorted(m for m in ('faust', 'aiokafka', 'redis') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    assert out.stdout.strip() == "[]"
