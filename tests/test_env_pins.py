"""Packaging: the library pyproject.toml files declare compatible version RANGES of exactly what
each package imports; the exact, tested versions live in ONE lock file, constraints.txt, which
requirements.txt and the conda environments (envs/*.yaml) install from; every rule names one of
those environments with `conda:`. No conda needed: the files are read as text/YAML/TOML."""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
ENVS = sorted((REPO / "envs").glob("*.yaml"))
PACKAGES = {canonicalize_name(tomllib.loads(p.read_text())["project"]["name"]): p.parent
            for p in sorted((REPO / "packages").glob("*/pyproject.toml"))}
LOCAL = re.compile(r"^-e\s+(?P<path>\S+)$")
CONSTRAINT = re.compile(r"^-c\s+(?P<path>\S+)$")
#: Declared but never imported, each for a reason: pandas.DataFrame.to_markdown imports tabulate.
RUNTIME_ONLY = {"tabulate"}


def pyproject(pkg: str) -> dict:
    return tomllib.loads((PACKAGES[pkg] / "pyproject.toml").read_text())["project"]


def text_lines(path: Path) -> list[str]:
    """Non-empty lines of a requirements-format file, comments removed."""
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def constraints() -> dict[str, str]:
    """name -> exact version of constraints.txt; every line must be one '==' pin, once."""
    pins = {}
    for line in text_lines(REPO / "constraints.txt"):
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"constraints.txt: not an exact pin: {line!r}"
        name = canonicalize_name(req.name)
        assert name not in pins, f"constraints.txt pins {name} twice"
        pins[name] = specs[0].version
    return pins


def third_party(pkg: str) -> dict[str, Requirement]:
    return {canonicalize_name(Requirement(d).name): Requirement(d) for d in pyproject(pkg)["dependencies"]
            if canonicalize_name(Requirement(d).name) not in PACKAGES}


def package_closure(pkgs) -> set[str]:
    """The local packages and the local packages they depend on."""
    todo, seen = list(pkgs), set()
    while todo:
        pkg = todo.pop()
        if pkg in seen:
            continue
        seen.add(pkg)
        todo += [n for n in (canonicalize_name(Requirement(d).name) for d in pyproject(pkg)["dependencies"])
                 if n in PACKAGES]
    return seen


#: Modules of optional extras (or of geoclip, installed by hand with --no-deps), imported lazily
#: inside the functions that need them: not installed by requirements.txt. Module -> distribution;
#: the distribution must be in one of the package's optional-dependencies (geoclip: documented).
OPTIONAL_MODULES = {"tensorboard": "tensorboard", "mapillary": "mapillary", "timm": "timm", "PIL": "pillow",
                    "geoclip": None}


def imported_distributions(pkg: str) -> set[str]:
    """Third-party distributions whose modules the package's source imports (absolute imports,
    parsed with ast; the standard library and the project's own packages excluded)."""
    dists = packages_distributions()
    own = {p.name for p in (PACKAGES[pkg] / "src").iterdir() if p.is_dir()}
    for other in PACKAGES.values():
        own |= {p.name for p in (other / "src").iterdir() if p.is_dir()}
    found = set()
    for path in (PACKAGES[pkg] / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            for mod in mods:
                top = mod.split(".")[0]
                if top in own or top in sys.stdlib_module_names or top == "__future__":
                    continue
                if top in OPTIONAL_MODULES:
                    extras = {canonicalize_name(Requirement(r).name)
                              for reqs in pyproject(pkg).get("optional-dependencies", {}).values() for r in reqs}
                    dist = OPTIONAL_MODULES[top]
                    assert dist is None or dist in extras, f"{path}: imports optional {top!r}; declare {dist} in an extra"
                    continue
                assert top in dists, f"{path}: imports {top!r}, which no installed distribution provides"
                found |= {canonicalize_name(d) for d in dists[top]}
    return found


@pytest.mark.parametrize("pkg", sorted(PACKAGES))
def test_package_declares_ranges_not_pins(pkg):
    for name, req in third_party(pkg).items():
        specs = list(req.specifier)
        assert specs, f"{pkg}: {name} has no version range"
        assert not any(s.operator in ("==", "===") for s in specs), f"{pkg}: {req} is an exact pin (constraints.txt)"
        assert any(s.operator in (">=", "~=") for s in specs), f"{pkg}: {req} needs a lower bound"
    for dep in pyproject(pkg)["dependencies"]:
        name = canonicalize_name(Requirement(dep).name)
        if name in PACKAGES:
            assert Requirement(dep).specifier.contains(pyproject(name)["version"]), dep


@pytest.mark.parametrize("pkg", sorted(PACKAGES))
def test_package_declares_exactly_what_it_imports(pkg):
    declared = set(third_party(pkg))
    imported = imported_distributions(pkg)
    assert imported - declared == set(), f"{pkg} imports but does not declare {sorted(imported - declared)}"
    assert declared - imported - RUNTIME_ONLY == set(), f"{pkg} declares but never imports {sorted(declared - imported - RUNTIME_ONLY)}"


def test_constraints_pin_every_dependency_inside_its_ranges():
    pins = constraints()
    for pkg in PACKAGES:
        reqs = list(third_party(pkg).values())
        reqs += [Requirement(r) for extra in pyproject(pkg).get("optional-dependencies", {}).values() for r in extra]
        for req in reqs:
            name = canonicalize_name(req.name)
            assert name in pins, f"constraints.txt has no pin for {name} ({pkg})"
            assert req.specifier.contains(pins[name]), f"constraints.txt {name}=={pins[name]} is outside {pkg}'s {req}"


def test_installed_versions_are_the_constraints():
    """This environment is the locked one (CI installs it with pip install -r requirements.txt)."""
    wrong = {}
    for name, pinned in constraints().items():
        try:
            have = version(name)
        except PackageNotFoundError:
            continue  # an optional extra that is not installed (e.g. tensorboard)
        if Version(have).public != Version(pinned).public:  # 2.13.0+cpu is 2.13.0
            wrong[name] = (have, pinned)
    assert not wrong, f"installed != constraints.txt: {wrong}"


def test_requirements_txt_installs_from_the_constraints():
    lines = text_lines(REPO / "requirements.txt")
    assert [CONSTRAINT.match(l)["path"] for l in lines if CONSTRAINT.match(l)] == ["constraints.txt"]
    local = {canonicalize_name(Path(LOCAL.match(l)["path"]).name) for l in lines if LOCAL.match(l)}
    assert local == set(PACKAGES), f"requirements.txt installs {sorted(local)}, packages/ holds {sorted(PACKAGES)}"
    pins = constraints()
    for line in lines:
        if LOCAL.match(line) or CONSTRAINT.match(line):
            continue
        req = Requirement(line)
        assert not req.specifier, f"requirements.txt: {line!r} carries a version; versions go in constraints.txt"
        assert canonicalize_name(req.name) in pins, f"requirements.txt: {req.name} not pinned in constraints.txt"
    names = {canonicalize_name(Requirement(l).name) for l in lines if not (LOCAL.match(l) or CONSTRAINT.match(l))}
    assert {"snakemake-executor-plugin-slurm", "snakefmt"} <= names


def read_env(path: Path) -> tuple[list[str], list[str]]:
    """(conda specs, pip lines) of a conda env file."""
    env = yaml.safe_load(path.read_text())
    conda, pip = [], []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip += dep["pip"]
        else:
            conda.append(dep)
    return conda, pip


@pytest.mark.parametrize("env_file", ENVS, ids=lambda p: p.name)
def test_env_file_is_valid_conda_yaml(env_file):
    env = yaml.safe_load(env_file.read_text())
    assert set(env) <= {"name", "channels", "dependencies", "variables"}, set(env)
    assert all(isinstance(c, str) for c in env.get("channels", []))
    conda, _ = read_env(env_file)
    pip_sections = [d for d in env["dependencies"] if isinstance(d, dict)]
    assert len(pip_sections) <= 1 and all(set(d) == {"pip"} for d in pip_sections)
    if pip_sections:
        assert "pip" in conda, "a pip: section needs pip among the conda dependencies"
    for spec in conda:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+(\s*[=<>!]=?\s*[A-Za-z0-9_.*]+)?", spec), spec
    python = [s for s in conda if re.match(r"python\b", s)]
    assert len(python) == 1, "pin the Python version"
    version_ = python[0].split("=", 1)[1].lstrip("=")
    for pkg in PACKAGES:
        requires = SpecifierSet(pyproject(pkg).get("requires-python", ""))
        assert requires.contains(version_ + ".0"), f"python {version_} vs {pkg} requires-python {requires}"


@pytest.mark.parametrize("env_file", ENVS, ids=lambda p: p.name)
def test_env_file_installs_its_packages_from_the_constraints(env_file):
    _, pip = read_env(env_file)
    local = set()
    for line in pip:
        m, c = LOCAL.match(line), CONSTRAINT.match(line)
        # the paths resolve from .snakemake/conda/ of a run in the repository root
        if m:
            assert (REPO / ".snakemake" / "conda" / m["path"]).resolve().is_dir(), line
            local.add(canonicalize_name((env_file.parent / m["path"]).name))
        elif c:
            assert (REPO / ".snakemake" / "conda" / c["path"]).resolve() == REPO / "constraints.txt", line
        else:
            raise AssertionError(f"{env_file.name}: {line!r}: versions come from constraints.txt, packages from -e")
    assert any(CONSTRAINT.match(l) for l in pip), f"{env_file.name} does not use constraints.txt"
    assert local and local <= set(PACKAGES), local
    assert package_closure(local) == local, f"{env_file.name} misses local dependencies {package_closure(local) - local}"


def test_license_file_is_the_declared_mit():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License")
    for pkg in PACKAGES:
        assert pyproject(pkg)["license"] == {"text": "MIT"}, pkg


def rule_blocks() -> dict[str, str]:
    """rule name -> its text, from every workflow/rules/*.smk and the Snakefile. A rule defined in a
    loop (``rule:`` + ``name: <family>_rule_name(...)``, e.g. the fine-tuning rules evaluate_<tasks>)
    counts once, under its family name (``evaluate``): see :func:`rule_family`."""
    blocks = {}
    for path in [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        parts = re.split(r"^[ \t]*(?:rule|checkpoint)[ \t]+(\w+)[ \t]*:|^[ \t]*rule:\s*name:\s*(\w+?)_rule_name\(",
                         path.read_text(), flags=re.M)
        for named, family, body in zip(parts[1::3], parts[2::3], parts[3::3]):
            blocks[named or family] = body
    return blocks


def rule_family(name: str) -> str:
    """The rule a job's rule name belongs to in rule_blocks and the profiles: ``evaluate`` for the
    fine-tuning rules ``evaluate_<tasks>`` (one per task set, workflow/rules/models.smk), else
    ``name``."""
    return "evaluate" if name.startswith("evaluate_") else name


def test_every_rule_names_a_conda_env():
    envs = {}
    for name, body in rule_blocks().items():
        if name == "all":
            continue
        m = re.search(r"^\s*conda:\s*\n\s*\"([^\"]+)\"", body, flags=re.M)
        assert m, f"rule {name} has no conda: directive"
        env = (REPO / "workflow" / "rules" / m[1]).resolve()
        assert env.is_file() and env.parent == REPO / "envs", f"rule {name}: {m[1]}"
        envs[name] = env.name
    # the rules that run a model (and may ask for a GPU) use the models environment
    for name, body in rule_blocks().items():
        if "gpu_request" in body:
            assert envs[name] == "models.yaml", f"rule {name} runs a model but uses {envs[name]}"
    assert {"pretrain", "evaluate", "embed"} <= {n for n, e in envs.items() if e == "models.yaml"}
