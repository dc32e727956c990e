"""Chat layout of the text, the manifest dataset of precomputed features, and the collate function."""

import json

import numpy as np
import pytest
import torch

from talker_t2av.data import TalkerCollator, TalkerDataConfig, TalkerDataError, TalkerDataset
from talker_t2av.tokenizer import SPEECH_TOKEN, ChatLayout, build_char_tokenizer, load_tokenizer


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
