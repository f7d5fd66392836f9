"""Published artifacts (model-zoo checkpoints and training logs) and downloading them.

:data:`PUBLISHED` maps a config name to the URLs of what MMAction2 0.x published for it: the
``published`` section of each zoo config (``tinlib/configs/<row>.py``), plus the TSM Kinetics-400
checkpoint the Kinetics-400 row starts from, which is no config of this kit (:data:`EXTRA_PUBLISHED`).
:func:`resolve_checkpoint` turns a local path, an ``http(s)://`` URL or ``published:<config>``
into a local file, downloading into torch's hub cache (``torch.hub.get_dir()/checkpoints``, i.e.
``$TORCH_HOME/hub/checkpoints``, where ``torch.hub.load_state_dict_from_url`` puts files too).

Downloads
- resume: bytes arrive in ``<name>.partial`` beside the final file; an interrupted transfer is
  retried (and a later run continues) with an HTTP ``Range`` request from the bytes already
  there. A server that ignores ``Range`` (200 instead of 206) makes the download start over.
- integrity: model-zoo file names end in ``-<first 8 hex digits of the file's sha256>``; the
  finished file is hashed and renamed into place only when it matches. A mismatch deletes the
  partial file and raises :class:`DownloadError` naming the URL, the expected and the actual hash.
- cache: a file already in the cache is used as it is, without any network call and without
  re-hashing it (it only got there after its hash was checked). ``verify=True``
  (``tinlib fetch --verify``) re-hashes a cached file on request.
- mirror: ``TINLIB_DOWNLOAD_MIRROR`` replaces the ``https://download.openmmlab.com`` prefix of
  any URL (an ``http(s)://`` or ``file://`` base), for mirrors and clusters without internet.
- progress: a tqdm bar when stderr is a terminal, otherwise a log line every 30 s (percent,
  MB, MB/s), so batch-job logs show progress without a line per chunk.

Only the standard library (``urllib.request``) and tqdm are used; proxies configured through the
usual ``https_proxy``/``no_proxy`` environment variables apply.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tinlib.errors import UserError

log = logging.getLogger(__name__)

OPENMMLAB_URL = "https://download.openmmlab.com"
MIRROR_ENV = "TINLIB_DOWNLOAD_MIRROR"
PUBLISHED_SCHEME = "published:"
PUBLISHED_RUN_SUFFIX = "_published"

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0
PROGRESS_LOG_INTERVAL_S = 30.0
DEFAULT_ATTEMPTS = 3
RETRY_WAIT_S = 2.0

# A zoo file name ends in "-<hex>.<ext>", the hex being the start of the file's sha256.
_HASH_SUFFIX = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")
_CONTENT_RANGE = re.compile(r"^bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)$")


class DownloadError(UserError):
    """A download that failed: server unreachable, HTTP error, interrupted transfer or wrong hash.
    Its exit status (3) differs from bad usage (2), so scripts can retry on it."""

    exit_code = 3


# --------------------------------------------------------------------------------------------
# What was published
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PublishedArtifacts:
    """URLs of one config's published files (canonical ``download.openmmlab.com`` addresses;
    ``None`` where nothing was published)."""

    checkpoint: str
    log: str | None = None
    log_json: str | None = None

    def url(self, what: str) -> str | None:
        """The URL of one of the published files.

        Args:
            what: ``"ckpt"`` (the checkpoint), ``"log"`` (the text training log) or ``"json"`` (the
                JSON training log).

        Returns:
            The URL, or None when that file was not published.

        Raises:
            KeyError: ``what`` is none of the three.
        """
        return {"ckpt": self.checkpoint, "log": self.log, "json": self.log_json}[what]


ARTIFACT_KINDS = ("ckpt", "log", "json")


# Published files that belong to no config of this kit: MMAction2's TSM Kinetics-400 model, which
# the Kinetics-400 row fine-tunes from (its ``model.load_from``).
_TSM_K400 = f"{OPENMMLAB_URL}/mmaction/recognition/tsm/tsm_r50_1x1x8_50e_kinetics400_rgb/"
EXTRA_PUBLISHED: dict[str, PublishedArtifacts] = {
    "tsm_r50_1x1x8_50e_kinetics400_rgb": PublishedArtifacts(
        checkpoint=_TSM_K400 + "tsm_r50_1x1x8_50e_kinetics400_rgb_20200607-af7fb746.pth"),
}


def published_of_configs() -> dict[str, PublishedArtifacts]:
    """``{config name: its published files}`` for every config in ``tinlib/configs`` whose
    ``published`` section names a checkpoint (the model-zoo rows). Reads the config modules'
    ``CONFIG`` dicts without building or validating them (no torch import)."""
    import importlib
    import pkgutil

    package = "tinlib.configs"  # the config files; read here by name so hub stays below the engine
    names = sorted(m.name for m in pkgutil.iter_modules(importlib.import_module(package).__path__))
    out = {}
    for name in names:
        values = getattr(importlib.import_module(f"{package}.{name}"), "CONFIG", None)
        section = values.get("published") if isinstance(values, dict) else None
        if isinstance(section, dict) and section.get("checkpoint"):
            out[name] = PublishedArtifacts(checkpoint=section["checkpoint"], log=section.get("log") or None,
                                           log_json=section.get("log_json") or None)
    return out


class PublishedRegistry(MutableMapping[str, PublishedArtifacts]):
    """``{name: PublishedArtifacts}``: the configs' ``published`` sections (one source: the config
    files) plus :data:`EXTRA_PUBLISHED`, read on first use. A mapping like a dict, so that tests
    and tools can add an entry."""

    def __init__(self) -> None:
        self._entries: dict[str, PublishedArtifacts] | None = None

    def _all(self) -> dict[str, PublishedArtifacts]:
        if self._entries is None:
            self._entries = {**published_of_configs(), **EXTRA_PUBLISHED}
        return self._entries

    def __getitem__(self, name: str) -> PublishedArtifacts:
        return self._all()[name]

    def __setitem__(self, name: str, artifacts: PublishedArtifacts) -> None:
        self._all()[name] = artifacts

    def __delitem__(self, name: str) -> None:
        del self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


# MMAction2 0.x model zoo (the TIN rows, from their configs) and the TSM-K400 init.
PUBLISHED: MutableMapping[str, PublishedArtifacts] = PublishedRegistry()


def published_url(config: str, what: str = "ckpt") -> str:
    """The canonical URL of a published file of ``config``.

    Args:
        config: a name in :data:`PUBLISHED` (a zoo config, or the TSM-K400 init).
        what: ``"ckpt"``, ``"log"`` or ``"json"``.

    Returns:
        The ``https://download.openmmlab.com/...`` URL (before any mirror is applied).

    Raises:
        UserError: an unknown config or kind, or a kind that was not published for it (the message
            lists what there is).
    """
    if config not in PUBLISHED:
        raise UserError(f"no published artifacts for config {config!r}; known: {', '.join(sorted(PUBLISHED))}")
    if what not in ARTIFACT_KINDS:
        raise UserError(f"unknown artifact kind {what!r} for {config}; use one of {', '.join(ARTIFACT_KINDS)}")
    url = PUBLISHED[config].url(what)
    if url is None:
        raise UserError(f"no {what} file was published for {config} (only: "
                        f"{', '.join(k for k in ARTIFACT_KINDS if PUBLISHED[config].url(k))})")
    return url


# --------------------------------------------------------------------------------------------
# Resolving a spec to a local file
# --------------------------------------------------------------------------------------------
def is_remote(spec: str) -> bool:
    """Whether :func:`resolve_checkpoint` downloads ``spec``.

    Args:
        spec: a checkpoint argument as given (path, URL or ``published:<config>``).

    Returns:
        True for ``http(s)://`` URLs and ``published:`` specs.
    """
    return spec.startswith(PUBLISHED_SCHEME) or bool(re.match(r"^https?://", spec))


def parse_published(spec: str) -> tuple[str, str]:
    """Split a ``published:<config>[:ckpt|log|json]`` spec.

    Args:
        spec: the spec, starting with ``published:``.

    Returns:
        ``(config, what)``, ``what`` defaulting to ``"ckpt"`` (not checked here; see :func:`published_url`).
    """
    body = spec[len(PUBLISHED_SCHEME):]
    config, _, what = body.partition(":")
    return config, what or "ckpt"


def resolve_checkpoint(spec: str | os.PathLike, *, dest_dir: str | os.PathLike | None = None,
                       verify: bool = False) -> Path:
    """The local file for ``spec``, downloading it first when needed.

    Args:
        spec: a local path (returned unchanged), an ``http(s)://`` URL, or ``published:<config>``
            (its checkpoint; ``published:<config>:log`` or ``:json`` for the training log). Other
            schemes (e.g. ``torchvision://``) are not files and are refused here.
        dest_dir: where URLs are downloaded to (default: torch's hub cache), as described in this
            module's docstring.
        verify: re-hash a file already in the cache against the hash in its name.

    Returns:
        The path of the local file.

    Raises:
        UserError: a local path that is not a file, an unknown scheme, or an unknown published
            config or kind.
        DownloadError: a download that could not finish or whose hash does not match.
    """
    text = os.fspath(spec)
    if text.startswith(PUBLISHED_SCHEME):
        config, what = parse_published(text)
        return fetch_published(config, what, dest_dir, verify=verify)
    if re.match(r"^https?://", text):
        return download_url(text, dest_dir, verify=verify)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        raise UserError(f"cannot fetch {text!r}: use a local file, an http(s):// URL or published:<config>")
    path = Path(text)
    if not path.is_file():
        hint = " (a directory, not a file)" if path.is_dir() else ""
        raise UserError(f"checkpoint not found: {path}{hint}; give an existing file, a URL or published:<config> "
                        f"(known: {', '.join(sorted(PUBLISHED))})")
    return path


def fetch_published(config: str, what: str = "ckpt", dest_dir: str | os.PathLike | None = None, *,
                    verify: bool = False) -> Path:
    """Download (or find in the cache) a published file of ``config``.

    Checkpoints keep their published name (unique thanks to its hash suffix, and the name
    torch.hub would give them); logs, published under bare timestamps, are cached as
    ``<config>_<published name>`` so that the cache says what they are.

    Args:
        config: a name in :data:`PUBLISHED`.
        what: ``"ckpt"``, ``"log"`` or ``"json"``.
        dest_dir: the cache folder (default: torch's hub cache).
        verify: re-hash a cached file against the hash in its name.

    Returns:
        The path of the local file.

    Raises:
        UserError: an unknown config or kind, or one that was not published.
        DownloadError: the download could not finish or its hash does not match.
    """
    url = published_url(config, what)
    return download_url(url, dest_dir, verify=verify, file_name=published_file_name(config, what, url))


def published_file_name(config: str, what: str, url: str) -> str:
    """The cache name of a published file.

    Args:
        config: the config it was published for.
        what: ``"ckpt"``, ``"log"`` or ``"json"``.
        url: its URL.

    Returns:
        A checkpoint's own file name; ``<config>_<file name>`` for a log.

    Raises:
        UserError: the URL does not end in a file name.
    """
    name = file_name_of(url)
    return name if what == "ckpt" else f"{config}_{name}"


def cached_published(config: str, what: str = "json", dest_dir: str | os.PathLike | None = None, *,
                     url: str | None = None) -> Path | None:
    """The published file of ``config`` when it is already in the cache, else None; never downloads.

    ``tinlib fetch`` or an earlier download puts files there. Unknown configs and kinds that were
    not published give None as well.

    Args:
        config: a name in :data:`PUBLISHED` (or any name when ``url`` is given).
        what: ``"ckpt"``, ``"log"`` or ``"json"``.
        dest_dir: the cache folder (default: torch's hub cache).
        url: the file's URL when it is not the registry's (a config loaded with overrides).

    Returns:
        The cached file's path, or None.
    """
    if url is None:
        artifacts = PUBLISHED.get(config)
        url = artifacts.url(what) if artifacts is not None and what in ARTIFACT_KINDS else None
    if not url:
        return None
    path = (Path(dest_dir) if dest_dir is not None else hub_checkpoint_dir()) / published_file_name(config, what, url)
    return path if path.is_file() else None


def published_run(config: str) -> str:
    """The results folder name of ``config``'s published checkpoint evaluated here.

    Args:
        config: the zoo config (``make evaluate-published-*``).

    Returns:
        ``<config>_published``, beside the user's own ``<config>``.
    """
    return f"{config}{PUBLISHED_RUN_SUFFIX}"


def hub_checkpoint_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints``: where torch.hub keeps downloaded weights."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def mirrored(url: str) -> str:
    """``url`` with the ``https://download.openmmlab.com`` prefix replaced by ``$TINLIB_DOWNLOAD_MIRROR``.

    Args:
        url: a download URL.

    Returns:
        The mirrored URL, or ``url`` unchanged when the variable is unset or the URL is not under
        that prefix.
    """
    mirror = os.environ.get(MIRROR_ENV, "").strip().rstrip("/")
    if mirror and (url == OPENMMLAB_URL or url.startswith(OPENMMLAB_URL + "/")):
        return mirror + url[len(OPENMMLAB_URL):]
    return url


def file_name_of(url: str) -> str:
    """The cache file name for ``url``: the last component of its path, percent-decoded.

    Args:
        url: a download URL.

    Returns:
        The file name.

    Raises:
        UserError: the URL's path does not end in a file name.
    """
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    if not name or name in {".", ".."}:
        raise UserError(f"{url}: the URL does not end in a file name")
    return name


def expected_hash_prefix(name: str) -> str | None:
    """The sha256 prefix a ``<stem>-<hex>.<ext>`` file name promises.

    Args:
        name: a file name (model-zoo names end in 8 or more hex digits of the file's sha256).

    Returns:
        The lowercase hex digits, or None when the name has no such suffix.
    """
    match = _HASH_SUFFIX.search(name)
    return match.group(1) if match else None


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks of :data:`CHUNK_BYTES`.

    Args:
        path: the file.

    Returns:
        The 64 lowercase hex digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_url(url: str, dest_dir: str | os.PathLike | None = None, *, file_name: str | None = None,
                 verify: bool = False, attempts: int = DEFAULT_ATTEMPTS, retry_wait_s: float = RETRY_WAIT_S) -> Path:
    """Download ``url`` to ``dest_dir/<file name>`` unless it is there.

    The mirror variable applies; bytes arrive in ``<name>.partial``, and an interrupted transfer is
    retried, each attempt resuming from the partial file; the file is renamed into place only
    after its hash (if its name has one) matches.

    Args:
        url: the file's URL.
        dest_dir: the cache folder (default: torch's hub cache).
        file_name: the cached file's name (default: the URL's last path component, whose hash
            suffix, if any, is checked either way).
        verify: re-hash a file already in the cache.
        attempts: transfers tried in all before giving up.
        retry_wait_s: seconds to wait before each retry.

    Returns:
        The final path.

    Raises:
        DownloadError: one line naming the URL and what to do, when the download cannot finish or
            the hash does not match.
        UserError: the URL does not end in a file name.
    """
    expected = expected_hash_prefix(file_name_of(url))
    name = file_name or file_name_of(url)
    dest = Path(dest_dir) if dest_dir is not None else hub_checkpoint_dir()
    target = dest / name
    if target.is_file():
        if verify and expected:
            _check_hash(target, expected, url, delete=False)
        return target
    source = mirrored(url)
    dest.mkdir(parents=True, exist_ok=True)
    with _exclusive(dest / f"{name}.lock"):
        if target.is_file():  # another process finished it while we waited
            return target
        partial = dest / f"{name}.partial"
        log.info("downloading %s to %s", source, target)
        for attempt in range(1, max(1, attempts) + 1):
            try:
                _transfer(source, partial, target)
                break
            except _Interrupted as err:
                have = partial.stat().st_size if partial.exists() else 0
                if attempt >= attempts:
                    raise DownloadError(
                        f"download of {source} was interrupted ({err.reason}) with {_mb(have)} MB in {partial}; "
                        "run the same command again to resume") from None
                log.warning("download of %s interrupted (%s) at %s MB; resuming (attempt %d of %d)",
                            source, err.reason, _mb(have), attempt + 1, attempts)
                time.sleep(retry_wait_s)
        if expected:
            _check_hash(partial, expected, source, delete=True)
        os.replace(partial, target)
    with contextlib.suppress(OSError):
        (dest / f"{name}.lock").unlink()
    log.info("saved %s%s", target, " (sha256 matches its name)" if expected else "")
    return target


# --------------------------------------------------------------------------------------------
# The transfer itself
# --------------------------------------------------------------------------------------------
class _Interrupted(Exception):
    """The connection broke after the response started; the partial file may be resumed."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _transfer(source: str, partial: Path, target: Path) -> None:
    """Fill ``partial`` with the whole body of ``source``, resuming from its current size."""
    offset = partial.stat().st_size if partial.exists() else 0
    response = _open(source, offset, target)
    try:
        status = _status(response)
        total: int | None = None
        if status == 416:  # nothing after `offset`: the partial file may already be complete
            total = _content_range(response.headers.get("Content-Range"))[2]
            if total == offset:
                return
            log.info("%s refused to resume at byte %d (size %s); starting over", source, offset, total)
            response.close()
            offset, total = 0, None
            response = _open(source, 0, target)
            status = _status(response)
        if status == 206:
            start, _, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                log.warning("%s sent bytes from %s instead of %d; starting over", source, start, offset)
                response.close()
                offset, total = 0, None
                response = _open(source, 0, target)
        elif offset:
            log.info("%s ignored the resume request (HTTP %d); starting over from byte 0", source, status)
            offset = 0
        if total is None:
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
        received = _stream(response, partial, offset, total)
    finally:
        response.close()
    if total is not None and offset + received != total:
        raise _Interrupted(f"got {offset + received} of {total} bytes")


def _status(response) -> int:
    return getattr(response, "status", None) or 200  # file:// responses carry no status


def _open(source: str, offset: int, target: Path):
    """Open ``source`` (from byte ``offset`` when > 0). HTTP errors other than 416 for a range
    request, and unreachable servers, raise :class:`DownloadError`."""
    request = urllib.request.Request(source, headers={"User-Agent": _user_agent()})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            return err  # an HTTPError is a response too; the caller reads its Content-Range
        raise DownloadError(f"could not download {source}: HTTP {err.code} {_one_line(err.reason)}; check the URL "
                            f"or config name (and {MIRROR_ENV} if set)") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", None) or err
        raise DownloadError(f"could not reach {source} ({_one_line(reason)}); download it elsewhere and put it at "
                            f"{target}") from None


def _stream(response: BinaryIO, partial: Path, offset: int, total: int | None) -> int:
    """Write the body of ``response`` into ``partial`` from byte ``offset`` on; returns the bytes written."""
    received = 0
    with open(partial, "r+b" if offset else "wb") as handle, \
            _progress(partial.name.removesuffix(".partial"), offset, total) as advance:
        handle.truncate(offset)
        handle.seek(offset)
        try:
            for chunk in _chunks(response):
                handle.write(chunk)
                received += len(chunk)
                advance(len(chunk))
        finally:
            handle.flush()
            os.fsync(handle.fileno())
    return received


def _chunks(response: BinaryIO) -> Iterator[bytes]:
    """The body in pieces; a connection that breaks mid-body raises :class:`_Interrupted`."""
    while True:
        try:
            chunk = response.read(CHUNK_BYTES)
        except (http.client.HTTPException, OSError) as err:  # IncompleteRead, reset, timeout
            raise _Interrupted(_one_line(err) or type(err).__name__) from None
        if not chunk:
            return
        yield chunk


def _content_range(header: str | None) -> tuple[int | None, int | None, int | None]:
    """``bytes a-b/n`` -> (a, b, n); unknown parts are None."""
    match = _CONTENT_RANGE.match((header or "").strip())
    if not match:
        return None, None, None
    first, last, size = match.groups()
    return (int(first) if first else None, int(last) if last else None,
            int(size) if size and size != "*" else None)


def _check_hash(path: Path, expected: str, url: str, delete: bool) -> None:
    actual = sha256_file(path)
    if actual.startswith(expected):
        return
    if delete:
        path.unlink()
        raise DownloadError(f"{url} gave a file with sha256 {actual}, but its name expects {expected}...; "
                            "the download was deleted; run again, or check the server/mirror")
    raise DownloadError(f"cached {path} has sha256 {actual}, but its name expects {expected}...; delete it and "
                        "fetch again")


# --------------------------------------------------------------------------------------------
# Progress and helpers
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _progress(name: str, offset: int, total: int | None):
    """Yields ``advance(n_bytes)``: a tqdm bar on a terminal, periodic log lines otherwise."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        with tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                  file=sys.stderr) as bar:
            yield bar.update
        return
    start = last = time.monotonic()
    done = offset

    def advance(n: int) -> None:
        nonlocal done, last
        done += n
        now = time.monotonic()
        if now - last >= PROGRESS_LOG_INTERVAL_S:
            last = now
            log.info("%s", progress_line(name, done, total, offset, now - start))

    yield advance


def progress_line(name: str, done: int, total: int | None, offset: int, elapsed_s: float) -> str:
    """One progress line of a download, e.g. ``name: 42% (12.0 of 28.6 MB, 3.1 MB/s)``.

    Args:
        name: the file being downloaded.
        done: bytes in the partial file so far.
        total: the file's size in bytes (None or 0 when the server did not say).
        offset: bytes that were already there when this session started (left out of the rate).
        elapsed_s: seconds since this session started.

    Returns:
        The line; without a total, ``name: 12.0 MB (3.1 MB/s)``.
    """
    rate = (done - offset) / max(elapsed_s, 1e-9) / 1e6
    if total:
        return f"{name}: {100 * done / total:.0f}% ({_mb(done)} of {_mb(total)} MB, {rate:.1f} MB/s)"
    return f"{name}: {_mb(done)} MB ({rate:.1f} MB/s)"


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    """Hold an exclusive lock so that processes on one node (e.g. torchrun ranks) do not write the
    same partial file at once; a no-op where ``fcntl`` is missing."""
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


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f}"


def _one_line(obj: object) -> str:
    return " ".join(str(obj).split())


def _user_agent() -> str:
    from tinlib import __version__

    return f"tinlib/{__version__} (+urllib)"


__all__ = [
    "EXTRA_PUBLISHED",
    "MIRROR_ENV",
    "OPENMMLAB_URL",
    "PUBLISHED",
    "PUBLISHED_RUN_SUFFIX",
    "DownloadError",
    "PublishedArtifacts",
    "PublishedRegistry",
    "cached_published",
    "download_url",
    "fetch_published",
    "hub_checkpoint_dir",
    "is_remote",
    "mirrored",
    "published_file_name",
    "published_of_configs",
    "published_run",
    "published_url",
    "resolve_checkpoint",
]
