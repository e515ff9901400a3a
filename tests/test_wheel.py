"""Packaging: a wheel built from the repository carries every config file, and the 2-step CPU smoke runs from it
in a scratch virtual environment that has the wheel installed (not an editable install) and nothing of the
working tree on its path.

The scratch environment borrows the heavy dependencies (torch, verl, Ray) from the repository's ``.venv`` through
a path entry in a ``.pth`` file: such an entry adds that ``site-packages`` to ``sys.path`` without running its own
``.pth`` files, so the editable install of this repository stays inactive there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the files git would commit (tracked and not ignored): setuptools' ``build/`` in the
    working tree can hold modules that no longer exist, and they would end up in the wheel."""
    out = tmp_path_factory.mktemp("wheel")
    src = tmp_path_factory.mktemp("src")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=str(REPO), capture_output=True,
                            text=True, check=True).stdout.splitlines()
    for rel in listed:
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-w", str(out), str(src)], capture_output=True, text=True, timeout=600,
                           cwd=str(out))
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (path,) = out.glob("recipe_srft-*.whl")
    return path


def test_wheel_contains_every_config_file_and_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = sorted(str(p.relative_to(REPO)) for p in (REPO / "recipe_srft" / "config").rglob("*.yaml"))
    assert configs and "recipe_srft/config/runtime/cpu.yaml" in configs
    assert [c for c in configs if c not in names] == []
    for package in [p for p in (REPO / "recipe_srft").rglob("__init__.py")] + list((REPO / "data_prep").glob("*.py")):
        rel = str(package.relative_to(REPO))
        if "__pycache__" not in rel:
            assert rel in names, rel
    assert any(n.endswith("entry_points.txt") for n in names)
    modules = {n for n in names if n.endswith(".py")}
    in_tree = {str(p.relative_to(REPO)) for d in ("recipe_srft", "data_prep") for p in (REPO / d).rglob("*.py")
               if "__pycache__" not in p.parts}
    assert modules == in_tree, (sorted(modules - in_tree), sorted(in_tree - modules))  # nothing stale, nothing lost


@pytest.mark.ray
def test_cpu_smoke_runs_from_the_installed_wheel(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    scratch_site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                       capture_output=True, text=True, check=True).stdout.strip())
    (scratch_site / "_srft_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run([str(python), "-c", "import recipe_srft, recipe_srft.cpu.smoke as s; "
                            "print(recipe_srft.__file__); print(s.CONFIG_DIR)"],
                           capture_output=True, text=True, cwd=str(tmp_path), env=env, timeout=300)
    assert where.returncode == 0, where.stderr[-3000:]
    package_file, config_dir = where.stdout.split()[-2:]
    assert package_file.startswith(str(scratch_site)), package_file  # the wheel, not the working tree
    assert config_dir.startswith(str(scratch_site)) and (Path(config_dir) / "runtime" / "cpu.yaml").is_file()

    smoke = subprocess.run([str(python), "-m", "recipe_srft.cpu.smoke", "--out", str(tmp_path / "smoke"),
                            "--cache", str(tmp_path / "cache"), "--steps", "2"],
                           capture_output=True, text=True, cwd=str(tmp_path), env=env, timeout=900)
    log = (tmp_path / "smoke" / "train.log").read_text() if (tmp_path / "smoke" / "train.log").exists() else ""
    assert smoke.returncode == 0, (smoke.stdout + smoke.stderr)[-3000:] + log[-4000:]
    assert (tmp_path / "smoke" / "ckpt" / "latest_checkpointed_iteration.txt").read_text().strip() == "2"
    assert "step:2 " in log or "step:2 -" in log
