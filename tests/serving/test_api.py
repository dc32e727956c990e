"""The HTTP API against a real server on loopback (tests/serving/conftest.py): each endpoint answers what a
client relies on; requests sent together form one batch whose results equal the library's; a streamed answer
equals the whole one."""

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np
import soundfile as sf
import torch

from engine.media import read_video, write_video
from talker_t2av.generate import TalkerRequest

PCM_LSB = 1 / 32767
STREAM_BOUND = 2 * PCM_LSB  # the streaming decoder equals the whole decode up to float rounding: <= 2 LSB in pcm16


def speech(client, text="hello there", **fields):
    return client.post("/v1/audio/speech", json={"model": "talker", "input": text, "voice": "sine", **fields})


def pcm(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<i2").astype(np.float32) / 32767


def wav(data: bytes) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(io.BytesIO(data), dtype="int16")  # as pcm(): our 16-bit values over 32767
    return samples.astype(np.float32) / 32767, rate


def write_png(path, frame):
    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = frame.shape[1], frame.shape[0], "rgb24"
        out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


def test_health_and_models_say_what_is_loaded(server):
    with server.client() as client:
        assert client.get("/health").json()["status"] == "ok"
        models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert set(models) == {"hicodit", "talker"}
    assert models["talker"]["device"] == "cpu" and models["talker"]["voices"] == ["sine"]
    assert models["hicodit"]["batching"]["max_batch"] == 4
    assert models["talker"]["streams_patches"]  # Talker hands over each patch: streams are live


def test_speech_as_wav_and_as_pcm_with_its_rate_in_a_header(server):
    with server.client() as client:
        as_wav, as_pcm = speech(client), speech(client, response_format="pcm")
    assert as_wav.status_code == as_pcm.status_code == 200, (as_wav.text, as_pcm.text)
    samples, rate = wav(as_wav.content)
    assert rate == 24000 == int(as_pcm.headers["x-sample-rate"]) and as_pcm.headers["content-type"] == "audio/pcm"
    assert len(samples) == round(server.config.max_output_seconds * rate)  # the tiny model speaks to its limit
    np.testing.assert_allclose(pcm(as_pcm.content), samples, atol=1.5 * PCM_LSB)  # 1 LSB: rounding


def test_streamed_speech_equals_the_whole_answer(server):
    with server.client() as client:
        whole = pcm(speech(client, response_format="pcm").content)
        with client.stream("POST", "/v1/audio/speech", json={"model": "talker", "input": "hello there",
                                                             "voice": "sine", "response_format": "pcm",
                                                             "stream": True}) as streamed:
            assert streamed.status_code == 200 and streamed.headers["transfer-encoding"] == "chunked"
            body = b"".join(streamed.iter_bytes())
        with client.stream("POST", "/v1/audio/speech", json={"model": "talker", "input": "hello there",
                                                             "voice": "sine", "stream": True}) as as_wav:
            wav_body = b"".join(as_wav.iter_bytes())
    assert len(pcm(body)) == len(whole)
    assert np.abs(pcm(body) - whole).max() <= STREAM_BOUND  # alone in its batch each time: the same noise
    assert wav_body[:4] == b"RIFF" and pcm(wav_body[44:]).shape == whole.shape  # a streamed wav: header, then pcm


def test_requests_sent_together_form_one_batch_equal_to_the_library_on_that_batch(server):
    texts = ["alpha", "bravo charlie", "delta echo foxtrot"]
    with server.client() as client, ThreadPoolExecutor(len(texts)) as pool:
        answers = list(pool.map(lambda text: speech(client, text, response_format="pcm"), texts))
    assert all(a.status_code == 200 for a in answers)
    assert {a.headers["x-batch-size"] for a in answers} == {"3"}
    order = sorted(range(len(texts)), key=lambda i: int(answers[i].headers["x-batch-index"]))
    voice = str(server.talker and server.app.state.server.talker.voices["sine"])
    requests = [TalkerRequest(mode="tts", text=texts[i], ref_audio=voice, id=str(i)) for i in order]
    library = server.talker.generate(requests, max_seconds=server.config.max_output_seconds, batch_size=3,
                                     generator=torch.Generator().manual_seed(server.config.seed))
    for i, output in zip(order, library):
        np.testing.assert_allclose(pcm(answers[i].content), output.waveform, atol=PCM_LSB)


def test_a_voice_uploaded_once_is_used_by_name(server, serve_media):
    with server.client() as client:
        added = client.post("/v1/voices", data={"name": "tone"},
                            files={"file": ("my voice.wav", serve_media["voice"].read_bytes(), "audio/wav")})
        assert added.status_code == 201, added.text
        assert added.json() == {"name": "tone", "seconds": 1.0}
        assert "tone" in client.get("/v1/voices").json()["voices"]
        assert speech(client, voice="tone").status_code == 200
    assert (server.work_dir / "voices" / "tone.wav").is_file()


def test_silent_clip_to_speech_as_wav_and_mp4_with_the_mouth_crops(server, serve_media):
    with server.client() as client:
        as_mp4 = client.post("/v1/video/speech", data={"format": "mp4", "steps": "2"},
                             files={"file": ("face.mp4", serve_media["face"].read_bytes(), "video/mp4")})
        assert as_mp4.status_code == 200, as_mp4.text
        crops = client.get(as_mp4.headers["x-mouth-crops"])
    source = read_video(serve_media["face"], fps=25)
    (server.work_dir / "out.mp4").write_bytes(as_mp4.content)
    clip = read_video(server.work_dir / "out.mp4", fps=25, audio_sample_rate=24000)
    assert len(clip.frames) == len(source.frames) and abs(len(clip.audio) - len(source.frames) * 960) < 2048
    assert crops.status_code == 200 and crops.headers["content-type"] == "video/mp4"


def test_clips_batched_together_equal_each_clip_alone(server, serve_media, tmp_path):
    frames = read_video(serve_media["face"], fps=25).frames
    write_video(tmp_path / "short.mp4", frames[:20], 25)
    clips = [serve_media["face"].read_bytes(), (tmp_path / "short.mp4").read_bytes()]
    greedy = {"steps": "2", "greedy": "true"}  # greedy: each clip's tokens do not depend on its batch

    def voice(client, data):
        return client.post("/v1/video/speech", data=greedy, files={"file": ("clip.mp4", data, "video/mp4")})

    with server.client() as client, ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda data: voice(client, data), clips))
        alone = voice(client, clips[1])
    assert [t.status_code for t in together] == [200, 200] and {t.headers["x-batch-size"] for t in together} == {"2"}
    assert alone.headers["x-batch-size"] == "1"
    np.testing.assert_allclose(wav(together[1].content)[0], wav(alone.content)[0], atol=PCM_LSB)
    assert len(wav(together[0].content)[0]) > len(wav(alone.content)[0])  # the longer clip, longer speech


def test_talking_head_from_a_clip_or_an_image_and_from_speech(server, serve_media, tmp_path):
    face = serve_media["face"].read_bytes()
    image = write_png(tmp_path / "face.png", read_video(serve_media["face"], fps=25, max_frames=1).frames[0])
    with server.client() as client:
        t2av = client.post("/v1/video/talking-head", data={"text": "hi", "voice": "sine"},
                           files={"face": ("face.mp4", face, "video/mp4")})
        still = client.post("/v1/video/talking-head", data={"text": "hi", "voice": "sine"},
                            files={"face": ("face.png", image.read_bytes(), "image/png")})
        a2v = client.post("/v1/video/talking-head", data={"mode": "a2v"},
                          files={"face": ("face.mp4", face, "video/mp4"),
                                 "audio": ("speech.wav", serve_media["voice"].read_bytes(), "audio/wav")})
    for answer in (t2av, still, a2v):
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "video/mp4"
        path = tmp_path / "answer.mp4"
        path.write_bytes(answer.content)
        clip = read_video(path, fps=25, audio_sample_rate=24000)
        assert len(clip.frames) == 16 and clip.audio is not None  # 0.64 s at 25 fps, with its speech


def stream_talking_head(server, serve_media, tmp_path, text="hi"):
    """A streamed ``/v1/video/talking-head``, checked to be the library's answer to the same request alone (the
    server's seed): motion to 1e-4, audio to the streaming bound. -> (event kinds, that answer, mp4 frames)."""
    form = {"text": text, "voice": "sine", "stream": "true"}
    with server.client() as client:
        with client.stream("POST", "/v1/video/talking-head", data=form,
                           files={"face": ("face.mp4", serve_media["face"].read_bytes(), "video/mp4")}) as streamed:
            assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/event-stream")
            events = [(block.split("\n")[0].removeprefix("event: "), json.loads(block.split("\n")[1][6:]))
                      for block in streamed.read().decode().strip().split("\n\n")]
        final = client.get(events[-1][1]["url"])
    assert final.status_code == 200
    audio = np.concatenate([pcm(base64.b64decode(data["pcm16"])) for kind, data in events if kind == "audio"])
    motion = np.concatenate([data["frames"] for kind, data in events if kind == "motion"])
    (tmp_path / "final.mp4").write_bytes(final.content)
    voice = str(server.app.state.server.talker.voices["sine"])
    alone = server.talker.generate(TalkerRequest(mode="t2av", text=text, ref_audio=voice,
                                                 ref_video=str(serve_media["face"])),
                                   max_seconds=server.config.max_output_seconds, seed=server.config.seed)
    assert motion.shape == tuple(alone.motion.shape)
    np.testing.assert_allclose(motion, alone.motion.numpy(), atol=1e-4)
    assert len(audio) == len(alone.waveform) and np.abs(audio - alone.waveform).max() <= STREAM_BOUND
    return [kind for kind, _ in events], alone, len(read_video(tmp_path / "final.mp4", fps=25).frames)


def test_streamed_talking_head_sends_audio_and_motion_then_the_mp4(server, serve_media, tmp_path):
    kinds, alone, frames = stream_talking_head(server, serve_media, tmp_path)
    assert kinds[-1] == "done" and kinds.count("audio") > 1 and kinds.count("motion") == 4  # per patch
    assert frames == 16 and tuple(alone.motion.shape) == (16, 40)


def test_a_delayed_layout_streams_its_motion_a_patch_late_and_whole(delayed_server, serve_media, tmp_path):
    """motion one patch behind the speech: the first step makes speech alone and the last (after the speech's
    end) motion alone, and the stream is still the library's answer, every motion patch once, the mp4 as
    long as the speech."""
    kinds, alone, frames = stream_talking_head(delayed_server, serve_media, tmp_path)
    assert kinds[-1] == "done" and kinds.count("motion") == len(alone.motion) // 4 and frames == len(alone.motion)
