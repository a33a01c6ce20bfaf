"""prepare-iam against a local server with IAM's login flow and tiny archives in its layout."""

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from iam_server import LINES, PASSWORD, USER, IamServer, make_archives

from tf_crnn.alphabet import Alphabet
from tf_crnn.cli import main
from tf_crnn.config import Params
from tf_crnn.datasets.iam import IamError, prepare_iam
from tf_crnn.records import read_csv_rows, resolve_image_path, split_label

ROOT = Path(__file__).resolve().parents[1]
LINES_TGZ = "/DBs/iamDB/data/lines.tgz"


@pytest.fixture(scope="module")
def archives():
    return make_archives()


@pytest.fixture
def server(archives):
    with IamServer(archives).running() as s:
        yield s


def prepare(server, tmp_path, credentials=(USER, PASSWORD), **kwargs):
    return prepare_iam(
        tmp_path / "iam",
        tmp_path / "iam" / "generated",
        base_url=server.url,
        credentials=credentials,
        progress=False,
        **kwargs,
    )


def read_split(csv_file):
    return [(resolve_image_path(csv_file, path), label) for _, path, label in read_csv_rows(csv_file)]


def test_prepare_downloads_extracts_and_writes_the_experiment(server, tmp_path):
    result = prepare(server, tmp_path)
    assert sorted(result.downloaded) == sorted(
        ["lines.tgz", "ascii.tgz", "xml.tgz", "largeWriterIndependentTextLineRecognitionTask.zip"]
    )
    assert result.counts == {"trainset": 4, "validationset1": 1, "validationset2": 1, "testset": 1}
    rows = read_split(result.files["trainset"])
    # Word separators become spaces; every row names an existing image under lines/.
    assert split_label(rows[0][1]) == list("A MOVE to stop Mr. Gaitskell")
    assert all(Path(path).is_file() and "/lines/" in path for path, _ in rows)
    assert not list((tmp_path / "iam").glob("*.part")) and not list((tmp_path / "iam").glob(".tmp-*"))
    units = set(Alphabet(result.files["alphabet"]).lookup)
    assert {"A", " ", ".", "-", ","} <= units
    params = Params.from_json_file(result.files["config"])
    assert params.train_csv_files == [str(result.files["trainset"].resolve())]
    assert params.learning_rate_schedule == "cosine"


def test_login_comes_first_and_uses_the_session_cookie(server, tmp_path):
    prepare(server, tmp_path)
    assert server.requests[0][:2] == ("POST", "/login")
    assert len(server.data_requests()) == 4


def test_complete_downloads_are_skipped(server, tmp_path):
    prepare(server, tmp_path)
    for folder in ("lines", "ascii"):  # extracted data removed, archives kept: verified, not fetched
        import shutil

        shutil.rmtree(tmp_path / "iam" / folder)
    server.requests.clear()
    result = prepare(server, tmp_path)
    assert result.downloaded == [] and server.data_requests() == []
    assert result.counts["trainset"] == 4


def test_segmentation_ok_leaves_out_the_err_lines_and_reports_them(server, tmp_path):
    result = prepare(server, tmp_path, segmentation="ok")
    assert result.counts == {"trainset": 3, "validationset1": 1, "validationset2": 0, "testset": 1}
    report = result.files["report"].read_text()
    assert "trainset:a01-000u-01,segmentation flag 'err'" in report


def test_wrong_credentials_are_a_clear_error_and_leave_nothing_complete(server, tmp_path):
    with pytest.raises(IamError, match="login failed; check IAM_USER and IAM_PWD"):
        prepare(server, tmp_path, credentials=(USER, "wrong"))
    leftovers = [p.name for p in (tmp_path / "iam").iterdir()]
    assert not any(name.endswith((".tgz", ".zip")) for name in leftovers)
    assert not (tmp_path / "iam" / "generated" / "config.json").exists()


def test_basic_auth_of_older_mirrors(archives, tmp_path):
    with IamServer(archives, auth="basic").running() as basic:
        with pytest.raises(IamError, match=r"answered HTTP 401\): the login failed"):
            prepare(basic, tmp_path / "a", credentials=(USER, "wrong"), auth="basic")
        assert prepare(basic, tmp_path / "b", auth="basic").counts["trainset"] == 4


def test_a_dropped_connection_is_resumed_with_a_range_request(server, tmp_path, archives):
    server.drop_after[LINES_TGZ] = 1000
    result = prepare(server, tmp_path, retries=1)
    assert result.counts["trainset"] == 4
    ranges = [r for m, p, r in server.data_requests() if p == LINES_TGZ]
    assert ranges == [None, "bytes=1000-"]
    assert (tmp_path / "iam" / "lines.tgz").read_bytes() == archives[LINES_TGZ]


def test_without_retries_a_dropped_connection_keeps_the_part_for_the_next_run(server, tmp_path):
    server.drop_after[LINES_TGZ] = 1000
    with pytest.raises(IamError, match=r"lines.tgz .* failed: connection .*1000 bytes.*run the same command again"):
        prepare(server, tmp_path, retries=0)
    assert (tmp_path / "iam" / "lines.tgz.part").stat().st_size == 1000
    assert not (tmp_path / "iam" / "lines.tgz").exists()
    prepare(server, tmp_path, retries=0)  # the next run resumes
    assert (tmp_path / "iam" / "lines.tgz").is_file() and not (tmp_path / "iam" / "lines.tgz.part").exists()
    assert [r for m, p, r in server.data_requests() if p == LINES_TGZ][-1] == "bytes=1000-"


def test_a_corrupt_archive_is_removed_and_reported(server, tmp_path):
    server.corrupt.add(LINES_TGZ)
    with pytest.raises(IamError, match="lines.tgz is not a complete archive .* removed: run the same command again"):
        prepare(server, tmp_path)
    assert not (tmp_path / "iam" / "lines.tgz").exists() and not (tmp_path / "iam" / "lines.tgz.part").exists()


def test_cli_and_the_original_script_prepare_iam(server, tmp_path, monkeypatch):
    monkeypatch.setenv("IAM_USER", USER)
    monkeypatch.setenv("IAM_PWD", PASSWORD)
    result = CliRunner().invoke(
        main,
        [
            "prepare-iam",
            "--download-dir",
            str(tmp_path / "cli"),
            "--generated-data-dir",
            str(tmp_path / "cli" / "gen"),
            "--base-url",
            server.url,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Wrote 4 trainset, 1 validationset1, 1 validationset2, 1 testset lines" in result.output

    script = subprocess.run(
        [
            sys.executable,
            "prepare_iam.py",
            "--download_dir",
            str(tmp_path / "hlp"),
            "--generated_data_dir",
            str(tmp_path / "hlp" / "gen"),
            "--base_url",
            server.url,
        ],
        cwd=ROOT / "hlp",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert script.returncode == 0, script.stderr
    assert (tmp_path / "hlp" / "gen" / "generated_csv" / "testset.csv").read_text() == (
        tmp_path / "cli" / "gen" / "generated_csv" / "testset.csv"
    ).read_text().replace("/cli/", "/hlp/")


def test_missing_credentials_fail_with_one_line(server, tmp_path, monkeypatch):
    monkeypatch.delenv("IAM_USER", raising=False)
    monkeypatch.delenv("IAM_PWD", raising=False)
    result = CliRunner().invoke(
        main,
        [
            "prepare-iam",
            "--download-dir",
            str(tmp_path),
            "--generated-data-dir",
            str(tmp_path / "g"),
            "--base-url",
            server.url,
        ],
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        (
            "Error: IAM_USER and IAM_PWD are not set: export the e-mail and password of your IAM account "
            "(free after registering at https://fki.tic.heia-fr.ch)"
        )
    ]


@pytest.mark.slow
def test_the_generated_data_trains(server, tmp_path):
    from conftest import TINY_ARCHITECTURE

    from tf_crnn.training.run import train

    files = prepare(server, tmp_path).files
    params = Params.from_json_file(
        files["config"],
        **{**TINY_ARCHITECTURE, "input_shape": [32, 400]},
        n_epochs=1,
        steps_per_epoch=2,
        train_batch_size=2,
        eval_batch_size=2,
        data_augmentation=False,
        max_chars_per_string=40,
        output_model_dir=str(tmp_path / "model"),
        calibrate=False,
        write_report=False,
    )
    result = train(params, verbose=0)
    assert result.n_train == len(LINES["trainset"]) and result.export_path.is_dir()
