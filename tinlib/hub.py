"""Published MMAction2 artifacts (zoo checkpoints, training logs) and downloading them with torch.hub
into its cache (``$TORCH_HOME/hub/checkpoints``). A file is refused unless its sha256 starts with the
hex digits its name ends in (torch's convention); ``$TINLIB_DOWNLOAD_MIRROR`` replaces
``https://download.openmmlab.com`` in every URL."""
from __future__ import annotations

import contextlib
import functools
import http.client
import logging
import os
import re
import sys
import threading
import urllib.error
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinlib.errors import UserError, one_line
from tinlib.io import sha256_of

log = logging.getLogger(__name__)

OPENMMLAB_URL = "https://download.openmmlab.com"
MIRROR_ENV = "TINLIB_DOWNLOAD_MIRROR"
PUBLISHED_SCHEME = "published:"
ARTIFACT_KINDS = ("ckpt", "log", "json")

# A zoo file name ends in "-<hex>.<ext>", the hex being the start of the file's sha256. Stricter
# than torch.hub.HASH_REGEX, which also takes "-" followed by no hex digit at all.
_HASH_SUFFIX = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")
_REMOTE = re.compile(r"^(https?://|published:)")


class DownloadError(UserError):
    """A download that failed: server unreachable, HTTP error, interrupted transfer or wrong hash.
    Its exit status (4) is its own (docs/bad-inputs.md lists them all), so scripts can retry on it."""

    exit_code = 4


@dataclass(frozen=True)
class PublishedArtifacts:
    """URLs of one config's published files (canonical ``download.openmmlab.com`` addresses;
    ``None`` where nothing was published)."""

    checkpoint: str
    log: str | None = None
    log_json: str | None = None

    def url(self, what: str) -> str | None:
        """The URL of the checkpoint (``"ckpt"``), the text log (``"log"``) or the JSON log
        (``"json"``); None when that file was not published; ``KeyError`` for another ``what``."""
        return {"ckpt": self.checkpoint, "log": self.log, "json": self.log_json}[what]


# Published files that belong to no config of this kit: MMAction2's TSM Kinetics-400 model, which
# the Kinetics-400 row fine-tunes from (its ``model.load_from``).
_TSM_K400 = f"{OPENMMLAB_URL}/mmaction/recognition/tsm/tsm_r50_1x1x8_50e_kinetics400_rgb/"
EXTRA_PUBLISHED: dict[str, PublishedArtifacts] = {
    "tsm_r50_1x1x8_50e_kinetics400_rgb": PublishedArtifacts(
        checkpoint=_TSM_K400 + "tsm_r50_1x1x8_50e_kinetics400_rgb_20200607-af7fb746.pth"),
}


@functools.cache
def _registry() -> dict[str, PublishedArtifacts]:
    """The configs whose ``published`` section names a checkpoint, plus :data:`EXTRA_PUBLISHED`;
    built on first use (it loads every config)."""
    from tinlib.config import available_configs, load_config

    registry = {}
    for name in available_configs():
        section = load_config(name).published
        if section.checkpoint:
            registry[name] = PublishedArtifacts(section.checkpoint, section.log or None, section.log_json or None)
    return {**registry, **EXTRA_PUBLISHED}


def __getattr__(name: str) -> Any:
    # PUBLISHED ``{config: PublishedArtifacts}``: built when first read, not at import
    if name == "PUBLISHED":
        return _registry()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def published_url(config: str, what: str = "ckpt") -> str:
    """The canonical URL (before any mirror) of ``config``'s published ``what`` (``"ckpt"``,
    ``"log"`` or ``"json"``); :class:`UserError` listing what there is for an unknown config or
    kind, or a kind that was not published for it."""
    registry = _registry()
    if config not in registry:
        raise UserError(f"no published artifacts for config {config!r}; known: {', '.join(sorted(registry))}")
    if what not in ARTIFACT_KINDS:
        raise UserError(f"unknown artifact kind {what!r} for {config}; use one of {', '.join(ARTIFACT_KINDS)}")
    url = registry[config].url(what)
    if url is None:
        raise UserError(f"no {what} file was published for {config} (only: "
                        f"{', '.join(k for k in ARTIFACT_KINDS if registry[config].url(k))})")
    return url


def published_run(config: str) -> str:
    """The results folder of ``config``'s published checkpoint evaluated here: ``<config>_published``."""
    return f"{config}_published"


def is_remote(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` names a file to download first: an ``http(s)://`` URL or ``published:<config>``."""
    return bool(_REMOTE.match(os.fspath(spec)))


def parse_published(spec: str) -> tuple[str, str]:
    """``published:<config>[:ckpt|log|json]`` -> ``(config, what)``, ``what`` defaulting to ``"ckpt"``
    (not checked here; see :func:`published_url`)."""
    config, _, what = spec[len(PUBLISHED_SCHEME):].partition(":")
    return config, what or "ckpt"


def resolve_checkpoint(spec: str | os.PathLike, *, dest_dir: str | os.PathLike | None = None,
                       verify: bool = False) -> Path:
    """The local file for ``spec``, for every command and config key that takes a checkpoint: a
    local path (checked with :func:`checkpoint_file_problem`), or an ``http(s)://`` URL or
    ``published:<config>[:log|:json]`` downloaded (see :func:`download_url`) into ``dest_dir``
    (default: torch's hub cache). Other schemes (``torchvision://``) are refused: :class:`UserError`,
    as for a path that is not a file or an unknown published config or kind."""
    text = os.fspath(spec)
    if text.startswith(PUBLISHED_SCHEME):
        config, what = parse_published(text)
        return fetch_published(config, what, dest_dir, verify=verify)
    if is_remote(text):
        return download_url(text, dest_dir, verify=verify)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        raise UserError(f"cannot fetch {text!r}: use a local file, an http(s):// URL or published:<config>")
    problem = checkpoint_file_problem(text)
    if problem:
        raise UserError(problem)
    return Path(text)


def checkpoint_file_problem(path: str | os.PathLike) -> str | None:
    """None when ``path`` is a file, else the one line every command gives for it: ``checkpoint
    not found: PATH; ...`` or ``PATH is a directory, not a checkpoint file; give the .pth inside it
    (e.g. PATH/latest.pth)``, naming a ``.pth`` the folder holds."""
    path = Path(path)
    if path.is_file():
        return None
    if path.is_dir():
        inside = sorted(path.glob("*.pth"))
        example = path / "latest.pth" if (path / "latest.pth").is_file() or not inside else inside[0]
        return f"{path} is a directory, not a checkpoint file; give the .pth inside it (e.g. {example})"
    return (f"checkpoint not found: {path}; give an existing file, an http(s) URL or published:<config> "
            "(`tinlib fetch --list` names the configs)")


def fetch_published(config: str, what: str = "ckpt", dest_dir: str | os.PathLike | None = None, *,
                    verify: bool = False) -> Path:
    """Download (or find in the cache) ``config``'s published ``what`` (see :func:`published_url`);
    cached under :func:`published_file_name`."""
    url = published_url(config, what)
    return download_url(url, dest_dir, verify=verify, file_name=published_file_name(config, what, url))


def published_file_name(config: str, what: str, url: str) -> str:
    """The cache name of a published file: a checkpoint keeps its own name (unique thanks to its
    hash suffix, and the name torch.hub gives it); a log, published under a bare timestamp, becomes
    ``<config>_<name>`` so that the cache says whose it is."""
    name = file_name_of(url)
    return name if what == "ckpt" else f"{config}_{name}"


def cached_published(config: str, what: str = "json", dest_dir: str | os.PathLike | None = None, *,
                     url: str | None = None) -> Path | None:
    """The published file of ``config`` when it is already in the cache, else None (also for an
    unknown config or kind); never downloads. ``url``: the file's URL when it is not the registry's
    (a config loaded with overrides)."""
    if url is None:
        artifacts = _registry().get(config)
        url = artifacts.url(what) if artifacts is not None and what in ARTIFACT_KINDS else None
    if not url:
        return None
    path = (Path(dest_dir) if dest_dir is not None else hub_checkpoint_dir()) / published_file_name(config, what, url)
    return path if path.is_file() else None


def hub_checkpoint_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``): torch.hub's weights cache."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def mirrored(url: str) -> str:
    """``url`` with its ``https://download.openmmlab.com`` prefix replaced by ``$TINLIB_DOWNLOAD_MIRROR``
    (an ``http(s)://`` or ``file://`` base); unchanged when the variable is unset or the URL is
    not under that prefix."""
    mirror = os.environ.get(MIRROR_ENV, "").strip().rstrip("/")
    if mirror and (url == OPENMMLAB_URL or url.startswith(OPENMMLAB_URL + "/")):
        return mirror + url[len(OPENMMLAB_URL):]
    return url


def file_name_of(url: str) -> str:
    """The last component of ``url``'s path, percent-decoded; :class:`UserError` when there is none."""
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    if not name or name in {".", ".."}:
        raise UserError(f"{url}: the URL does not end in a file name")
    return name


def expected_hash_prefix(name: str) -> str | None:
    """The sha256 prefix (8 or more lowercase hex digits) a ``<stem>-<hex>.<ext>`` file name
    promises, or None when the name has no such suffix."""
    match = _HASH_SUFFIX.search(name)
    return match.group(1) if match else None


def download_url(url: str, dest_dir: str | os.PathLike | None = None, *, file_name: str | None = None,
                 verify: bool = False) -> Path:
    """Download ``url`` (through the mirror) to ``dest_dir/<file_name>`` (default: torch's hub cache,
    the URL's file name, whose hash suffix is checked either way) unless it is there.

    A cached file is used without a network call and without re-hashing it (it only got there
    after its hash was checked), unless ``verify``. A failed transfer leaves nothing behind (no
    partial file, no ``.lock``); the next run downloads the whole file again. :class:`DownloadError`
    (one line naming the URL and what to do) when the download cannot finish or the hash does not match.
    """
    expected = expected_hash_prefix(file_name_of(url))
    dest = Path(dest_dir) if dest_dir is not None else hub_checkpoint_dir()
    target = dest / (file_name or file_name_of(url))
    if target.is_file():
        if verify and expected and not (actual := sha256_of(target)).startswith(expected):
            raise DownloadError(f"cached {target} has sha256 {actual}, but its name expects {expected}...; "
                                "delete it and fetch again")
        return target
    dest.mkdir(parents=True, exist_ok=True)
    lock = dest / f"{target.name}.lock"
    try:
        with _exclusive(lock):
            if not target.is_file():  # else another process finished it while we waited
                _download(mirrored(url), target, expected)
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
    return target


@contextlib.contextmanager
def log_partial_growth(target: Path, every_s: float = 30.0) -> Iterator[None]:
    """Log the size of torch.hub's partial file (``<target>.<uuid>.partial``) every ``every_s``
    seconds: without a terminal torch shows no progress, and a batch log should not stay silent."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(every_s):
            sizes = []
            for partial in target.parent.glob(f"{target.name}.*.partial"):
                with contextlib.suppress(OSError):  # renamed into place or deleted meanwhile
                    sizes.append(partial.stat().st_size)
            if sizes:
                log.info("downloading %s: %.1f MB so far", target.name, max(sizes) / 1e6)

    watcher = threading.Thread(target=watch, name="download-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


def _download(source: str, target: Path, expected: str | None) -> None:
    """``torch.hub.download_url_to_file`` with its failures turned into one-line :class:`DownloadError`\\ s."""
    import torch.hub

    log.info("downloading %s to %s", source, target)
    terminal = sys.stderr.isatty()
    try:
        with contextlib.nullcontext() if terminal else log_partial_growth(target):
            torch.hub.download_url_to_file(source, os.fspath(target), hash_prefix=expected, progress=terminal)
    except urllib.error.HTTPError as err:
        raise DownloadError(f"could not download {source}: HTTP {err.code} {one_line(err.reason)}; check the URL "
                            f"or config name (and {MIRROR_ENV} if set)") from None
    except urllib.error.URLError as err:  # nothing arrived: the offline one-liner
        raise DownloadError(f"could not reach {source} ({one_line(err.reason)}); download it elsewhere and put it "
                            f"at {target}") from None
    except (OSError, http.client.HTTPException) as err:  # the connection broke mid-file
        raise DownloadError(f"download of {source} was interrupted ({one_line(err) or type(err).__name__}); "
                            "run the same command again") from None
    except RuntimeError as err:  # torch's hash check (a cut connection gives a short file, so a wrong hash too)
        found = re.search(r'got "([0-9a-f]+)"', str(err))
        actual = found.group(1) if found else one_line(err)
        raise DownloadError(f"{source} gave a file with sha256 {actual}, but its name expects {expected}...; "
                            "the download was deleted; run again, or check the server/mirror") from None
    log.info("saved %s%s", target, " (sha256 matches its name)" if expected else "")


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock so that processes on one node (e.g. torchrun ranks) download a file
    once; a no-op where ``fcntl`` is missing."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(lock_path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

