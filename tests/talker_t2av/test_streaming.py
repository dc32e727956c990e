"""Streamed Talker output: the sampler's per-patch hook and generate_each's per-request callback hand out
exactly the patches the final result holds, in order, only while a request is still generating; the
streamed speech decodes (avcodecs.streaming) to the final waveform."""

import functools

import numpy as np
import pytest
import torch

from avcodecs.streaming import StreamingDecoder
from engine.media import write_wav
from talker_t2av.cfm import CFMSamplerConfig, GenerationConfig, TalkerConditions, generate
from talker_t2av.generate import Codecs, TalkerGenerator, TalkerOutput, TalkerRequest
from tests.talker_t2av.helpers import layout, left_pad, tiny_model

DETERMINISTIC = CFMSamplerConfig(temperature=0.0)
TINY_CODECS = Codecs(vae_config="whisperx_vae_tiny", speaker_config="speaker_wavlm_ecapa_tiny",
                     liax_config="lia_x_tiny", device="cpu")


@functools.cache
def stopping_model(stop_bias: float = 3.5, **overrides):
    m = tiny_model(seed=3, **overrides).eval()
    with torch.no_grad():  # a stop head that fires after a few patches, at different steps per sample
        m.head_stop.proj.bias.add_(stop_bias)
    return m


def conditions() -> TalkerConditions:
    g = torch.Generator().manual_seed(0)
    ids, mask = left_pad([torch.tensor(layout().prompt_ids(t)) for t in ("hello", "a much longer prompt", "mid")])
    cond = TalkerConditions(ids, mask, torch.randn(3, 256, generator=g), torch.randn(3, 40, generator=g))
    cond.prefix_speech, cond.prefix_motion = torch.randn(3, 12, 32, generator=g), torch.randn(3, 12, 40, generator=g)
    cond.prefix_frames = torch.tensor([8, 0, 12])
    return cond


@pytest.mark.parametrize("mode", ["t2av", "tts"])  # a2v: in the generate_each test
def test_hook_patches_are_the_final_output(mode):
    delay = 1  # the motion one patch behind: step k makes speech patch k and motion patch k - 1
    model = stopping_model(stop_bias=3.0, delay=delay)  # one row stops on its stop head, two at their budget
    calls = []
    cfg = GenerationConfig(mode=mode, speech=DETERMINISTIC, motion=DETERMINISTIC, max_patches=10, min_patches=2)
    out = generate(model, conditions(), cfg,
                   on_patch=lambda k, s, m, s_live, m_live: calls.append(
                       (k, s.clone(), None if m is None else m.clone(), s_live.clone(), m_live.clone())))
    assert [c[0] for c in calls] == list(range(len(calls)))  # every patch once, in order
    assert len(set(out.patches.tolist())) > 1  # the rows stop at different patches
    for b in range(3):
        speech_at = [k for k, _, _, live, _ in calls if live[b]]
        assert speech_at == list(range(int(out.patches[b])))  # live exactly while the row speaks
        speech = torch.cat([s[b] for _, s, _, live, _ in calls if live[b]])
        torch.testing.assert_close(speech, out.speech[b][out.prefix_frames[b]:], rtol=0, atol=0)
        if mode == "tts":
            assert all(m is None for _, _, m, _, _ in calls)
            continue
        # the motion's patches come a step later, the last one after the speech has stopped
        motion_at = [k for k, _, _, _, live in calls if live[b]]
        assert motion_at == [k + delay for k in speech_at]
        motion = torch.cat([m[b] for _, _, m, _, live in calls if live[b]])
        torch.testing.assert_close(motion, out.motion[b][out.prefix_frames[b]:], rtol=0, atol=0)


@pytest.fixture(scope="module")
def talker(tmp_path_factory):
    root = tmp_path_factory.mktemp("talker_stream")
    t = np.arange(48000, dtype=np.float32) / 24000
    write_wav(root / "voice.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 24000)
    write_wav(root / "short.wav", 0.3 * np.sin(2 * np.pi * 330 * t[:12000]), 24000)  # 0.5 s: 12.5 frames
    np.save(root / "face.npy", np.random.default_rng(0).standard_normal((8, 40)).astype(np.float32))
    generator = TalkerGenerator(stopping_model(speaker_dim=16), layout(), DETERMINISTIC, TINY_CODECS,
                                torch.device("cpu"))
    return generator, root


def test_each_request_gets_its_own_patches_in_order_while_live(talker):
    gen, root = talker
    voice = str(root / "voice.wav")
    # the second request's 0.32-s prefix uses up two patches of its 1-s budget: it stops two patches earlier;
    # a2v streams the given speech, whose last patch is cut to its length (13 frames: 3 patches and 1 frame)
    # and a consumer that fails on its first patch (a client gone) loses its stream, not the batch
    requests = [TalkerRequest(mode="tts", text="alpha", ref_audio=voice, id="long"),
                TalkerRequest(mode="tts", text="bravo", ref_audio=voice, prefix_seconds=0.32, id="short"),
                TalkerRequest(mode="tts", text="charlie", ref_audio=voice, id="gone"),
                TalkerRequest(mode="a2v", audio=str(root / "short.wav"), ref_motion=str(root / "face.npy"), id="a2v")]
    calls = []

    def on_patch(request, speech, motion):
        calls.append((request, speech, motion))
        if request.id == "gone":
            raise ConnectionResetError("client disconnected")

    outputs = list(gen.generate_each(requests, max_seconds=1.0, render=False, on_patch=on_patch))
    assert [o.request.id for o in outputs if isinstance(o, TalkerOutput)] == ["long", "short", "gone", "a2v"]
    assert [r.id for r, _, _ in calls].count("gone") == 1
    for out in outputs[:2] + outputs[3:]:
        mine = [(s, m) for r, s, m in calls if r is out.request]
        assert all(s.dtype == torch.float32 and s.device.type == "cpu" and s.shape[1] == 32 for s, _ in mine)
        generated = out.speech[out.prefix_frames:]
        assert len(mine) == -(-len(generated) // 4) > 0  # one call per generated patch, none after it stopped
        torch.testing.assert_close(torch.cat([s for s, _ in mine]), generated, rtol=0, atol=0)
        if out.request.mode == "a2v":
            assert len(generated) == 13
            torch.testing.assert_close(torch.cat([m for _, m in mine]), out.motion, rtol=0, atol=0)
            continue
        assert all(m is None for _, m in mine)  # tts
        # the streamed speech decodes to the request's final waveform (the prefix decoded first)
        decoder = StreamingDecoder(gen.codecs.vae)
        audio = np.concatenate([decoder.push(out.speech[: out.prefix_frames])] +
                               [decoder.push(s) for s, _ in mine] + [decoder.flush()])
        assert np.abs(audio - out.waveform).max() < 1e-5
    lengths = {o.request.id: len(o.speech) - o.prefix_frames for o in outputs}
    assert lengths["short"] < lengths["long"]
    # patch by patch, both tts requests while both live, then the long one alone; a2v's batch after them
    order = [r.id for r, _, _ in calls if r.id != "gone"]
    last_short = max(i for i, rid in enumerate(order) if rid == "short")
    assert order[: last_short + 1] == ["long", "short"] * (last_short // 2 + 1)
    assert set(order[last_short + 1 : order.index("a2v")]) == {"long"}


def test_a_delayed_motion_streams_its_last_patch_after_the_speech(talker):
    """delay 1, a2v: each step passes the given speech's patch k and the motion's patch k - 1, so the
    first call has no motion and the last no speech; both concatenate to the output, cut to its 13 frames."""
    gen, root = talker
    delayed = TalkerGenerator(stopping_model(speaker_dim=16, delay=1), layout(), DETERMINISTIC, TINY_CODECS,
                              torch.device("cpu"))
    calls = []
    request = TalkerRequest(mode="a2v", audio=str(root / "short.wav"), ref_motion=str(root / "face.npy"), id="a2v")
    [out] = delayed.generate_each([request], max_seconds=1.0, render=False,
                                  on_patch=lambda r, s, m: calls.append((s, m)))
    assert len(calls) == 5 and calls[0][1] is None and calls[-1][0] is None  # 4 patches of 13 frames, 1 step late
    speech = torch.cat([s for s, _ in calls if s is not None])
    motion = torch.cat([m for _, m in calls if m is not None])
    assert len(out.speech) == len(out.motion) == 13
    torch.testing.assert_close(speech, out.speech, rtol=0, atol=0)
    torch.testing.assert_close(motion, out.motion, rtol=0, atol=0)
