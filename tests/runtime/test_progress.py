import json

from textclf.runtime.progress import Progress


def test_non_terminal_progress_is_one_json_object_per_line(capsys):
    progress = Progress("label", total=100, interactive=False, interval_s=0.0)
    progress.update(40, padding_efficiency=0.97)
    progress.close()
    lines = capsys.readouterr().err.strip().splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0]["event"] == "progress" and records[-1]["event"] == "done"
    assert records[0]["done"] == 40 and records[0]["total"] == 100
    assert {"rows_per_s", "eta_s", "padding_efficiency", "elapsed_s"} <= set(records[0])


def test_json_lines_are_throttled(capsys):
    progress = Progress("train", total=None, interactive=False, interval_s=3600)
    for _ in range(100):
        progress.update(1)
    assert capsys.readouterr().err == ""


def test_the_bar_ends_with_the_last_fields_not_a_stale_description(capsys):
    progress = Progress("label", total=10, interactive=True)
    progress.update(5, tokens_per_s=100)  # described: the first update with fields
    progress.update(5, tokens_per_s=250)  # within a second: not described yet
    progress.close()
    assert progress._bar.desc.startswith("label tokens_per_s=250")
