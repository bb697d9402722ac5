"""No model package imports another model package: they share code only through trajzoo-core.

Model packages are the folders ``packages/*/`` other than ``trajzoo-core``; the import name of
``packages/trajzoo-foo-bar`` is ``trajzoo_foo_bar``. Every ``.py`` file under a model package is
parsed with :mod:`ast` (``import x``, ``from x import y``, relative imports are the package's own).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGES = Path(__file__).resolve().parents[1] / "packages"
CORE = "trajzoo-core"


def model_packages() -> list[Path]:
    """The model package folders (every ``packages/*/`` but the core)."""
    return sorted(p for p in PACKAGES.iterdir() if p.is_dir() and p.name != CORE and not p.name.startswith("."))


def import_name(package_dir: Path) -> str:
    return package_dir.name.replace("-", "_")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, top-level module)`` of every absolute import in a Python file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def cross_imports(package_dir: Path, others: set[str]) -> list[str]:
    """``"file:line imports module"`` for every import of another model package."""
    hits = []
    for path in sorted(package_dir.rglob("*.py")):
        for line, module in imported_modules(path):
            if module in others:
                hits.append(f"{path.relative_to(package_dir.parent)}:{line} imports {module}")
    return hits


def test_there_are_model_packages() -> None:
    names = {import_name(p) for p in model_packages()}
    assert {"trajzoo_metatrl", "trajzoo_baselines", "trajzoo_transfertraj", "trajzoo_trajganr",
            "trajzoo_smartraj2"} <= names


@pytest.mark.parametrize("package_dir", model_packages(), ids=lambda p: p.name)
def test_model_package_imports_no_other_model_package(package_dir: Path) -> None:
    others = {import_name(p) for p in model_packages()} - {import_name(package_dir)}
    hits = cross_imports(package_dir, others)
    assert not hits, "model packages may import only trajzoo (the core):\n" + "\n".join(hits)


def test_checker_sees_imports_in_every_form(tmp_path: Path) -> None:
    package = tmp_path / "trajzoo-foo" / "src" / "trajzoo_foo"
    package.mkdir(parents=True)
    (package / "a.py").write_text("import trajzoo.nn.mlp\nfrom . import b\nfrom .b import c\n"
                                  "def f():\n    import trajzoo_bar.x as y\n")
    (package / "b.py").write_text("from trajzoo_baz.model import Thing\n")
    hits = cross_imports(tmp_path / "trajzoo-foo", {"trajzoo_bar", "trajzoo_baz"})
    assert [h.split(" imports ")[1] for h in hits] == ["trajzoo_bar", "trajzoo_baz"]
