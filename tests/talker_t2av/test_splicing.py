"""Word splicing (data.splice_words): new training sentences cut from clips of the same speaker and emotion at
the pauses between words; each word's frames come whole from one clip, the text says the words spliced."""

import json

import numpy as np
import pytest
import torch

from talker_t2av.data import TalkerDataConfig, TalkerDataError, TalkerDataset
from talker_t2av.splicing import SplicingError, word_cuts

FPS = 25.0


def timed_clip(root, number, words, speaker="s1", emotion="calm", motion=False):
    """A clip whose speech frame f of clip ``number`` reads (number, f, ...): every frame says where it came
    from. Word w lasts 0.4 s with 0.12-s pauses, after 0.2 s of silence."""
    timings = [[w.upper(), round(0.2 + 0.52 * k, 3), round(0.6 + 0.52 * k, 3)] for k, w in enumerate(words)]
    frames = int(round((timings[-1][2] + 0.2) * FPS))
    speech = np.zeros((frames, 32), np.float32)
    speech[:, 0], speech[:, 1] = number, np.arange(frames)
    (root / "f").mkdir(exist_ok=True)
    np.save(root / "f" / f"c{number}_s.npy", speech)
    np.save(root / "f" / f"c{number}_k.npy", np.full(256, number, np.float32))
    entry = {"id": f"c{number}", "num_frames": frames, "text": " ".join(words), "speaker_id": speaker,
             "emotion": emotion, "words": timings, "speech": f"f/c{number}_s.npy", "speaker": f"f/c{number}_k.npy"}
    if motion:
        np.save(root / "f" / f"c{number}_m.npy", np.zeros((frames, 40), np.float32))
        entry["motion"] = f"f/c{number}_m.npy"
    return entry


def manifest(root, entries, name="clips.jsonl"):
    path = root / name
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return str(path)


SENTENCES = [["set", "blue", "at", "d"], ["lay", "red", "by", "f"], ["bin", "green", "in", "k"]]


def dataset(root, entries, share=1.0, train=True, av_entries=(), **cfg):
    av = [manifest(root, av_entries, "av.jsonl")] if av_entries else []
    cfg = TalkerDataConfig(manifests=av, tts_manifests=[manifest(root, entries)], balance=False, splice_words=share,
                           **cfg)
    return TalkerDataset(cfg, "char", patch_size=4, train=train, frame_rate=FPS)


def says(ds, item, text):
    return item["text_ids"].tolist() == ds.layout.prompt_ids(text)


def test_cuts_fall_in_the_middle_of_the_pauses():
    words = [["A", 0.2, 0.6], ["B", 0.76, 1.12], ["C", 1.28, 1.64]]
    assert word_cuts(words, 46, FPS, "x").tolist() == [0, 17, 30, 46]  # pauses 0.6-0.76 and 1.12-1.28 s
    overlapping = [["A", 0.2, 0.9], ["B", 0.5, 1.0]]
    assert np.all(np.diff(word_cuts(overlapping, 30, FPS, "x")) >= 0)
    with pytest.raises(SplicingError, match="x: 'words' must be a list of"):
        word_cuts([["A", "soon", 1.0]], 30, FPS, "x")
    with pytest.raises(SplicingError, match="ends before it starts"):
        word_cuts([["A", 1.0, 0.5]], 30, FPS, "x")


def test_a_spliced_sentence_is_whole_words_of_its_group_with_their_text(tmp_path):
    entries = [timed_clip(tmp_path, n, words) for n, words in enumerate(SENTENCES)]
    entries.append(timed_clip(tmp_path, 7, ["place", "white", "with", "z"], speaker="s2"))  # another voice
    entries.append(timed_clip(tmp_path, 8, ["place", "white", "with", "q"], emotion="anger"))  # another emotion
    ds = dataset(tmp_path, entries)
    cuts = {n: word_cuts(e["words"], e["num_frames"], FPS, "") for n, e in zip((0, 1, 2, 7, 8), entries)}
    torch.manual_seed(0)
    texts = set()
    for _ in range(40):
        item = ds[0]
        speech = item["speech"].numpy()
        assert item["ends"] and item["motion"] is None
        # the frames are runs of one clip's consecutive frames, one run per word, each a whole word's span
        new_run = np.flatnonzero((np.diff(speech[:, 0]) != 0) | (np.diff(speech[:, 1]) != 1)) + 1
        runs = np.split(np.arange(len(speech)), new_run)
        spans = []
        for run in runs:
            clip, first, last = int(speech[run[0], 0]), int(speech[run[0], 1]), int(speech[run[-1], 1])
            assert clip in (0, 1, 2), "a word from another speaker or emotion"
            bounds = cuts[clip].tolist()
            # consecutive words of one clip are one run: split it at that clip's cuts
            inner = [b for b in bounds if first < b <= last]
            starts = [first, *inner]
            ends = [*inner, last + 1]
            spans += [(clip, bounds.index(s), s, e) for s, e in zip(starts, ends)]
        assert [w for _, w, _, _ in spans] == [0, 1, 2, 3]
        assert all(s == cuts[c][w] and e == cuts[c][w + 1] for c, w, s, e in spans)
        text = " ".join(SENTENCES[c][w] for c, w, _, _ in spans)
        assert says(ds, item, text)
        texts.add(text)
    assert len(texts) > 10  # new sentences, not the corpus's three


def test_what_is_never_spliced(tmp_path):
    entries = [timed_clip(tmp_path, n, words) for n, words in enumerate(SENTENCES)]
    lonely = timed_clip(tmp_path, 5, ["lay", "blue"], speaker="s3")  # alone in its group
    wrong = {**timed_clip(tmp_path, 6, ["set", "red", "at", "b"]), "text": "set red at c"}  # timings of another text
    av = timed_clip(tmp_path, 9, ["bin", "blue", "by", "e"], motion=True)  # a face would jump at each cut
    ds = dataset(tmp_path, [*entries, lonely, wrong], av_entries=[av])
    assert ds.entries[0]["id"] == "c9" and ds.entries[0]["motion"]
    originals = {e["id"]: np.load(tmp_path / e["speech"]) for e in ds.entries}
    torch.manual_seed(0)
    for i, e in [(0, ds.entries[0]), *list(enumerate(ds.entries))[4:]]:
        for _ in range(10):
            item = ds[i]
            assert np.array_equal(item["speech"].numpy(), originals[e["id"]][: len(item["speech"])])
            assert says(ds, item, e["text"])
    # validation and splice_words=0 read the corpus's own sentences
    for kept in (dataset(tmp_path, entries, train=False), dataset(tmp_path, entries, share=0.0)):
        for i, e in enumerate(kept.entries):
            assert kept.splicer is None and says(kept, kept[i], e["text"])


def test_the_share_of_spliced_items(tmp_path):
    entries = [timed_clip(tmp_path, n, words) for n, words in enumerate(SENTENCES)]
    ds = dataset(tmp_path, entries, share=0.5)
    torch.manual_seed(1)
    spliced = [not says(ds, ds[0], entries[0]["text"]) for _ in range(400)]
    # a splice can redraw clip 0's own words (1/81 here): about half, less a little
    assert 0.42 < np.mean(spliced) < 0.57, np.mean(spliced)


def test_bad_settings_are_one_line(tmp_path):
    entries = [timed_clip(tmp_path, n, words) for n, words in enumerate(SENTENCES)]
    with pytest.raises(TalkerDataError, match=r"data.splice_words is a share of the items, in \[0, 1\]; got 1.5"):
        dataset(tmp_path, entries, share=1.5)
    with pytest.raises(TalkerDataError, match="splices precomputed features; with data.features=on_the_fly"):
        dataset(tmp_path, entries, features="on_the_fly")
    untimed = [{k: v for k, v in e.items() if k != "words"} for e in entries]
    with pytest.raises(SplicingError, match=r"clips.jsonl: data.splice_words needs word timings .* none of 3"):
        dataset(tmp_path, untimed)
    broken = [*entries[:2], {**entries[2], "words": [["BIN", "x", 1], ["GREEN", 1, 2], ["IN", 2, 3], ["K", 3, 4]]}]
    with pytest.raises(SplicingError, match=r"clips.jsonl: clip 'c2': 'words' must be a list of \[word, start_s"):
        dataset(tmp_path, broken)
