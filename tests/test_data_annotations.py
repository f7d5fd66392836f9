"""Annotation lists: parsing, writing, and the errors for malformed lists."""
import pytest

from tinlib.data import AnnotationError, load_annotations, write_rawframe_list, write_video_list


def test_rawframe_list_roundtrip(tmp_path):
    path = write_rawframe_list(tmp_path / "l.txt", [("a/1", 40, 3), ("b", 7, 0)])
    assert path.read_text() == "a/1 40 3\nb 7 0\n"
    recs = load_annotations(path, "rawframes", num_classes=4)
    assert [(r.path, r.total_frames, r.label, r.line) for r in recs] == [("a/1", 40, 3, 1), ("b", 7, 0, 2)]


def test_video_list_roundtrip_and_blank_lines(tmp_path):
    path = write_video_list(tmp_path / "v.txt", [("x/1.mp4", 2), ("2.webm", 1)])
    path.write_text(path.read_text() + "\n\n")
    recs = load_annotations(path, "videos")
    assert [(r.path, r.total_frames, r.label) for r in recs] == [("x/1.mp4", None, 2), ("2.webm", None, 1)]


def test_writer_refuses_paths_with_spaces(tmp_path):
    with pytest.raises(ValueError, match="whitespace"):
        write_video_list(tmp_path / "v.txt", [("a b.mp4", 0)])


@pytest.mark.parametrize("text, kind, message", [
    ("a 10 1\nb 10\n", "rawframes", r"l\.txt:2: expected 3 fields .*use kind='videos'"),
    ("a 10 1\nb ten 1\n", "rawframes", r"l\.txt:2: total_frames must be an integer, got 'ten'"),
    ("a 10 1\n\nb 0 1\n", "rawframes", r"l\.txt:3: 'b' has total_frames=0"),
    ("a.mp4 x\n", "videos", r"l\.txt:1: label must be an integer, got 'x'"),
    ("a.mp4 1\nb.mp4 2 3\n", "videos", r"l\.txt:2: expected 2 fields .*use kind='rawframes'"),
    ("a 10 1\nb 10 5\n", "rawframes", r"l\.txt:2: label 5 of 'b' is outside \[0, 5\)"),
    ("a 10 -1\n", "rawframes", r"l\.txt:1: label -1 of 'a' is outside"),
    ("\n\n", "rawframes", r"annotation list is empty: .*l\.txt"),
])
def test_malformed_lists_name_file_and_line(tmp_path, text, kind, message):
    (tmp_path / "l.txt").write_text(text)
    with pytest.raises(AnnotationError, match=message):
        load_annotations(tmp_path / "l.txt", kind, num_classes=5)


def test_missing_list_says_how_to_build_it(tmp_path):
    with pytest.raises(AnnotationError, match=r"annotation list not found: .*nope\.txt; build it with `tinlib prepare"):
        load_annotations(tmp_path / "nope.txt")
