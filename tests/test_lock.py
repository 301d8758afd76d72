"""constraints.txt (the lock `make install` uses) agrees with pyproject.toml and with the venv."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

REPO = Path(__file__).resolve().parents[1]
FIX = "run 'make lock' (then 'make install')"


def read_lock(path: Path) -> dict[NormalizedName, str]:
    """name -> exact version for every `name==version` line of a pip constraints file."""
    pins: dict[NormalizedName, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version and not any(c in version for c in "<>=!~*,;"), (
            f"{path.name}:{number}: {raw!r} is not an exact name==version pin"
        )
        key = canonicalize_name(name)
        assert key not in pins, f"{path.name}:{number}: {name} pinned twice"
        pins[key] = version
    return pins


def project_requirements(pyproject: Path) -> list[Requirement]:
    """What `make install` asks for: the dependencies plus the dev extra."""
    project = tomllib.loads(pyproject.read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["dev"]
    return [Requirement(r) for r in wanted]


def mismatches(requirements: list[Requirement], pins: dict[NormalizedName, str]) -> list[str]:
    """Direct requirements that are unpinned, or whose pin lies outside pyproject's range."""
    problems = []
    for req in requirements:
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None:
            problems.append(f"{req.name} is in pyproject but not in the lock")
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{req.name}=={pinned} in the lock is outside pyproject's {req}")
    return problems


def installed_closure(requirements: list[Requirement]) -> set[NormalizedName]:
    """Every distribution the requirements pull in on this interpreter, from installed metadata."""
    seen: set[tuple[NormalizedName, str]] = set()
    names: set[NormalizedName] = set()
    todo = [(req, "") for req in requirements]
    while todo:
        req, parent_extra = todo.pop()
        env = {"extra": parent_extra}
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        names.add(name)
        for extra in {"", *req.extras}:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            todo.extend((Requirement(r), extra) for r in metadata.requires(name) or [])
    return names


@pytest.fixture(scope="module")
def pins() -> dict[NormalizedName, str]:
    return read_lock(REPO / "constraints.txt")


def test_every_pyproject_dependency_is_pinned_inside_its_range(pins) -> None:
    assert mismatches(project_requirements(REPO / "pyproject.toml"), pins) == [], FIX


def test_lock_holds_exactly_the_transitive_closure(pins) -> None:
    needed = installed_closure(project_requirements(REPO / "pyproject.toml"))
    assert sorted(needed - pins.keys()) == [], f"dependencies missing from the lock: {FIX}"
    assert sorted(pins.keys() - needed) == [], f"pins nothing depends on: {FIX}"


def test_venv_matches_the_lock(pins) -> None:
    drift = {
        name: (version, metadata.version(name))
        for name, version in pins.items()
        if metadata.version(name) != version
    }
    assert drift == {}, "installed versions differ from constraints.txt: run 'make install'"


def test_checks_catch_a_disagreeing_lock(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\ndependencies = ["pandas>=2.2", "click>=99"]\n'
        '[project.optional-dependencies]\ndev = ["pytest>=8"]\n'
    )
    lock = tmp_path / "constraints.txt"
    lock.write_text("# header\npandas==2.2.3\nclick==8.1.7\n")
    assert mismatches(project_requirements(pyproject), read_lock(lock)) == [
        "click==8.1.7 in the lock is outside pyproject's click>=99",
        "pytest is in pyproject but not in the lock",
    ]
    lock.write_text("pandas>=2.2\n")
    with pytest.raises(AssertionError, match="not an exact name==version pin"):
        read_lock(lock)


def test_closure_follows_extras_and_markers() -> None:
    with_extra = installed_closure([Requirement("psycopg[binary]")])
    assert {"psycopg", "psycopg-binary"} <= with_extra
    assert "psycopg-binary" not in installed_closure([Requirement("psycopg")])
    assert installed_closure([Requirement('psycopg; python_version < "3.0"')]) == set()
