"""environment.yml must mirror pyproject.toml's dependencies (runtime + notebooks + dev extras)."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda package names that differ from their PyPI names
CONDA_TO_PYPI = {}


def _split(spec: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec)
    name, version = m.group(1), m.group(2).replace(" ", "")
    return re.sub(r"[-_.]+", "-", name).lower(), version


def _pyproject_specs() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in ("notebooks", "dev"):
        specs += project["optional-dependencies"][extra]
    return dict(_split(s) for s in specs)


def _environment_specs() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for spec in dep["pip"]:
                if not spec.startswith("-e"):
                    out.update([_split(spec)])
        else:
            name, version = _split(dep)
            if name not in ("python", "pip"):
                out[CONDA_TO_PYPI.get(name, name)] = version
    return out


def test_environment_mirrors_pyproject():
    py, env = _pyproject_specs(), _environment_specs()
    assert sorted(set(py) - set(env)) == [], "in pyproject.toml but missing from environment.yml"
    assert sorted(set(env) - set(py)) == [], "in environment.yml but missing from pyproject.toml"
    mismatched = {k: (py[k], env[k]) for k in py if py[k] != env[k]}
    assert mismatched == {}, f"version specifiers differ (pyproject, environment.yml): {mismatched}"


def test_environment_installs_the_package_itself():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip


def test_torch_is_pinned_exactly():
    # An unpinned torch pulls a multi-GB CUDA build on CPU-only machines; the pin is a documented choice.
    assert re.fullmatch(r"==\d+\.\d+\.\d+", _pyproject_specs()["torch"])


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[_split(name)[0]] = version.strip()
    return pins


def test_constraints_pin_every_dependency_inside_its_range():
    """make install uses constraints.txt: it must pin each declared dependency to a version pyproject allows."""
    from packaging.specifiers import SpecifierSet

    pins = _constraints()
    missing = sorted(set(_pyproject_specs()) - set(pins))
    assert missing == [], f"constraints.txt lacks {missing}: run `make lock`"
    outside = {k: (pins[k], spec) for k, spec in _pyproject_specs().items() if pins[k] not in SpecifierSet(spec)}
    assert outside == {}, f"pinned versions outside pyproject's ranges: {outside}; run `make lock`"
    assert all("+" not in v for v in pins.values()), "local version labels (+cpu) pin one machine's wheel"
