"""The house: the import contracts of pyproject.toml hold, and the ground floor and the cheap
commands run without loading TensorFlow."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_import_contracts_are_kept():
    """Floors, no TensorFlow in the ground floor, no circles (``lint-imports``)."""
    run = subprocess.run([BIN / "lint-imports", "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def _ground_floor() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    forbidden = next(c for c in config if c["type"] == "forbidden")
    modules = []
    for name in forbidden["source_modules"]:
        path = ROOT / Path(*name.split("."))
        modules.append(name)
        if path.is_dir():
            modules += [f"{name}.{p.stem}" for p in sorted(path.glob("*.py")) if p.stem != "__init__"]
    return modules


def _loaded_after(code: str, env: dict | None = None) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))))"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    return set(run.stdout.split())


def test_the_ground_floor_and_the_command_line_load_no_tensorflow():
    imports = "\n".join(f"import {m}" for m in [*_ground_floor(), "tf_crnn.cli"])
    assert _loaded_after(imports) == set()


def test_a_module_that_loads_tensorflow_is_seen():
    """The probe above would see TensorFlow if it were loaded."""
    assert "tensorflow" in _loaded_after("import tf_crnn.network.layers")


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["import", "--help"],
        ["config", "init", "--help"],
        ["models"],
        ["alphabet", "check", "--help"],
    ],
    ids=" ".join,
)
def test_cheap_commands_load_no_tensorflow(args, tmp_path):
    """The command runs in a process where importing TensorFlow fails: it must not try."""
    blocker = tmp_path / "block"
    blocker.mkdir()
    for name in ("tensorflow", "keras"):
        (blocker / name).mkdir()
        (blocker / name / "__init__.py").write_text(f"raise ImportError('{name} was imported')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    run = subprocess.run([BIN / "tf-crnn", *args], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "was imported" not in run.stderr


def test_config_init_and_import_run_without_tensorflow(tmp_path):
    blocker = tmp_path / "block"
    for name in ("tensorflow", "keras"):
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text(f"raise ImportError('{name} was imported')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    lines = tmp_path / "lines"
    lines.mkdir()
    from PIL import Image

    for i in range(6):
        Image.new("L", (60, 20), 255).save(lines / f"l{i}.png")
        (lines / f"l{i}.gt.txt").write_text(f"line {i}\n")
    run = subprocess.run(
        [BIN / "tf-crnn", "import", "folder", str(lines), "-o", str(tmp_path / "data")],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "data" / "train.csv").is_file()
    run = subprocess.run(
        [BIN / "tf-crnn", "config", "init", "-o", str(tmp_path / "c.json")],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
