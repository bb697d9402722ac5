"""The conda environments of the rule groups (envs/*.yaml) pin what the packages' pyprojects pin,
requirements.txt agrees with both, and every rule names one of them with `conda:`.
No conda needed: the files are read as YAML/TOML."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
ENVS = sorted((REPO / "envs").glob("*.yaml"))
PACKAGES = {canonicalize_name(tomllib.loads(p.read_text())["project"]["name"]): p.parent
            for p in sorted((REPO / "packages").glob("*/pyproject.toml"))}
LOCAL = re.compile(r"^-e\s+(?P<path>\S+)$")


def pyproject(pkg: str) -> dict:
    return tomllib.loads((PACKAGES[pkg] / "pyproject.toml").read_text())["project"]


def exact_pins(requirements) -> dict[str, str]:
    """name -> version of the '==' pins in an iterable of PEP 508 strings (others: ValueError)."""
    pins = {}
    for line in requirements:
        req = Requirement(line)
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==":
            raise ValueError(f"not an exact pin: {line!r}")
        pins[canonicalize_name(req.name)] = specs[0].version
    return pins


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


def third_party_pins(pkg: str) -> dict[str, str]:
    return exact_pins(d for d in pyproject(pkg)["dependencies"] if canonicalize_name(Requirement(d).name) not in PACKAGES)


def read_env(path: Path) -> tuple[list[str], dict[str, str], set[str]]:
    """(conda specs, pip pins, local packages installed with -e) of a conda env file."""
    env = yaml.safe_load(path.read_text())
    conda, pip = [], []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip += dep["pip"]
        else:
            conda.append(dep)
    local, pins = set(), []
    for line in pip:
        m = LOCAL.match(line)
        if m:
            target = (path.parent / m["path"]).name  # the folder name under packages/
            local.add(canonicalize_name(target))
        else:
            pins.append(line)
    return conda, exact_pins(pins), local


def test_every_package_pins_exact_versions():
    for pkg in PACKAGES:
        third_party_pins(pkg)  # raises on a range or an unpinned dependency
        for dep in pyproject(pkg)["dependencies"]:
            if canonicalize_name(Requirement(dep).name) in PACKAGES:
                assert str(Requirement(dep).specifier) == f"=={pyproject(canonicalize_name(Requirement(dep).name))['version']}", dep


def test_packages_agree_with_each_other():
    seen: dict[str, tuple[str, str]] = {}
    for pkg in PACKAGES:
        for name, version in third_party_pins(pkg).items():
            if name in seen:
                assert seen[name][1] == version, f"{name}: {seen[name][0]} pins {seen[name][1]}, {pkg} pins {version}"
            seen[name] = (pkg, version)


@pytest.mark.parametrize("env_file", ENVS, ids=lambda p: p.name)
def test_env_file_is_valid_conda_yaml(env_file):
    env = yaml.safe_load(env_file.read_text())
    assert set(env) <= {"name", "channels", "dependencies", "variables"}, set(env)
    assert all(isinstance(c, str) for c in env.get("channels", []))
    conda, _, _ = read_env(env_file)
    pip_sections = [d for d in env["dependencies"] if isinstance(d, dict)]
    assert len(pip_sections) <= 1 and all(set(d) == {"pip"} for d in pip_sections)
    if pip_sections:
        assert "pip" in conda, "a pip: section needs pip among the conda dependencies"
    for spec in conda:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+(\s*[=<>!]=?\s*[A-Za-z0-9_.*]+)?", spec), spec
    python = [s for s in conda if re.match(r"python\b", s)]
    assert len(python) == 1, "pin the Python version"
    version = python[0].split("=", 1)[1].lstrip("=")
    for pkg in PACKAGES:
        requires = SpecifierSet(pyproject(pkg).get("requires-python", ""))
        assert requires.contains(version + ".0"), f"python {version} vs {pkg} requires-python {requires}"


@pytest.mark.parametrize("env_file", ENVS, ids=lambda p: p.name)
def test_env_file_pins_what_its_packages_pin(env_file):
    _, pins, local = read_env(env_file)
    assert local, f"{env_file.name} installs no trajzoo package"
    assert local <= set(PACKAGES), local - set(PACKAGES)
    # the -e paths resolve from .snakemake/conda/ of a run in the repository root
    pip = [line for d in yaml.safe_load(env_file.read_text())["dependencies"] if isinstance(d, dict)
           for line in d["pip"]]
    for line in pip:
        m = LOCAL.match(line)
        if m:
            assert (REPO / ".snakemake" / "conda" / m["path"]).resolve().is_dir(), line
    assert package_closure(local) == local, f"{env_file.name} misses local dependencies {package_closure(local) - local}"
    # every pinned dependency of its packages, at the same version ...
    for pkg in local:
        for name, version in third_party_pins(pkg).items():
            assert pins.get(name) == version, f"{env_file.name}: {name}=={pins.get(name)}, {pkg} pins {version}"
    # ... and no pin that disagrees with any package or requirements.txt
    everything = {n: v for pkg in PACKAGES for n, v in third_party_pins(pkg).items()}
    everything.update(requirements_pins())
    for name, version in pins.items():
        if name in everything:
            assert everything[name] == version, f"{env_file.name}: {name}=={version}, elsewhere {everything[name]}"


def requirements_lines() -> list[str]:
    lines = []
    for raw in (REPO / "requirements.txt").read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def requirements_pins() -> dict[str, str]:
    return exact_pins(line for line in requirements_lines() if not LOCAL.match(line))


def test_requirements_txt_agrees():
    pins = requirements_pins()
    local = {canonicalize_name(Path(LOCAL.match(l)["path"]).name) for l in requirements_lines() if LOCAL.match(l)}
    assert local == set(PACKAGES), f"requirements.txt installs {sorted(local)}, packages/ holds {sorted(PACKAGES)}"
    for pkg in PACKAGES:
        for name, version in third_party_pins(pkg).items():
            if name in pins:
                assert pins[name] == version, f"requirements.txt {name}=={pins[name]}, {pkg} pins {version}"
    assert "snakemake-executor-plugin-slurm" in pins, "the SLURM profile's executor plugin"


def rule_blocks() -> dict[str, str]:
    """rule name -> its text, from every workflow/rules/*.smk and the Snakefile."""
    blocks = {}
    for path in [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        parts = re.split(r"^[ \t]*(?:rule|checkpoint)[ \t]+(\w+)[ \t]*:", path.read_text(), flags=re.M)
        for name, body in zip(parts[1::2], parts[2::2]):
            blocks[name] = body
    return blocks


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
