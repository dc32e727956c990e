"""HiCoDiT data: manifests of precomputed features + tokens, alignment, cropping, padding, bad input."""

import json

import numpy as np
import pytest
import torch

from hicodit.data import ClipDataError, HiCoDiTDataset, collate, write_clips
from hicodit.synthetic import SyntheticClips
from tests.hicodit.helpers import tiny_data_config


def clips(n=3, frames=(10, 20)):
    synth = SyntheticClips(tiny_data_config(n, frames))
    return [synth.clip(i) for i in range(n)]


def test_manifest_clips_load_align_and_pad(tmp_path):
    arrays = clips(3, (10, 20))
    arrays[1]["tokens"] = arrays[1]["tokens"][:, :-1]  # the codec's last frame may be short by one
    arrays[2]["emotion"] = np.eye(7, dtype=np.float32)[arrays[2]["emotion"]]  # probabilities work too
    manifest = write_clips(tmp_path, arrays, ids=["a", "b", "c"])
    ds = HiCoDiTDataset(tiny_data_config(train_manifest=str(manifest)))
    assert ds.lengths == [len(a["lip"]) for a in arrays]
    items = [ds[i] for i in range(3)]
    assert items[1]["tokens"].shape == (2 * (len(arrays[1]["lip"]) - 1), 12)  # cut to whole video frames
    assert items[1]["lip"].shape[0] == len(arrays[1]["lip"]) - 1
    batch = collate(items)
    b, t = 3, max(len(it["lip"]) for it in items)
    assert batch["tokens"].shape == (b, 12, 2 * t) and batch["tokens"].dtype == torch.int64
    assert batch["lip"].shape == (b, t, 32) and batch["emotion"].shape == (b, t, 7)
    assert torch.equal(batch["token_mask"], batch["frame_mask"].repeat_interleave(2, 1))
    assert torch.equal(batch["tokens"][0, :, : 2 * len(arrays[0]["lip"])], torch.from_numpy(arrays[0]["tokens"]).long())
    assert batch["ids"] == ["a", "b", "c"] and batch["face"].shape == (3, 16) and batch["ge2e"].shape == (3, 8)


def test_long_clips_are_cropped_consistently(tmp_path):
    arrays = clips(1, (30, 30))
    manifest = write_clips(tmp_path, arrays)
    ds = HiCoDiTDataset(tiny_data_config(train_manifest=str(manifest), max_frames=12))
    torch.manual_seed(1)
    item = ds[0]
    assert ds.lengths == [12] and item["lip"].shape[0] == 12 and item["tokens"].shape[0] == 24
    start = int(np.argmax((arrays[0]["lip"] == item["lip"][0].numpy()).all(1)))
    assert torch.equal(item["tokens"], torch.from_numpy(arrays[0]["tokens"][:, 2 * start : 2 * start + 24]).T.long())


def test_bad_clips_stop_with_the_file_and_the_problem(tmp_path):
    arrays = clips(2)
    arrays[0]["tokens"] = arrays[0]["tokens"][:, :10]
    arrays[1]["lip"][3, 2] = np.nan
    manifest = write_clips(tmp_path, arrays, ids=["short", "nan"])
    ds = HiCoDiTDataset(tiny_data_config(train_manifest=str(manifest)))
    with pytest.raises(ClipDataError, match="'short'.*10 token frames do not match"):
        ds[0]
    with pytest.raises(ClipDataError, match=r"lip/nan\.npy: contains NaN"):
        ds[1]
    (tmp_path / "face" / "short.npy").unlink()
    with pytest.raises(ClipDataError, match=r"face/short\.npy: file not found"):
        ds[0]


def test_generated_clips_are_deterministic_and_follow_their_conditions():
    a, b = SyntheticClips(tiny_data_config(4)), SyntheticClips(tiny_data_config(4))
    assert all(np.array_equal(a.clip(2)[k], b.clip(2)[k]) for k in a.clip(2))
    clip = a.clip(0)
    assert clip["tokens"].shape == (12, 2 * len(clip["lip"])) and clip["tokens"].max() < 64
    assert not np.array_equal(clip["tokens"][:, 0::2], clip["tokens"][:, 1::2])  # two tokens per frame differ


def test_the_teacher_is_the_argmax_its_docstring_states_and_is_made_once_per_clip():
    """token (q, r k + j) = argmax_v (A_{q,j} lip_k + B_q ge2e)_v, from the maps themselves; a clip's tokens
    come back the same on every read (they are kept, not redrawn), and a caller's edit does not reach them."""
    cfg = tiny_data_config(2)
    synth = SyntheticClips(cfg)
    clip = synth.clip(1)
    q, r, v = cfg.num_levels, cfg.tokens_per_frame, cfg.codebook_size
    lip_map = synth.lip_matrix.reshape(cfg.lip_dim, q, r, v)  # (D, Q, r, V)
    for level, k, j in [(0, 0, 0), (3, 5, 1), (q - 1, len(clip["lip"]) - 1, r - 1)]:
        scores = clip["lip"][k] @ lip_map[:, level, j] + clip["ge2e"] @ synth.speaker_map[level]
        assert clip["tokens"][level, r * k + j] == scores.argmax()
    clip["tokens"][:] = -1
    assert np.array_equal(synth.clip(1)["tokens"], SyntheticClips(cfg).clip(1)["tokens"])


def test_tokens_for_a_manifest_that_has_its_features(tmp_path, repo):
    """The corpus runner's HiCoDiT recipe with no visual work: codec tokens of each clip's audio, the
    manifest's other keys kept (paths to existing files made absolute, so the new manifest finds them)."""
    import importlib.util

    from engine.data import read_manifest, write_manifest
    from engine.media import write_wav

    spec = importlib.util.spec_from_file_location("prepare", repo / "scripts" / "prepare_corpus.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    entries = []
    (tmp_path / "lip").mkdir()
    for i, frames in enumerate((10, 13)):
        write_wav(tmp_path / f"a{i}.wav", 0.1 * np.sin(np.arange(frames * 960) / 7.0), 24000)
        np.save(tmp_path / "lip" / f"a{i}.npy", np.zeros((frames, 4), np.float32))
        entries.append({"id": f"a{i}", "num_frames": frames, "audio": f"a{i}.wav", "lip": f"lip/a{i}.npy"})
    entries[1]["audio"] = "bad.wav"
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    write_manifest(tmp_path / "clips.jsonl", entries)
    out = tmp_path / "out"
    tokens_only = ["--lip", "none", "--no-identity", "--no-expression", "--no-ge2e", "--codec-config", "maskgct_tiny",
                   "--min-seconds", "0", "--workers", "0", "--device", "cpu", "--quiet"]
    assert script.main(["hicodit", "--corpus", "list", "--root", str(tmp_path / "clips.jsonl"), "--out-dir",
                        str(out), "--merge", "--val", "0", *tokens_only]) == 0
    (entry,) = read_manifest(out / "manifest.jsonl")
    tokens = np.load(out / entry["tokens"])
    assert tokens.dtype == np.int16 and tokens.shape == (12, 20) and tokens.max() < 64
    assert entry["lip"] == str((tmp_path / "lip" / "a0.npy").resolve()) and entry["num_frames"] == 10
    failure = json.loads((out / "failures" / "shard-00000-of-00001.jsonl").read_text())
    assert failure["id"] == "a1" and failure["reason"].endswith("bad.wav: unreadable or corrupt media file "
                                                               "(InvalidDataError)")


def test_acoustic_emotion_labels_by_name_index_or_file(tmp_path):
    from hicodit.data import ClipDataError, acoustic_emotion

    np.save(tmp_path / "probs.npy", np.full(7, 1 / 7, np.float32))
    assert acoustic_emotion({"id": "a", "e": "happy"}, "e", 7).argmax() == 3  # an alias of "happiness"
    assert acoustic_emotion({"id": "a", "e": 6}, "e", 7).argmax() == 6
    assert acoustic_emotion({"id": "a", "e": "probs.npy", "_root": str(tmp_path)}, "e", 7).shape == (7,)
    with pytest.raises(ClipDataError, match="'bored' is not one of the emotions"):
        acoustic_emotion({"id": "a", "e": "bored"}, "e", 7)
    with pytest.raises(ClipDataError, match="outside 0..6"):
        acoustic_emotion({"id": "a", "e": 9}, "e", 7)


@pytest.mark.parametrize("cache_bytes", [SyntheticClips.CACHE_BYTES, 0])  # whole clips cached, or tokens only
def test_a_synthetic_clip_reads_the_same_every_time_whatever_a_caller_did_to_it(monkeypatch, cache_bytes):
    monkeypatch.setattr(SyntheticClips, "CACHE_BYTES", cache_bytes)
    synth = SyntheticClips(tiny_data_config(2, (10, 12)))
    first = synth.clip(1)
    for array in first.values():
        array[...] = 0  # a caller working in place
    again, fresh = synth.clip(1), SyntheticClips(tiny_data_config(2, (10, 12))).clip(1)
    assert set(again) == set(fresh)
    for key in fresh:
        np.testing.assert_array_equal(again[key], fresh[key])
    assert again["lip"].std() > 0.5
