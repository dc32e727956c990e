"""``infer.py talker --text ... --ref-audio ... --ref-video ... --out ...`` with no weight paths: the
Talker weights, the WhisperX-VAE, the speaker encoder and LIA-X all resolve by their registry names
through a Hugging Face cache laid out as the library lays it out (tiny random weights under the
released file names), offline, with sockets blocked."""

import socket

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

import infer
from engine.configs import build_codec, codec_config
from engine.media import write_video, write_wav
from tests.avcodecs.test_whisperx_vae_checkpoint import write_lightning_checkpoint
from tests.talker_t2av.helpers import tiny_config, tiny_model

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"


def cached(hf_home, repo: str, path: str):
    """The snapshot path of ``repo``'s ``path`` in a hub cache (refs/main -> the commit)."""
    root = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(COMMIT)
    target = root / "snapshots" / COMMIT / path
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    hf = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(hf))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError("the test touched the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    torch.manual_seed(0)
    # Talker-T2AV: weights, backbone config and tokenizer in the released folder
    model = tiny_model(seed=1, speaker_dim=16)
    folder = cached(hf, "HKUSTAudio/Talker-T2AV", "talker-t2av/model.safetensors").parent
    save_file({k: v.contiguous() for k, v in model.state_dict().items() if k != "llm.lm_head.weight"},
              str(folder / "model.safetensors"))
    model.llm.config.save_pretrained(folder)
    from talker_t2av.tokenizer import build_char_tokenizer

    build_char_tokenizer().save_pretrained(folder)
    # the codecs at tiny sizes, under their released names; the size presets name the registry entries
    presets = {}
    for preset, name in (("whisperx_vae_tiny", "whisperx-vae"), ("speaker_wavlm_ecapa_tiny", "wavlm-ecapa"),
                         ("lia_x_tiny", "lia-x")):
        node = codec_config(preset)
        codec = build_codec(node)
        node.weights = name
        OmegaConf.save(node, tmp_path / f"{preset}.yaml")
        presets[preset] = tmp_path / f"{preset}.yaml"
        if name == "whisperx-vae":
            write_lightning_checkpoint(cached(hf, "HKUSTAudio/Talker-T2AV", "whisperx-vae/model.ckpt"), codec)
        elif name == "lia-x":
            torch.save(codec.generator.state_dict(), cached(hf, "YaohuiW/LIA-X", "lia-x.pt"))
        else:  # fetched by hand: where the registry entry says it goes
            from avcodecs.speaker.keymap import model_to_checkpoint

            target = hf / "avspeech" / "wavlm-ecapa" / "wavlm_large_finetune.pth"
            target.parent.mkdir(parents=True)
            torch.save({"model": {model_to_checkpoint(k): v for k, v in codec.state_dict().items()}}, target)
    # the released Talker layout at tiny size (the paper layout would not fit these weights)
    import talker_t2av.checkpoints

    monkeypatch.setattr(talker_t2av.checkpoints, "paper_config", lambda **kw: tiny_config(speaker_dim=16, **kw))
    return presets


def test_talker_runs_with_no_weight_paths(offline_cache, tmp_path):
    t = np.arange(24000, dtype=np.float32) / 24000
    write_wav(tmp_path / "voice.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 24000)
    frames = (np.random.default_rng(0).random((10, 64, 64, 3)) * 255).astype(np.uint8)
    write_video(tmp_path / "face.mp4", frames, 25)
    out = tmp_path / "out" / "hello"
    sizes = ["--vae-config", str(offline_cache["whisperx_vae_tiny"]),
             "--speaker-config", str(offline_cache["speaker_wavlm_ecapa_tiny"]),
             "--liax-config", str(offline_cache["lia_x_tiny"])]
    assert infer.main(["talker", "--text", "Hello there.", "--ref-audio", str(tmp_path / "voice.wav"),
                       "--ref-video", str(tmp_path / "face.mp4"), "--out", str(out), "--max-seconds", "0.5",
                       "--quiet", *sizes]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["hello.mp4", "hello.npz", "hello.wav"]
