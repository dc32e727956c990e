"""Weights by name: the registry resolves through a Hugging Face cache laid out as the library lays it
out, offline, with sockets blocked; a URL file is checked against its sha256; a local path wins."""

import hashlib
import importlib.util
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from engine import hub

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a test touched the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty HF_HOME with the hub offline; ``put(repo, path, data)`` adds a cached file."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def put(repo: str, path: str, data: bytes = b"weights") -> None:
        root = tmp_path / "hf" / "hub" / f"models--{repo.replace('/', '--')}"
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / "main").write_text(COMMIT)
        target = root / "snapshots" / COMMIT / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    return put


def test_registry_names_and_hf_specs_resolve_in_the_cache(cache, tmp_path):
    cache("YaohuiW/LIA-X", "lia-x.pt")
    cache("amphion/MaskGCT", "acoustic_codec/model.safetensors")
    cache("amphion/MaskGCT", "acoustic_codec/model_1.safetensors")
    snapshot = tmp_path / "hf" / "hub" / "models--amphion--MaskGCT" / "snapshots" / COMMIT
    assert hub.resolve_weights("lia-x").read_bytes() == b"weights"
    assert hub.resolve_weights("maskgct-codec") == snapshot / "acoustic_codec"  # a folder entry
    assert hub.resolve_weights("hf://amphion/MaskGCT/acoustic_codec/model_1.safetensors") == \
        snapshot / "acoustic_codec" / "model_1.safetensors"
    assert hub.resolve_weights(f"hf://YaohuiW/LIA-X/lia-x.pt@{COMMIT}").name == "lia-x.pt"


def test_a_missing_file_is_one_line_with_the_fetch_command(cache):
    with pytest.raises(hub.WeightsNotFoundError) as err:
        hub.resolve_weights("whisperx-vae", flag="--vae")
    message = str(err.value)
    assert "\n" not in message and message.startswith("--vae whisperx-vae: hf://HKUSTAudio/Talker-T2AV/")
    assert message.endswith("fetch it first with: python scripts/fetch_weights.py whisperx-vae")
    with pytest.raises(hub.WeightsNotFoundError, match="not a weights name"):
        hub.resolve_weights("no-such-model")
    with pytest.raises(hub.WeightsNotFoundError, match=r"missing\.pt: no such file or folder"):
        hub.resolve_weights("ckpts/missing.pt")
    with pytest.raises(hub.WeightsNotFoundError, match="wavlm_large_finetune.pth.*or pass its path"):
        hub.resolve_weights("wavlm-ecapa")  # fetched by hand: the entry says where it goes


def test_a_hand_fetched_file_placed_where_the_entry_says_resolves(cache, tmp_path):
    placed = tmp_path / "hf" / "avspeech" / "wavlm-ecapa" / "wavlm_large_finetune.pth"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(b"w")
    assert hub.resolve_weights("wavlm-ecapa") == placed


def test_a_local_path_wins_over_the_registry(cache, tmp_path, monkeypatch):
    local = tmp_path / "lia-x"  # a local file named like the registry entry
    local.write_bytes(b"mine")
    monkeypatch.chdir(tmp_path)
    assert hub.resolve_weights("lia-x").read_bytes() == b"mine"


def test_url_download_is_checked_and_leaves_nothing_when_the_sha256_differs(tmp_path, monkeypatch):
    source = tmp_path / "served.bin"
    source.write_bytes(b"released bytes")
    good = hashlib.sha256(b"released bytes").hexdigest()
    url = source.as_uri()  # file:// : no socket involved
    target = tmp_path / "cache" / "x" / "served.bin"
    with pytest.raises(hub.WeightsDownloadError, match="does not match the expected"):
        hub.download(url, target, sha256="deadbeef")
    assert not target.parent.exists() or not list(target.parent.iterdir())  # no partial or temporary file
    assert hub.download(url, target, sha256=good[:8]).read_bytes() == b"released bytes"  # a prefix is enough


def test_non_commercial_notice_is_shown_once(cache, caplog):
    cache("YaohuiW/LIA-X", "lia-x.pt")
    with caplog.at_level("WARNING"):
        hub.resolve_weights("lia-x")
        hub.resolve_weights("lia-x")
    notices = [r for r in caplog.records if "non-commercial use only" in r.message]
    assert len(notices) == 1 and "CC BY-NC 4.0" in notices[0].message


def test_every_registry_entry_is_well_formed():
    for entry in hub.registry().values():
        assert entry.page.startswith("https://"), entry.name
        assert entry.source or entry.manual, entry.name  # fetchable, or a manual step
        if entry.source and entry.source.startswith("hf://"):
            hub.parse_hf(entry.source)
        assert not entry.extra, (entry.name, entry.extra)  # no misspelt fields


def test_a_download_the_network_refuses_reads_as_a_network_failure_with_the_prefetch_command(tmp_path, monkeypatch):
    def no_route(*args, **kwargs):  # what urllib raises on a node without DNS
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", no_route)
    with pytest.raises(hub.WeightsDownloadError) as failure:
        hub.download("http://weights.example/lia_x.pt", tmp_path / "lia_x.pt", label="lia-x")
    message = str(failure.value)
    assert "network unreachable" in message and "cannot write" not in message
    assert "fetch it where the network is with: python scripts/fetch_weights.py lia-x" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("names", [["no-such-weights"], ["hf://only-org"], ["./missing.pt"], ["talker-t2av"],
                                   ["--all"]])
def test_fetch_weights_says_what_failed_on_stderr_and_exits_1(cache, capsys, names):
    fetch_weights = load_script("fetch_weights")
    assert fetch_weights.main(names) == 1
    captured = capsys.readouterr()
    last = captured.err.strip().splitlines()[-1]
    assert "could not be fetched" in last and ("talker-t2av" if names == ["--all"] else names[0]) in last
    assert captured.out.strip()  # the table is still printed


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[2] / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
