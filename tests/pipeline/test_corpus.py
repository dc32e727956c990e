"""Corpus layouts, torn manifest parts and the split rules, without running a recipe."""

import json

import pytest

from engine.pipeline.corpus import CorpusError, walk_corpus
from engine.pipeline.runner import assign_splits, merge, read_rows


def touch(path, text=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    if text is not None:
        path.with_suffix(".txt").write_text(text)


def test_lrs2_lists_vox2_folder_and_list_layouts(tmp_path):
    lrs2 = tmp_path / "lrs2"
    touch(lrs2 / "main" / "6330311066473698535" / "00011.mp4", "Text:  HELLO THERE\nConf: 3\n")
    touch(lrs2 / "pretrain" / "5535415699068794046" / "00001.mp4")
    (lrs2 / "test.txt").write_text("6330311066473698535/00011 NF\n")
    (lrs2 / "pretrain.txt").write_text("5535415699068794046/00001\n")
    clips = walk_corpus("lrs2", lrs2)
    assert [(c.id, c.subset, c.text) for c in clips] == [
        ("pretrain__5535415699068794046__00001", "pretrain", ""),
        ("test__6330311066473698535__00011", "test", "HELLO THERE")]
    vox = tmp_path / "vox2"
    touch(vox / "dev" / "mp4" / "id00012" / "21Uxsk56VDQ" / "00001.mp4")
    (clip,) = walk_corpus("vox2", vox)
    assert (clip.id, clip.speaker, clip.subset) == ("dev__id00012__21Uxsk56VDQ__00001", "id00012", "dev")
    folder = tmp_path / "any"
    touch(folder / "alice" / "a.mp4")
    touch(folder / "alice" / "b.tmp-0a1b2c3d.mp4")  # an interrupted atomic write's leftover: not a clip
    (folder / "alice" / "a.json").write_text(json.dumps({"text": "from json"}))
    (clip,) = walk_corpus("folder", folder)
    assert (clip.id, clip.speaker, clip.text) == ("alice__a", "alice", "from json")
    # the released Talker-T2AV-Data CSV: its column names are read as ours, paths from the list's folder
    csv = tmp_path / "meta" / "train.csv"
    touch(tmp_path / "meta" / "wav" / "c1.wav")
    csv.write_text("motion_pt_path,wav_path,text\nmotion/c1.pt,wav/c1.wav,hi there\n")
    (clip,) = walk_corpus("list", csv)
    assert clip.audio.endswith("meta/wav/c1.wav") and clip.extra["motion_raw"].endswith("meta/motion/c1.pt")
    assert clip.text == "hi there" and clip.id == "wav__c1"


def test_corpus_errors_are_one_line(tmp_path):
    with pytest.raises(CorpusError, match="nowhere: corpus folder .* does not exist"):
        walk_corpus("lrs3", tmp_path / "nowhere")
    with pytest.raises(CorpusError, match="no LRS3 clips"):
        walk_corpus("lrs3", tmp_path)
    lst = tmp_path / "l.jsonl"
    lst.write_text('{"id": "a b", "video": "x.mp4"}\n{"id": "a_b", "video": "y.mp4"}\n')
    with pytest.raises(CorpusError, match="two clips map to the id 'a_b'"):
        walk_corpus("list", lst)


def test_a_torn_last_line_is_ignored_and_the_clip_redone(tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "shard-00000-of-00001.jsonl").write_text(
        json.dumps({"id": "a", "num_frames": 3, "speaker": "s"}) + "\n" + '{"id": "b", "num_fr')
    assert [r["id"] for r in read_rows([parts / "shard-00000-of-00001.jsonl"])] == ["a"]
    merge(tmp_path, split="random", val_fraction=0.0)
    assert [json.loads(x)["id"] for x in (tmp_path / "manifest.jsonl").read_text().splitlines()] == ["a"]


def test_speaker_disjoint_split():
    rows = [{"id": f"{s}_{i}", "speaker": s, "subset": ""} for s in "abcdefghij" for i in range(10)]
    split = assign_splits(rows, "speaker", val_fraction=0.1, test_fraction=0.2, seed=3)
    by = {name: {r["speaker"] for r in rows if split[r["id"]] == name} for name in ("train", "val", "test")}
    assert len(by["val"]) == 1 and len(by["test"]) == 2 and len(by["train"]) == 7
    assert not (by["val"] & by["train"] or by["test"] & by["train"] or by["val"] & by["test"])
