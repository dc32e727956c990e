"""talker_t2av.generate, the inference API: every mode in one call, requests of one mode batched, a request
that cannot be read reported while the others go on, outputs decoded and rendered in memory."""

import numpy as np
import pytest
import torch

from engine.errors import ItemFailure
from engine.media import write_video, write_wav
from talker_t2av.conditioning import RequestError
from talker_t2av.generate import Codecs, TalkerGenerator, TalkerOutput, TalkerRequest

TINY_CODECS = Codecs(vae_config="whisperx_vae_tiny", speaker_config="speaker_wavlm_ecapa_tiny",
                     liax_config="lia_x_tiny")


@pytest.fixture(scope="module")
def talker(tmp_path_factory, tiny_runs):
    root = tmp_path_factory.mktemp("talker_api")
    t = np.arange(48000, dtype=np.float32) / 24000
    write_wav(root / "voice.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 24000)
    write_video(root / "face.mp4", (np.random.default_rng(0).random((40, 64, 64, 3)) * 255).astype(np.uint8), 25)
    return TalkerGenerator.from_checkpoint(tiny_runs["talker"], device="cpu", codecs=TINY_CODECS), root


def test_the_modes_in_one_call_each_output_decoded_and_rendered(talker):
    gen, root = talker
    voice, face = str(root / "voice.wav"), str(root / "face.mp4")
    requests = [TalkerRequest(mode="tts", text="alpha", ref_audio=voice, id="tts"),
                TalkerRequest(mode="t2av", text="bravo", ref_audio=voice, ref_video=face, id="t2av"),
                TalkerRequest(mode="a2v", audio=voice, ref_video=face, id="a2v")]
    outputs = gen.generate(requests, max_seconds=1.0, seed=0)
    assert [o.request.id for o in outputs] == ["tts", "t2av", "a2v"]
    hop = gen.codecs.vae.hop_length
    for out in outputs:
        frames = len(out.speech)
        if out.request.mode != "a2v":  # a2v keeps the given speech itself
            assert len(out.waveform) == frames * hop and np.isfinite(out.waveform).all()
        assert (out.frames is None) == (out.request.mode == "tts")
        if out.frames is not None:
            assert out.frames.dtype == np.uint8 and len(out.frames) == len(out.motion) == frames
    assert len(outputs[2].waveform) == 24000  # a2v: max_seconds of the given speech


def test_a_request_that_fails_is_reported_and_the_others_go_on(talker, tmp_path):
    gen, root = talker
    voice = str(root / "voice.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    requests = [TalkerRequest(mode="tts", text="one", ref_audio=voice, id="one"),
                TalkerRequest(mode="tts", text="two", ref_audio=str(tmp_path / "empty.wav"), id="broken"),
                TalkerRequest(mode="tts", text="three", ref_audio=voice, id="three"),
                TalkerRequest(mode="tts", text="four", ref_audio=voice, prefix_seconds=5.0, id="too_long")]
    results = list(gen.generate_each(requests, max_seconds=1.0, batch_size=4))
    failures = {r.id: r.message for r in results if isinstance(r, ItemFailure)}
    assert set(failures) == {"broken", "too_long"}
    assert "empty.wav: file is empty" in failures["broken"]
    assert "voice.wav: lasts 2.00 s, less than the" in failures["too_long"]  # the prefix cannot be cut from it
    assert sorted(r.request.id for r in results if isinstance(r, TalkerOutput)) == ["one", "three"]
    with pytest.raises(RequestError, match="mode v2a needs ref_audio"):  # the API names its own fields
        gen.generate(TalkerRequest(mode="v2a", video=str(root / "face.mp4")))


def test_a_batch_equals_its_requests_alone_on_the_same_noise(talker):
    gen, root = talker
    voice = str(root / "voice.wav")
    requests = [TalkerRequest(mode="tts", text=text, ref_audio=voice, id=text) for text in ("alpha", "bravo echo")]
    together = gen.generate(requests, max_seconds=1.0, generator=torch.Generator().manual_seed(0))
    alone = gen.generate(requests[:1], max_seconds=1.0, generator=torch.Generator().manual_seed(0))
    # the first patch's noise is the first request's rows of the first draw in both runs (later draws are
    # wider in the batch): with its prompt left-padded beside a longer one, the request gets the same patch
    torch.testing.assert_close(together[0].speech[:4], alone[0].speech[:4], atol=1e-4, rtol=1e-4)


def test_a_prefix_from_another_sentence_is_read_before_the_text(talker):
    """prefix_text goes in front of the text, as in training (the text is the whole clip's): the request is the
    one that carries the prefix's words in its text, and the output after the prefix says only ``text``."""
    gen, root = talker
    voice, face = str(root / "voice.wav"), str(root / "face.mp4")
    common = dict(mode="t2av", ref_audio=voice, ref_video=face, prefix_seconds=0.32)
    split = TalkerRequest(text="bravo echo", prefix_text=" alpha ", **common)
    joined = TalkerRequest(text="alpha bravo echo", **common)
    unprefixed = TalkerRequest(text="bravo echo", **common)
    outs = [gen.generate(r, max_seconds=1.0, generator=torch.Generator().manual_seed(0))
            for r in (split, joined, unprefixed)]
    torch.testing.assert_close(outs[0].speech, outs[1].speech)
    torch.testing.assert_close(outs[0].motion, outs[1].motion)
    assert outs[0].prefix_frames == 8
    assert not torch.equal(outs[0].speech[8:12], outs[2].speech[8:12])  # the prefix's words are read
    with pytest.raises(RequestError, match="prefix_text is what a prefix says, but there is no prefix"):
        gen.generate(TalkerRequest(mode="tts", text="x", prefix_text="alpha", ref_audio=voice))


def test_a_motion_exactly_as_long_as_max_seconds_written_in_decimals_is_taken_whole(talker, tmp_path):
    """1.16 * 25 is 28.999999999999996 in floating point: the 29-frame motion of a 1.16-s cap is still
    within it (not refused as too long, nor cut by a frame)."""
    gen, root = talker
    np.save(tmp_path / "motion.npy", np.zeros((29, gen.model.cfg.motion_dim), np.float32))
    request = TalkerRequest(mode="v2a", text="alpha", motion=str(tmp_path / "motion.npy"),
                            ref_audio=str(root / "voice.wav"))
    out = gen.generate(request, max_seconds=1.16, seed=0, render=False)
    assert len(out.motion) == 29
