"""The installable package: pyproject.toml, the `seqcopy` command from any folder, the wheel's contents."""

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from conftest import REPO

ENV = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}  # no PYTHONPATH: the installed package only


def requirement_lines(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        if line.strip() == "# tests":
            break  # what follows is for the tests only: pyproject's "test" extra
        requirement = line.split("#")[0].strip()
        if requirement:
            lines.append(requirement)
    return lines


def test_pyproject_dependencies_match_requirements_txt():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = requirement_lines((REPO / "requirements.txt").read_text())
    build_backend = [line for line in runtime if line.startswith("setuptools")]
    assert sorted(project["dependencies"]) == sorted(set(runtime) - set(build_backend))
    assert project["scripts"] == {"seqcopy": "seqcopy.cli:main"}


def test_the_ray_extra_matches_requirements_ray_txt_and_bin_test_installs_it():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["ray"] == requirement_lines((REPO / "requirements-ray.txt").read_text())
    assert "setup-env\" --with-ray" in (REPO / "bin" / "test").read_text()


def test_the_seqcopy_command_works_from_any_folder(tmp_path):
    """After bin/setup-env (which bin/test runs first), in the interpreter's own environment."""
    command = Path(sys.executable).parent / "seqcopy"
    assert command.exists(), f"{command} is missing: run bin/setup-env"
    done = subprocess.run([str(command), "--help"], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: seqcopy ") and "evaluate" in done.stdout
    module = subprocess.run([sys.executable, "-m", "seqcopy", "train", "--help"], cwd=tmp_path, env=ENV,
                            capture_output=True, text=True, timeout=60)
    assert module.returncode == 0, module.stderr
    assert module.stdout.startswith("usage: seqcopy train ") and "--logs-dir" in module.stdout
    assert list(tmp_path.iterdir()) == []


def test_the_wheel_ships_the_cpp_source_and_the_command(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "seqcopy", source / "seqcopy", ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-build-isolation", "--no-deps", "--no-index",
         "-w", str(tmp_path / "out"), str(source)],
        env=ENV | {"PYTHONWARNINGS": "ignore"}, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "out").glob("seqcopy-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(name).decode() for name in names if name.endswith("entry_points.txt"))
    cpp = {path.relative_to(REPO).as_posix() for path in (REPO / "seqcopy" / "core" / "csrc").glob("*.cpp")}
    assert cpp and cpp <= names
    assert {"seqcopy/cli/commands.py", "seqcopy/core/evaluation.py", "seqcopy/cli/log_folder.py"} <= names
    assert not any(name.startswith(("tests/", "views/", "bench/")) for name in names)
    assert "seqcopy = seqcopy.cli:main" in entry_points
