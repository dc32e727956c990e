"""Weights by path or by name: every place that takes a weight calls :func:`resolve_weights`.

    resolve_weights("ckpts/lia-x.pt")                          # a local file or folder wins
    resolve_weights("lia-x")                                   # a name in engine/registry.yaml
    resolve_weights("hf://amphion/MaskGCT/acoustic_codec")     # any file or folder on the hub

Hub files go through ``huggingface_hub`` into its standard cache (``HF_HOME`` / ``HF_HUB_CACHE``,
``HF_TOKEN`` and ``HF_HUB_OFFLINE`` honoured); a cached file is used without touching the network.
URL files go into ``$HF_HOME/avspeech/<name>/``, checked against their sha256 and renamed into place
only when complete. Weights no script may fetch are looked for where their ``manual`` step says.
The network is used only when a name is resolved that is not cached yet; offline, a missing file is
one line naming the file and the command that fetches it (``python scripts/fetch_weights.py NAME``).
"""

import functools
import hashlib
import importlib.util
import logging
import os
import re
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf
from tqdm import tqdm

from engine.atomic import atomic_path
from engine.errors import UserFacingError

log = logging.getLogger(__name__)

REGISTRY_FILE = Path(__file__).with_name("registry.yaml")
HF_PREFIX = "hf://"


class WeightsNotFoundError(UserFacingError, FileNotFoundError):
    pass


class WeightsDownloadError(UserFacingError, RuntimeError):
    pass


# ---------------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Entry:
    name: str
    source: str | None = None
    files: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    file: str | None = None
    sha256: str | None = None
    licence: str = ""
    non_commercial: bool = False
    page: str = ""
    manual: str | None = None
    package: str | None = None
    package_path: str | None = None
    used_by: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def hub(self) -> bool:
        return bool(self.source and self.source.startswith(HF_PREFIX))


@functools.cache
def registry() -> dict[str, Entry]:
    """The entries of ``engine/registry.yaml`` by name."""
    raw = OmegaConf.to_container(OmegaConf.load(REGISTRY_FILE))
    known = {f for f in Entry.__dataclass_fields__ if f not in ("name", "extra")}
    entries = {}
    for name, fields in raw.items():
        fields = {k: (tuple(v) if isinstance(v, list) else v) for k, v in fields.items()}
        entries[name] = Entry(name, **{k: v for k, v in fields.items() if k in known},
                              extra={k: v for k, v in fields.items() if k not in known})
    return entries


# --------------------------------------------------------------------------------- environment
def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hf_home() -> Path:
    return Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface").expanduser()


def hub_cache() -> Path:
    return Path(os.environ.get("HF_HUB_CACHE") or hf_home() / "hub").expanduser()


def own_cache() -> Path:
    """Where URL downloads and hand-fetched weights live: ``$HF_HOME/avspeech``."""
    return hf_home() / "avspeech"


def fetch_hint(name: str) -> str:
    return f"python scripts/fetch_weights.py {name}"


# ------------------------------------------------------------------------------------ resolving
def parse_hf(spec: str) -> tuple[str, str, str | None]:
    """``hf://org/repo/path/in/repo[@revision]`` -> (repo id, path, revision); the path may be empty."""
    rest, _, revision = spec[len(HF_PREFIX):].partition("@")
    parts = rest.strip("/").split("/")
    if len(parts) < 2 or not all(parts[:2]):
        raise WeightsNotFoundError(f"{spec}: expected hf://org/repo[/path][@revision]")
    return "/".join(parts[:2]), "/".join(parts[2:]), revision or None


def resolve_weights(spec: str | os.PathLike, flag: str | None = None, fetch: bool = True) -> Path:
    """A local path (file or folder), a registry name or an ``hf://`` spec -> a local path.

    ``flag`` names the option the spec came from, for messages (``--avhubert``). ``fetch=False``
    never downloads (a missing file is the one-line error)."""
    where = f"{flag} " if flag else ""
    text = os.fspath(spec)
    path = Path(text).expanduser()
    if path.exists():
        return path
    if text.startswith(HF_PREFIX):
        return _resolve_hub(text, None, (), (), fetch, where)
    entry = registry().get(text)
    if entry is None:
        looks_like_path = os.sep in text or text.startswith(".") or Path(text).suffix
        if looks_like_path:
            raise WeightsNotFoundError(f"{where}{text}: no such file or folder")
        raise WeightsNotFoundError(f"{where}{text}: no such file, and not a weights name (known: "
                                   f"{', '.join(sorted(registry()))}) or an hf:// spec")
    resolved = _resolve_entry(entry, fetch, where)
    _licence_notice(entry)
    return resolved


def _resolve_entry(entry: Entry, fetch: bool, where: str) -> Path:
    if entry.package:
        found = _in_package(entry)
        if found is not None:
            return found
    if entry.hub:
        return _resolve_hub(entry.source, entry.name, entry.files, entry.optional, fetch, where)
    if entry.source:  # a URL
        return _resolve_url(entry, fetch, where)
    placed = own_cache() / entry.name / (entry.file or "")
    if entry.file and placed.exists():
        return placed
    step = (entry.manual or f"see {entry.page}").replace("{cache}", str(own_cache()))
    raise WeightsNotFoundError(f"{where}{entry.name}: not on this machine; it cannot be fetched automatically: {step}")


def _in_package(entry: Entry) -> Path | None:
    """The weights inside an installed distribution, located without importing it."""
    try:
        spec = importlib.util.find_spec(entry.package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / (entry.package_path or "")
    return path if path.exists() else None


def _resolve_hub(spec: str, name: str | None, files: tuple[str, ...], optional: tuple[str, ...], fetch: bool,
                 where: str) -> Path:
    """A hub file, or a folder (``files`` of it, or every file under it), in the standard cache."""
    from huggingface_hub import hf_hub_download, snapshot_download, try_to_load_from_cache
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo, inner, revision = parse_hf(spec)
    label = name or spec
    offline = _offline() or not fetch
    cache = hub_cache()
    members = [f"{inner}/{f}" if inner else f for f in files]
    # a single file: the path itself
    if not members and inner and "." in Path(inner).name:
        cached = try_to_load_from_cache(repo, inner, cache_dir=cache, revision=revision)
        if isinstance(cached, str):
            return Path(cached)
        if offline:
            raise _not_cached(label, spec, where)
        try:
            return Path(hf_hub_download(repo, inner, revision=revision, cache_dir=cache))
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as e:
            raise _download_failed(f"{where}{label}", spec, e, label) from None
    # a folder: its listed members (all cached: no network), or the snapshot of everything under it
    if members:
        found = {m: try_to_load_from_cache(repo, m, cache_dir=cache, revision=revision) for m in members}
        required = [m for m in members if Path(m).name not in optional]
        if all(isinstance(found[m], str) for m in required):
            first = Path(found[required[0]])
            return first.parents[len(Path(required[0]).parts) - 1] / inner if inner else first.parent
    patterns = [m for m in members] or ([f"{inner}/*"] if inner else None)
    try:
        snapshot = Path(snapshot_download(repo, revision=revision, cache_dir=cache, allow_patterns=patterns,
                                          local_files_only=offline))
    except LocalEntryNotFoundError:
        raise _not_cached(label, spec, where) from None
    except (HfHubHTTPError, OSError) as e:
        raise _download_failed(f"{where}{label}", spec, e, label) from None
    folder = snapshot / inner if inner else snapshot
    missing = [m for m in members if Path(m).name not in optional and not (snapshot / m).exists()]
    if missing or not folder.exists():
        raise _not_cached(label, spec, where) if offline else WeightsNotFoundError(
            f"{where}{label}: {spec} has no {', '.join(missing) or inner}")
    return folder


def _not_cached(label: str, spec: str, where: str) -> WeightsNotFoundError:
    mode = "the hub is offline (HF_HUB_OFFLINE)" if _offline() else "fetching was not allowed"
    return WeightsNotFoundError(f"{where}{label}: {spec} is not in the cache {hub_cache()} and {mode}; fetch it "
                                f"first with: {fetch_hint(label if not label.startswith(HF_PREFIX) else spec)}")


def _download_failed(what: str, source: str, error: BaseException, name: str) -> WeightsDownloadError:
    """A failed download says whether the network or the disk failed; a network failure names the
    prefetch command to run where the network is (then copy HF_HOME over, or share it)."""
    if _is_network_error(error):
        return WeightsDownloadError(
            f"{what}: cannot download {source}: network unreachable ({_reason(error)}); fetch it where the "
            f"network is with: {fetch_hint(name if not name.startswith(HF_PREFIX) else source)} "
            f"(HF_HOME={hf_home()})")
    return WeightsDownloadError(f"{what}: cannot fetch {source} ({_reason(error)})")


def _is_network_error(error: BaseException) -> bool:
    if isinstance(error, (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, socket.gaierror)):
        return not isinstance(error, urllib.error.HTTPError)  # a 404 is an answer, not a dead network
    names = {type(e).__name__ for e in (error, error.__cause__, error.__context__) if e is not None}
    return bool(names & {"ConnectionError", "ConnectTimeout", "ReadTimeout", "ConnectError", "NameResolutionError",
                         "MaxRetryError", "OfflineModeIsEnabled"})


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _resolve_url(entry: Entry, fetch: bool, where: str) -> Path:
    filename = entry.file or entry.source.rsplit("/", 1)[-1]
    target = own_cache() / entry.name / filename
    if target.exists():
        return target
    if _offline() or not fetch:
        raise WeightsNotFoundError(f"{where}{entry.name}: {target} is not there and the hub is offline "
                                   f"(HF_HUB_OFFLINE); fetch it first with: {fetch_hint(entry.name)} "
                                   f"(or download {entry.source} to that path)")
    return download(entry.source, target, entry.sha256, label=entry.name)


def download(url: str, target: Path, sha256: str | None = None, label: str | None = None) -> Path:
    """``url`` -> ``target`` with a progress bar, checked against ``sha256`` (full digest or a prefix);
    written under a temporary name and renamed only when complete and verified."""
    label = label or url
    digest = hashlib.sha256()
    # The network's errors are caught inside the write, so atomic_path (which turns an OSError into
    # "cannot write") only ever sees the disk's.
    with atomic_path(target) as tmp:
        try:
            response = urllib.request.urlopen(url, timeout=60)
        except (urllib.error.URLError, OSError) as e:
            raise _download_failed(label, url, e, label) from None
        with response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=label, leave=False) as bar:
                while chunk := _read(response, label, url):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        check_sha256(digest.hexdigest(), sha256, url)
    return target


def _read(response, label: str, url: str) -> bytes:
    try:
        return response.read(1 << 20)
    except (urllib.error.URLError, OSError) as e:  # a connection dropped mid-file
        raise _download_failed(label, url, e, label) from None


def check_sha256(actual: str, expected: str | None, source: str) -> None:
    if expected is None:
        return
    expected = expected.lower()
    if not re.fullmatch(r"[0-9a-f]{8,64}", expected):
        raise WeightsDownloadError(f"{source}: the registry's sha256 {expected!r} is not a hex digest (or prefix)")
    if not actual.startswith(expected):
        raise WeightsDownloadError(f"{source}: sha256 {actual[:16]}... does not match the expected "
                                   f"{expected[:16]}...; the file was not kept")


def _licence_notice(entry: Entry) -> None:
    """A non-commercial licence is printed once per cache (a marker file remembers it)."""
    if not entry.non_commercial:
        return
    marker = own_cache() / entry.name / ".licence-shown"
    if marker.exists():
        return
    log.warning("%s is licensed %s: non-commercial use only (%s)", entry.name, entry.licence, entry.page)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:  # a read-only cache: the notice simply shows again next time
        pass


# ------------------------------------------------------------------------------------ prefetch
def fetch(names: list[str]) -> list[tuple[str, Path | None, str]]:
    """Fetch registry names (or hf:// specs) now -> (name, local path or None, status)."""
    results = []
    for name in names:
        try:
            path = resolve_weights(name)
            results.append((name, path, _size(path)))
        except UserFacingError as e:
            results.append((name, None, str(e)))
    return results


def _size(path: Path) -> str:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    return f"{total / 1e6:,.1f} MB" if total < 1e9 else f"{total / 1e9:,.2f} GB"
