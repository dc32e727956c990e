"""Every bad request of issue 48 gets a 4xx whose one-line detail names the problem (with the client's file
name, never a path of ours); nothing is written outside the work folder, temporaries are gone afterwards, a
client that leaves frees its slot and the server stays up."""

import time

import httpx
import pytest

SPEECH = {"model": "talker", "input": "hello", "voice": "sine"}


def upload(serve_media, name: str, as_name: str | None = None):
    return {"file": (as_name or serve_media[name].name, serve_media[name].read_bytes(), "video/mp4")}


CASES = {  # name -> (method, path, request options from (media), status, text the detail holds)
    "not a video": ("/v1/video/speech", lambda m: {"files": upload(m, "garbage")}, 400,
                    "file: garbage.mp4: unreadable or corrupt media file"),
    "truncated mp4": ("/v1/video/speech", lambda m: {"files": upload(m, "truncated")}, 400, "file: truncated.mp4: "),
    "no face": ("/v1/video/speech", lambda m: {"files": upload(m, "noise"), "data": {"steps": "2"}}, 422,
                "noise.mp4: no face found in any of the 12 frames"),
    "clip over the limit": ("/v1/video/speech", lambda m: {"files": upload(m, "long")}, 413,
                            "file: long.mp4 lasts 4.0 s, longer than the server's limit of 3 s"),
    "upload over the limit": ("/v1/video/speech", lambda m: {"files": {"file": ("big.mp4", b"\0" * 600_000)}}, 413,
                              "request body over the server's limit of 0.5 MB"),
    "path in a file name": ("/v1/video/speech", lambda m: {"files": upload(m, "face", "../x.mp4")}, 400,
                            "file name '../x.mp4' contains a path"),
    "unknown sampler option": ("/v1/video/speech", lambda m: {"files": upload(m, "face"), "data": {"stepz": "2"}},
                               400, "unknown form field(s) stepz"),
    "bad sampler value": ("/v1/video/speech", lambda m: {"files": upload(m, "face"), "data": {"steps": "0"}}, 400,
                          "steps: must be a positive integer, got 0"),
    "json to an upload endpoint": ("/v1/video/speech", lambda m: {"json": {"file": "x"}}, 415,
                                   "expected Content-Type multipart/form-data"),
    "form to the json endpoint": ("/v1/audio/speech", lambda m: {"data": SPEECH}, 415,
                                  "expected Content-Type application/json"),
    "empty text": ("/v1/audio/speech", lambda m: {"json": {**SPEECH, "input": "  "}}, 400, "input is empty"),
    "over-long text": ("/v1/audio/speech", lambda m: {"json": {**SPEECH, "input": "a" * 201}}, 413,
                       "input has 201 characters; this server takes at most 200"),
    "unknown voice": ("/v1/audio/speech", lambda m: {"json": {**SPEECH, "voice": "alloy"}}, 400,
                      "unknown voice 'alloy'; registered: sine"),
    "unknown model": ("/v1/audio/speech", lambda m: {"json": {**SPEECH, "model": "tts-1"}}, 404,
                      "unknown model 'tts-1'"),
    "missing field": ("/v1/audio/speech", lambda m: {"json": {"model": "talker", "voice": "sine"}}, 400,
                      "input: Field required"),
    "unsupported format": ("/v1/audio/speech", lambda m: {"json": {**SPEECH, "response_format": "mp3"}}, 400,
                           "response_format 'mp3' is not supported"),
    "voice too short": ("/v1/voices", lambda m: {"data": {"name": "blip"}, "files": {
        "file": ("blip.wav", m["blip"].read_bytes())}}, 400, "file: lasts 0.10 s; a reference voice needs"),
    "voice name with a path": ("/v1/voices", lambda m: {"data": {"name": "../evil"}, "files": {
        "file": ("v.wav", m["voice"].read_bytes())}}, 400, "voice name '../evil'"),
    "talking head without a face": ("/v1/video/talking-head", lambda m: {"data": {"text": "hi", "voice": "sine"},
                                                                         "files": {"voice_file": ("v.wav", b"")}},
                                    400, "voice_file: v.wav is empty"),
    "talking head in tts mode": ("/v1/video/talking-head", lambda m: {"data": {"mode": "tts"}, "files": {
        "face": ("face.mp4", m["face"].read_bytes())}}, 400, "mode 'tts': one of t2av, a2v, v2a"),
    "prefix words without a prefix": ("/v1/video/talking-head", lambda m: {
        "data": {"text": "hi", "voice": "sine", "prefix_text": "bin blue"},
        "files": {"face": ("face.mp4", m["face"].read_bytes())}}, 400,
        "prefix_text is what a prefix says, but there is no prefix (prefix_seconds 0)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_request_is_a_4xx_with_one_line_naming_the_problem(server, serve_media, case):
    path, options, status, expected = CASES[case]
    with server.client() as client:
        answer = client.post(path, **options(serve_media))
        detail = answer.json()["detail"]
        assert answer.status_code == status, detail
        assert expected in detail and "\n" not in detail
        assert str(server.work_dir) not in detail  # the client's names, not our paths
        assert client.get("/health").status_code == 200
    assert not list((server.work_dir / "requests").iterdir())  # the request's temporaries are gone
    assert not (server.work_dir.parent / "x.mp4").exists() and not (server.work_dir / "x.mp4").exists()


def test_an_unknown_endpoint_and_a_wrong_method_are_one_line_too(server):
    with server.client() as client:
        assert client.get("/v1/nothing").json() == {"detail": "no endpoint GET /v1/nothing"}
        wrong_method = client.get("/v1/audio/speech")  # the web app's folder answers every other GET
        assert wrong_method.status_code in (404, 405) and "/v1/audio/speech" in wrong_method.json()["detail"]
        assert client.get("/v1/files/..%2F..%2Fetc%2Fpasswd").status_code == 404


def test_a_client_gone_before_its_batch_is_dropped_and_frees_its_slot(server):
    before = server.batching("talker")["requests"]
    with server.client() as client, pytest.raises(httpx.ReadTimeout):
        client.post("/v1/audio/speech", json=SPEECH, timeout=0.05)  # gone well inside the 300 ms batch window
    time.sleep(0.6)
    assert server.batching("talker")["requests"] == before  # no batch ran for it
    assert httpx.get(f"{server.url}/v1/models").json()["jobs"]["in_flight"] == 0


def test_a_stream_cancelled_midway_leaves_its_batch_going_on(server):
    """Two requests in one batch: the streamed one's client reads its first chunk and leaves; the other one gets
    its whole answer, the slots are free again and the server is fine."""
    import threading

    whole = {}

    def other():
        with server.client() as client:
            whole["answer"] = client.post("/v1/audio/speech", json={**SPEECH, "input": "the other one"})

    thread = threading.Thread(target=other)
    thread.start()
    with server.client() as client, client.stream("POST", "/v1/audio/speech", json={**SPEECH, "stream": True}) as s:
        assert s.status_code == 200
        next(s.iter_bytes())  # the first chunk, then the client leaves
    thread.join(30)
    assert whole["answer"].status_code == 200 and whole["answer"].headers["x-batch-size"] == "2"
    time.sleep(0.3)
    assert httpx.get(f"{server.url}/v1/models").json()["jobs"]["in_flight"] == 0
    assert not list((server.work_dir / "requests").iterdir())
