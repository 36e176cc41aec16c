import pytest

from textclf.files import write_atomically


def test_a_file_appears_whole_and_a_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.json"
    write_atomically(target, lambda tmp: tmp.write_text("first"))
    assert target.read_text() == "first"

    def fail(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomically(target, fail)
    assert target.read_text() == "first" and [p.name for p in tmp_path.iterdir()] == ["out.json"]
