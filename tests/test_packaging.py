"""A non-editable install (a built wheel) ships and imports every module of lit_rl."""

from __future__ import annotations

import shutil
import subprocess
import sys

from conftest import REPO

COPY_IGNORE = (".git", ".venv", "build", "dist", "runs", "*.egg-info", "__pycache__")
IMPORT_EVERYTHING = """
import importlib, pkgutil, sys
import lit_rl
assert lit_rl.__file__.startswith(sys.argv[1]), lit_rl.__file__
names = [m.name for m in pkgutil.walk_packages(lit_rl.__path__, "lit_rl.")]
for name in names:
    importlib.import_module(name)
print(" ".join(sorted(names)))
"""


def source_modules() -> set[str]:
    """Every module of the source tree, under the name it installs as."""
    names = set()
    for root, prefix in ((REPO / "lit_rl", "lit_rl"), (REPO / "callbacks", "lit_rl.callbacks")):
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts:
                names.add(".".join((prefix, *parts)))
            else:
                names.add(prefix)
    names.discard("lit_rl")
    return names


def test_wheel_installs_and_imports_every_module(tmp_path):
    source, wheel_dir, site = tmp_path / "source", tmp_path / "wheel", tmp_path / "site"
    # a copy of the sources: no stale build/ folder of the repository can leak in
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*COPY_IGNORE))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = [*pip, "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(wheel_dir)]
    subprocess.run(build, check=True, cwd=tmp_path, timeout=300)
    (wheel,) = wheel_dir.glob("lit_rl-*.whl")
    install = [*pip, "install", "--no-deps", "--target", str(site), str(wheel)]
    subprocess.run(install, check=True, cwd=tmp_path, timeout=300)
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING, str(site)],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the repository: imports must come from the wheel
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "RL_WARNINGS": "False"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = set(result.stdout.split())
    assert source_modules() <= imported, source_modules() - imported
