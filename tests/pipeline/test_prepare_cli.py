"""The corpus runner's refusals and summaries, in process and without a recipe's models: flags refused at
parsing, an output folder that is a file, a binary list, a held-out split far from its share, and
failures counted by kind rather than by their message's numbers."""

import json
import logging
import pickle
from collections import Counter

import numpy as np
import pytest

from engine.atomic import OutputError
from engine.errors import UserFacingError
from engine.media.errors import MediaError
from engine.pipeline import cli
from engine.pipeline.corpus import Clip, CorpusError, walk_corpus
from engine.pipeline.runner import (
    MISMATCH,
    NO_FACE,
    TOO_SHORT,
    ClipFailure,
    ClipRefused,
    ClipResult,
    Recipe,
    assign_splits,
    merge,
    run,
)
from hicodit.prep import FilteredClip

RECIPES = {"talker": "talker_t2av.prep"}


@pytest.fixture(scope="module")
def parser():
    return cli.build_parser(RECIPES)


def a_list(tmp_path):
    """A one-clip list corpus (the clip is never opened: every refusal below comes before)."""
    path = tmp_path / "clips.jsonl"
    path.write_text(json.dumps({"id": "c1", "audio": "c1.wav", "text": "hi"}) + "\n")
    return path


@pytest.mark.parametrize("flags, needle", [
    (["--workers", "-1"], "argument --workers: must be >= 0, got -1"),
    (["--val", "1.5"], "argument --val: must be a fraction of the clips in [0, 1), got 1.5"),
    (["--test", "-0.1"], "argument --test: must be a fraction of the clips in [0, 1), got -0.1"),
    (["--val", "nan"], "argument --val: must be a fraction"),
    (["--split", "speaker", "--val", "0.5", "--test", "0.5"], "hold out every clip"),
])
def test_bad_numbers_are_refused_at_parsing(parser, tmp_path, capsys, flags, needle):
    argv = ["talker", "--corpus", "list", "--root", str(a_list(tmp_path)), "--out-dir", str(tmp_path / "out"), *flags]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(parser, argv)
    assert exit_info.value.code == 2
    assert needle in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_an_output_folder_that_is_a_file_is_one_line_before_any_work(parser, tmp_path):
    in_the_way = tmp_path / "taken"
    in_the_way.write_text("mine")
    for argv in (["talker", "--corpus", "list", "--root", str(a_list(tmp_path)), "--out-dir", str(in_the_way)],
                 ["merge", "--out-dir", str(in_the_way)]):
        with pytest.raises(OutputError, match="taken: is an existing file, not a folder"):
            cli.run(parser.parse_args(argv))
    assert in_the_way.read_text() == "mine"


def test_a_binary_file_given_as_a_list_is_one_line_naming_it(tmp_path):
    binary = tmp_path / "clips.csv"
    binary.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CorpusError, match=r"clips.csv: not a text file \(a CSV list of clips; byte 0x80"):
        walk_corpus("list", binary)
    with_nul = tmp_path / "nul.csv"
    with_nul.write_bytes(b"video,text\nA\x00.mp4,hi\n")
    with pytest.raises(CorpusError, match=r"nul.csv: not a text file \(a CSV list of clips; it holds NUL bytes"):
        walk_corpus("list", with_nul)


def split_warnings(caplog, rows, *args):
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="engine.pipeline.runner"):
        split = assign_splits(rows, *args)
    return split, [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_split_far_from_its_share_says_so(caplog):
    # the bad-input corpus: 7 training clips of 3 speakers, --val 0.02 took a whole speaker's 3 clips
    rows = [{"id": f"{s}_{i}", "speaker": s, "subset": "trainval"} for s, n in (("a", 3), ("b", 2), ("c", 2))
            for i in range(n)]
    split, warnings = split_warnings(caplog, rows, "subset", 0.02, 0.0, 0)
    held = sum(v == "val" for v in split.values())
    assert held >= 2 and len(warnings) == 1, warnings
    assert warnings[0].startswith(f"val: {held} of 7 clips") and "asked 2%" in warnings[0]
    assert "whole speakers, 1 here" in warnings[0]
    # one speaker only: the held-out set takes everything
    _, warnings = split_warnings(caplog, rows[:3], "speaker", 0.1, 0.0, 0)
    assert any(w.startswith("train: no clips left") for w in warnings), warnings
    # many speakers: the share is met, nothing to say
    many = [{"id": f"{s}_{i}", "speaker": s, "subset": ""} for s in "abcdefghij" for i in range(10)]
    assert split_warnings(caplog, many, "speaker", 0.1, 0.2, 3)[1] == []
    assert split_warnings(caplog, many, "random", 0.02, 0.0, 3)[1] == []
    _, warnings = split_warnings(caplog, many[:10], "random", 0.02, 0.0, 3)  # 2% of 10 clips rounds to none
    assert warnings == ["val: no clips (asked 2% of 10 clips rounds to none)"]


class Refusing(Recipe):
    """Fails clips the ways a real corpus does; the one clip named ``good`` is prepared."""

    name = "refusing"

    def setup(self, device):
        pass

    def load(self, clip: Clip) -> dict:
        if clip.id.startswith("corrupt"):
            raise MediaError(clip.video, "unreadable or corrupt media file (InvalidDataError)")
        if clip.id == "short":
            raise UserFacingError(f"{clip.video}: duration 0.40 s outside [1.0, 30.0] s")
        if clip.id == "noface":
            raise ClipRefused(f"{clip.video}: a face on only 12% of the frames (< 90%)", NO_FACE)
        return {}

    def process(self, loaded):
        # hicodit's length filter records its reason as text, with the clip's own numbers
        return [ClipResult(item["clip"], {"x": np.zeros(1)}, {"speaker": "s"}) if item["clip"].id == "good" else
                ClipFailure(item["clip"], f"{item['clip'].video}: {100 - 4 * n} tokens for {47 - n} frames (audio "
                                          f"and video differ by 0.12 s)", "codec")
                for n, item in enumerate(loaded)]


def test_failures_are_counted_by_kind_not_by_message(tmp_path, caplog):
    ids = ["corrupt1", "corrupt2", "good", "noface", "short", "skew1", "skew2"]
    clips = [Clip(i, video=str(tmp_path / f"{i}.mp4"), speaker="s") for i in ids]
    summary = run(Refusing(), clips, tmp_path / "out", shard="0/1", device="cpu", batch_size=8, num_workers=0,
                  progress=False)
    assert summary.ok == 1
    assert summary.failed == Counter({"mismatch": 2, "unreadable": 2, "no face": 1, "too short": 1})
    assert "5 failed" not in summary.line() and "6 failed (2 " in summary.line()
    records = [json.loads(line) for line in (tmp_path / "out" / "failures" / "shard-00000-of-00001.jsonl")
               .read_text().splitlines()]
    assert {r["id"]: r["kind"] for r in records} == {"corrupt1": "unreadable", "corrupt2": "unreadable",
                                                     "noface": "no face", "short": "too short",
                                                     "skew1": "mismatch", "skew2": "mismatch"}
    with caplog.at_level(logging.INFO, logger="engine.pipeline.runner"):
        merge(tmp_path / "out", val_fraction=0.0)
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("merged"))
    counted = line.split("6 failed (")[-1].rstrip(")").split(", ")
    assert sorted(counted) == ["1 no face", "1 too short", "2 mismatch", "2 unreadable"], line


def test_records_written_before_kinds_are_grouped_by_kind_too(tmp_path, caplog):
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "p.jsonl").write_text(json.dumps({"id": "ok", "speaker": "s"}) + "\n")
    (tmp_path / "failures").mkdir()
    old = [("a", "/d/a.mp4: 100 tokens for 47 frames (audio and video differ by 0.12 s)", "codec"),
           ("b", "/d/b.mp4: 96 tokens for 45 frames (audio and video differ by 0.12 s)", "codec"),
           ("c", "/d/c.mp4: no face found in any of the 30 frames", "visual"),
           ("d", "/d/d.mp4: duration 31.20 s outside [1.0, 30.0] s", "load")]
    (tmp_path / "failures" / "f.jsonl").write_text("".join(json.dumps({"id": i, "reason": r, "stage": s}) + "\n"
                                                           for i, r, s in old))
    with caplog.at_level(logging.INFO, logger="engine.pipeline.runner"):
        merge(tmp_path, val_fraction=0.0)
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("merged"))
    assert line.endswith("4 failed (2 mismatch, 1 no face, 1 too long)"), line


def test_a_refusal_raised_in_a_decoding_worker_reaches_the_main_process_with_its_kind():
    # the DataLoader pickles a worker's exception; an extra constructor argument must survive that
    for error in (ClipRefused("a.mp4: 55 tokens for 25 frames", MISMATCH), FilteredClip("b.mp4: too short", TOO_SHORT)):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error) and copy.kind == error.kind
