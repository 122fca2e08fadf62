"""The README's editable install, used from the folder above a clone named minireptile.

There Python sees the clone's folder (no __init__.py) on its path before anything an install adds;
the package must still be the one imported, and every command must run.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def clone_into(folder):
    """What a clone holds of the package: pyproject.toml, README.md and minireptile/ (no caches)."""
    folder.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, folder / name)
    shutil.copytree(ROOT / "minireptile", folder / "minireptile", ignore=shutil.ignore_patterns("__pycache__"))


@pytest.mark.slow
def test_the_package_imports_and_runs_from_the_folder_above_the_clone(tmp_path):
    clone = tmp_path / "minireptile"
    clone_into(clone)
    # The run-time dependencies come from this interpreter's site-packages; pip installs only the package.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(tmp_path / "venv")],
                   check=True, timeout=120)
    python = str(tmp_path / "venv" / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")} | {
        "PYTHONNOUSERSITE": "1", "PIP_CACHE_DIR": str(tmp_path / "pip-cache"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "-e", str(clone)],
                             capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert install.returncode == 0, install.stderr
    imported = subprocess.run([python, "-c", "import minireptile as mr; mr.Sequential; print(mr.__file__)"],
                              capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert Path(imported.stdout.strip()) == clone / "minireptile" / "__init__.py"
    command = subprocess.run([python, "-m", "minireptile", "sine", "--help"], capture_output=True, text=True,
                             timeout=120, env=env, cwd=tmp_path)
    assert command.returncode == 0, command.stderr
    assert command.stdout.startswith("usage: python -m minireptile sine")
