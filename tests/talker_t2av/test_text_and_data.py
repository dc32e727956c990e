"""Chat layout of the text, the manifest dataset of precomputed features, and the collate function."""

import json

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from talker_t2av.data import TalkerCollator, TalkerDataConfig, TalkerDataError, TalkerDataset
from talker_t2av.tokenizer import SPEECH_TOKEN, ChatLayout, build_char_tokenizer, load_tokenizer
from tests.conftest import compose


def test_prompt_is_the_qwen3_template_up_to_the_first_patch():
    tok = build_char_tokenizer()
    ids = ChatLayout(tok).prompt_ids("Hello, 世界")
    assert tok.decode(ids) == "<|im_start|>user\nHello, 世界<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    # the training layout: the same prefix followed by the placeholders
    chat = [{"role": "user", "content": "Hello, 世界"}, {"role": "assistant", "content": SPEECH_TOKEN * 3}]
    full = tok.apply_chat_template(chat, tokenize=True, enable_thinking=False)
    full = full["input_ids"] if hasattr(full, "keys") else full
    assert list(full[: len(ids)]) == ids
    assert list(full[len(ids): len(ids) + 3]) == [tok.convert_tokens_to_ids(SPEECH_TOKEN)] * 3


def test_tokenizer_folder_round_trip(tmp_path):
    tok = build_char_tokenizer()
    tok.save_pretrained(tmp_path / "tok")
    loaded = load_tokenizer(str(tmp_path / "tok"))
    assert ChatLayout(loaded).prompt_ids("abc") == ChatLayout(tok).prompt_ids("abc")
    from engine.hub import WeightsNotFoundError

    with pytest.raises(WeightsNotFoundError, match="model.tokenizer .*nowhere: no such file or folder"):
        load_tokenizer(str(tmp_path / "nowhere"))


def write_clip(root, name, frames, motion=True, text="hi", speech_frames=None):
    rng = np.random.default_rng(frames)
    (root / "f").mkdir(exist_ok=True)
    np.save(root / "f" / f"{name}_s.npy", rng.standard_normal((speech_frames or frames, 32)).astype(np.float16))
    np.save(root / "f" / f"{name}_k.npy", rng.standard_normal(256).astype(np.float32))
    entry = {"id": name, "num_frames": frames, "text": text, "speech": f"f/{name}_s.npy", "speaker": f"f/{name}_k.npy"}
    if motion:
        np.save(root / "f" / f"{name}_m.npy", rng.standard_normal((frames, 40)).astype(np.float32))
        entry["motion"] = f"f/{name}_m.npy"
    return entry


def write_manifest(path, entries):
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return str(path)


def test_dataset_and_collate(tmp_path):
    av = write_manifest(tmp_path / "av.jsonl", [write_clip(tmp_path, "a", 23, speech_frames=24, text="a longer text"),
                                                write_clip(tmp_path, "b", 800, text="long")])
    tts = write_manifest(tmp_path / "tts.jsonl", [write_clip(tmp_path, "c", 10, motion=False)])
    cfg = TalkerDataConfig(manifests=[av], tts_manifests=[tts], balance=True)
    ds = TalkerDataset(cfg, "char", patch_size=4)
    assert len(ds) == 4 and ds.lengths == [23, 750, 10, 10]  # TTS side repeated to balance, 30-s cap
    a, b, c = ds[0], ds[1], ds[2]
    assert a["speech"].shape == (23, 32) and a["motion"].shape == (20, 40) and a["ends"]
    assert b["speech"].shape == (750, 32) and b["motion"].shape == (748, 40) and not b["ends"]  # cut: no stop
    assert c["motion"] is None and c["speech"].dtype == torch.float32
    batch = TalkerCollator(4)([a, c])
    assert batch["speech"].shape == (2, 24, 32) and batch["motion"].shape == (2, 24, 40)
    assert batch["n_slots"].tolist() == [6, 3] and batch["is_av"].tolist() == [True, False]
    assert batch["text_mask"][:, -1].all() and not batch["text_mask"][1, 0]  # left padding
    assert batch["patch_rows"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert batch["av_patch_pos"].tolist() == [0, 1, 2, 3, 4, 5]
    assert batch["motion_rows"].tolist() == [0, 1, 2, 3, 4]


def test_bad_features_name_the_file(tmp_path):
    entry = write_clip(tmp_path, "a", 20)
    np.save(tmp_path / "f" / "a_m.npy", np.zeros((20, 39), np.float32))
    ds = TalkerDataset(TalkerDataConfig(manifests=[write_manifest(tmp_path / "m.jsonl", [entry])]), "char", 4)
    with pytest.raises(TalkerDataError, match=r"a_m.npy: expected motion of shape \(T, 40\)"):
        ds[0]
    bad = np.zeros((20, 40), np.float32)
    bad[3, 2] = np.nan
    np.save(tmp_path / "f" / "a_m.npy", bad)
    with pytest.raises(TalkerDataError, match="a_m.npy: motion features contain NaN"):
        ds[0]
    (tmp_path / "f" / "a_s.npy").write_bytes(b"not numpy")
    with pytest.raises(TalkerDataError, match="a_s.npy: cannot read speech"):
        ds[0]
    short = write_manifest(tmp_path / "s.jsonl", [write_clip(tmp_path, "s", 5)])
    with pytest.raises(TalkerDataError, match="no clip of at least 8 frames"):
        TalkerDataset(TalkerDataConfig(manifests=[short]), "char", 4)


def test_whole_patches_end_every_clip_on_a_full_patch(tmp_path):
    """With whole_patches the last patch is full, as at generation; without (released) it is partly empty."""
    av = write_manifest(tmp_path / "av.jsonl", [write_clip(tmp_path, "a", 23), write_clip(tmp_path, "b", 26)])
    released = TalkerDataset(TalkerDataConfig(manifests=[av]), "char", 4)
    whole = TalkerDataset(TalkerDataConfig(manifests=[av], whole_patches=True), "char", 4)
    assert [len(released[i]["speech"]) for i in range(2)] == [23, 26]
    assert [len(whole[i]["speech"]) for i in range(2)] == [20, 24]
    assert [len(whole[i]["motion"]) for i in range(2)] == [20, 24] and whole[0]["ends"]
    batch = TalkerCollator(4)([whole[0], whole[1]])
    assert batch["n_slots"].tolist() == [5, 6]
    np.testing.assert_array_equal(whole[1]["speech"], released[1]["speech"][:24])


def test_other_clip_speaker_reference_draws_the_same_speakers_other_clips(tmp_path):
    entries = [{**write_clip(tmp_path, f"{s}{i}", 12 + i + 3 * k, motion=False), "speaker_id": s}
               for k, s in enumerate("xy") for i in range(3)]
    path = write_manifest(tmp_path / "m.jsonl", entries)
    own = {e["id"]: np.load(tmp_path / e["speaker"]) for e in entries}
    speaker_of = {e["id"]: e["speaker_id"] for e in entries}
    ds = TalkerDataset(TalkerDataConfig(tts_manifests=[path], speaker_reference="other_clip"), "char", 4)
    torch.manual_seed(0)
    drawn = {}
    for _ in range(20):
        for i in range(len(ds)):
            item = ds[i]
            source = next(k for k, v in own.items() if np.array_equal(v, item["speaker"].numpy()))
            assert source != item["id"] and speaker_of[source] == speaker_of[item["id"]]
            drawn.setdefault(item["id"], set()).add(source)
    assert all(len(v) == 2 for v in drawn.values())  # both other clips of the speaker come up
    val = TalkerDataset(TalkerDataConfig(tts_manifests=[path], speaker_reference="other_clip"), "char", 4,
                        train=False)
    assert all(np.array_equal(val[0]["speaker"].numpy(), own["x1"]) for _ in range(3))  # fixed: the next clip
    # the joint recipe's layout: the same clips as audio-video and as TTS samples; never the clip's own
    av = write_manifest(tmp_path / "av.jsonl", [{**write_clip(tmp_path, f"v{i}", 12 + i), "speaker_id": "z"}
                                                for i in range(2)])
    joint = TalkerDataset(TalkerDataConfig(manifests=[av], tts_manifests=[av], speaker_reference="other_clip"),
                          "char", 4)
    assert len(joint) == 4 and joint.partners == [[1], [0], [1], [0]]
    same = TalkerDataset(TalkerDataConfig(tts_manifests=[path]), "char", 4)
    assert np.array_equal(same[0]["speaker"].numpy(), own[same[0]["id"]])


def test_other_clip_speaker_reference_needs_speakers_with_two_clips(tmp_path):
    lonely = write_manifest(tmp_path / "a.jsonl", [{**write_clip(tmp_path, "a", 12), "speaker_id": "s1"},
                                                   {**write_clip(tmp_path, "b", 13), "speaker_id": "s2"},
                                                   {**write_clip(tmp_path, "c", 14), "speaker_id": "s2"}])
    with pytest.raises(TalkerDataError, match=r"a.jsonl: speaker_reference=other_clip needs two clips per "
                                              r"speaker; 1 speaker\(s\) have one \(s1\)"):
        TalkerDataset(TalkerDataConfig(manifests=[lonely], speaker_reference="other_clip"), "char", 4)
    unnamed = write_manifest(tmp_path / "b.jsonl", [write_clip(tmp_path, "d", 12)])
    with pytest.raises(TalkerDataError, match="b.jsonl: speaker_reference=other_clip needs a speaker_id on every "
                                              "line; 'd' has none"):
        TalkerDataset(TalkerDataConfig(manifests=[unnamed], speaker_reference="other_clip"), "char", 4)
    with pytest.raises(TalkerDataError, match="data.speaker_reference must be one of"):
        TalkerDataset(TalkerDataConfig(manifests=[unnamed], speaker_reference="speaker_mean"), "char", 4)


@pytest.mark.parametrize("joint", [False, True])
def test_a_tts_only_training_validates_its_clips_as_tts(tmp_path, joint):
    """Stage 1 learns no motion: its held-out audio-video clips are validated as TTS (speech and stop in the
    loss, a TTS sample), while the joint stage validates them with their motion."""
    val = write_manifest(tmp_path / "val.jsonl", [write_clip(tmp_path, "v", 20)])
    train = write_manifest(tmp_path / "train.jsonl", [write_clip(tmp_path, "t", 20)])
    data = ["data.synthetic_clips=0", f"data.tts_manifests=[{train}]", f"data.val_manifest={val}"]
    task = instantiate(compose("experiment=talker_tiny", *data, *([f"data.manifests=[{train}]"] if joint else [])).task)
    item = task.val_dataset()[0]
    assert (item["motion"] is not None) == joint
    batch = task.collate([item])
    assert batch["is_av"].tolist() == [joint]
