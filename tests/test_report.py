"""Run reports: curves, samples, the self-contained page, TensorBoard pictures."""

import re
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from tf_crnn.cli import main
from tf_crnn.trust.report import error_marks, sample_sheet


def test_error_marks_follow_a_minimal_alignment():
    missed, wrong = error_marks("chat noir", "chal nir")
    assert [c for c, m in zip("chat noir", missed) if m] == ["t", "o"]
    assert [c for c, m in zip("chal nir", wrong) if m] == ["l"]
    assert error_marks("abc", "abc") == ([False] * 3, [False] * 3)
    assert error_marks("", "xy") == ([], [True, True])


def test_sample_sheet_marks_errors_in_red():
    line = Image.new("L", (200, 40), 255)
    right = sample_sheet([(line, "abc", "abc")])
    wrong = sample_sheet([(line, "abc", "xyz")])
    assert right.size == wrong.size

    def red_pixels(image):
        return sum(1 for r, g, b in image.getdata() if r > 150 and g < 80 and b < 80)

    assert red_pixels(right) == 0 and red_pixels(wrong) > 20


def test_training_writes_a_report_that_opens_without_a_network(trained):
    params, result = trained
    report = result.report
    assert report is not None and report.name == "report.html" and report.parent.name == "report"
    html = report.read_text(encoding="utf-8")
    for section in (
        'id="metrics"',
        'id="curves"',
        'id="confidence"',
        'id="data"',
        'id="samples"',
        'id="confusions"',
        'id="worst"',
    ):
        assert section in html, section
    assert 'id="config"' in html and '"rnn_units": [' in html
    sources = re.findall(r'src="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(href|src)="https?:', html)
    assert "320 rows kept" in html  # the data summary of the training rows
    for picture, size in (("curves.png", (1000, 800)), ("samples.png", None)):
        with Image.open(report.parent / picture) as image:
            assert image.format == "PNG"
            if size:
                assert image.size == size


def test_report_command_and_evaluate_html(trained, digits_data, tmp_path):
    params, _ = trained
    out = tmp_path / "again"
    result = CliRunner().invoke(main, ["report", params.output_model_dir, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file() and (out / "curves.png").is_file() and (out / "samples.png").is_file()

    page = tmp_path / "eval.html"
    result = CliRunner().invoke(
        main, ["evaluate", params.output_model_dir, str(digits_data["eval"]), "--html", str(page)]
    )
    assert result.exit_code == 0, result.output
    html = page.read_text(encoding="utf-8")
    assert "32 rows kept" in html and 'id="worst"' in html and 'id="curves"' not in html


def test_report_of_a_folder_without_a_run_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "holds no model" in result.output and result.output.count("\n") == 1


def test_tensorboard_gets_the_validation_lines_as_a_picture(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    params, _ = trained
    events = EventAccumulator(str(Path(params.output_model_dir) / "logs" / "samples"), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    assert "validation lines" in tags["images"] or "validation lines" in tags["tensors"]


def test_history_of_epochs_without_validation_is_read(tmp_path):
    from tf_crnn.trust.report import plot_curves, read_history

    history = tmp_path / "history.csv"
    history.write_text("epoch,cer,loss,time_s,val_cer,val_loss\n0,0.9,50,10,NA,NA\n1,0.5,20,20,0.4,18\n")
    rows = read_history(history)
    assert "val_cer" not in rows[0] and rows[1]["val_cer"] == 0.4
    assert plot_curves(history)[:8] == b"\x89PNG\r\n\x1a\n"
