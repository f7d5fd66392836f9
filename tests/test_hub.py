"""tinlib.hub and ``tinlib fetch`` against a real HTTP server on 127.0.0.1 started here.

The mirror variable points every download.openmmlab.com URL at that server, TORCH_HOME at a
temporary folder, and a guard refuses any connection that is not to the loopback address, so
no test ever reaches the internet.
"""
from __future__ import annotations

import hashlib
import io
import logging
import random
import re
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tinlib import cli, hub
from tinlib.errors import UserError

ZOO = "https://download.openmmlab.com"


# --------------------------------------------------------------------------------------------
# A small file server: cut connections, 404, a slow mode, a request log
# --------------------------------------------------------------------------------------------
class FileServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_after: dict[str, list[int]] = {}  # path -> body bytes sent by the next responses before a hang-up
        self.reset = False  # hang up with a TCP reset instead of an orderly close
        self.delay_s = 0.0
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self._lock = threading.Lock()
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                state._serve(self)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests.append((handler.path, handler.headers.get("Range")))
            cuts = self.cut_after.get(handler.path)
            cut = cuts.pop(0) if cuts else None
        body = self.files.get(handler.path)
        if body is None:
            handler.send_error(404, "Not Found")
            return
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        time.sleep(self.delay_s)
        if cut is None:
            handler.wfile.write(body)
            return
        handler.wfile.write(body[:cut])  # part of the body, then hang up ...
        handler.close_connection = True
        if self.reset:  # ... with a TCP reset (SO_LINGER 0), which the client reads as an error
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.connection.close()
        else:  # ... with an orderly close, which the client reads as the end of the body
            handler.connection.shutdown(socket.SHUT_RDWR)

    def gets(self, path: str) -> list[str | None]:
        """The Range headers of the requests for ``path`` (None: a plain request)."""
        return [rng for p, rng in self.requests if p == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Refuse every connection that is not to 127.0.0.1 (and any proxy from the environment)."""
    import os

    for key in list(os.environ):
        if key.lower().endswith("_proxy"):
            monkeypatch.delenv(key)
    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        if address[0] not in ("127.0.0.1", "localhost"):
            raise AssertionError(f"test tried to reach {address}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)


@pytest.fixture(autouse=True)
def fresh_log_handler():
    """``tinlib.cli.run_command`` binds the tinlib log handler to the stderr of the first call;
    drop it around each test so that log lines reach this test's captured stderr."""
    def drop() -> None:
        root = logging.getLogger("tinlib")
        for handler in [h for h in root.handlers if h.get_name() == "tinlib"]:
            root.removeHandler(handler)

    drop()
    yield
    drop()


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    import torch.hub

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # in case anything called torch.hub.set_dir
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def server(monkeypatch, torch_home):
    srv = FileServer()
    monkeypatch.setenv(hub.MIRROR_ENV, srv.base)
    yield srv
    srv.close()


def zoo_file(server: FileServer, size: int = 2_500_000, seed: int = 0, folder: str = "/mmaction/toy") -> tuple:
    """Serve random bytes under a model-zoo style name ``toy_20200101-<sha256[:8]>.pth``.
    Returns (canonical URL, served path, body)."""
    body = random.Random(seed).randbytes(size)
    name = f"toy_20200101-{hashlib.sha256(body).hexdigest()[:8]}.pth"
    path = f"{folder}/{name}"
    server.files[path] = body
    return f"{ZOO}{path}", path, body


# --------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------
def test_hub_dir_follows_torch_home(torch_home):
    assert hub.hub_checkpoint_dir() == torch_home


def test_download_into_torch_hub_cache_checks_the_name_hash(server, torch_home):
    url, path, body = zoo_file(server)
    got = hub.resolve_checkpoint(url)
    assert got == torch_home / path.rsplit("/", 1)[1]
    assert got.read_bytes() == body
    assert server.gets(path) == [None]
    assert sorted(p.name for p in torch_home.iterdir()) == [got.name]  # no partial or lock file left


def test_cached_file_is_not_downloaded_again(server):
    url, path, body = zoo_file(server)
    first = hub.resolve_checkpoint(url)
    again = hub.resolve_checkpoint(url)
    assert again == first and again.read_bytes() == body
    assert len(server.gets(path)) == 1


def test_file_put_into_the_cache_by_hand_is_used_offline(torch_home, monkeypatch):
    monkeypatch.setenv(hub.MIRROR_ENV, f"http://127.0.0.1:{unused_port()}")
    torch_home.mkdir(parents=True)
    placed = torch_home / "copied_by_hand-0badf00d.pth"
    placed.write_bytes(b"whatever the user copied")
    assert hub.resolve_checkpoint(f"{ZOO}/mmaction/x/{placed.name}") == placed
    with pytest.raises(hub.DownloadError, match="sha256"):  # only on request is it re-hashed
        hub.resolve_checkpoint(f"{ZOO}/mmaction/x/{placed.name}", verify=True)


def test_cut_connection_is_refused_by_the_hash_and_the_next_run_downloads_it_whole(server, torch_home):
    url, path, body = zoo_file(server)
    server.cut_after[path] = [1_200_000]  # the server closes the connection after these bytes
    with pytest.raises(hub.DownloadError) as err:
        hub.download_url(url)
    message = str(err.value)
    short = hashlib.sha256(body[:1_200_000]).hexdigest()
    assert server.base + path in message and short in message and hub.expected_hash_prefix(path) in message
    assert "\n" not in message
    assert list(torch_home.iterdir()) == []  # neither the short file nor a partial or lock file

    assert hub.download_url(url).read_bytes() == body
    assert server.gets(path) == [None, None]  # the whole file again, never a range


def test_reset_connection_is_an_interrupted_download(server, torch_home):
    url, path, body = zoo_file(server)
    server.reset = True
    server.cut_after[path] = [700_000]
    with pytest.raises(hub.DownloadError) as err:
        hub.download_url(url)
    message = str(err.value)
    assert "interrupted" in message and server.base + path in message and "run the same command again" in message
    assert "\n" not in message
    assert list(torch_home.iterdir()) == []
    assert hub.download_url(url).read_bytes() == body


def test_wrong_hash_deletes_the_download_and_names_both_hashes(server, torch_home):
    body = b"not the published weights" * 1000
    actual = hashlib.sha256(body).hexdigest()
    claimed = ("1" if actual[0] != "1" else "2") + actual[1:8]
    path = f"/mmaction/toy/toy_20200101-{claimed}.pth"
    server.files[path] = body
    with pytest.raises(hub.DownloadError) as err:
        hub.resolve_checkpoint(f"{ZOO}{path}")
    message = str(err.value)
    assert server.base + path in message and claimed in message and actual in message
    assert "\n" not in message
    assert list(torch_home.iterdir()) == []  # no partial file and no .lock


def test_interrupted_download_leaves_no_lock_file(server, torch_home, monkeypatch):
    """Ctrl-C mid-transfer: the partial file and the lock file are gone (the lock protected nothing
    left to protect), and the next run downloads the file."""
    import torch.hub

    url, path, body = zoo_file(server)
    real = torch.hub.download_url_to_file

    def interrupted(*args, **kwargs):
        assert [p.suffix for p in torch_home.iterdir()] == [".lock"]  # held while downloading
        raise KeyboardInterrupt

    monkeypatch.setattr(torch.hub, "download_url_to_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        hub.download_url(url)
    assert list(torch_home.iterdir()) == []
    monkeypatch.setattr(torch.hub, "download_url_to_file", real)
    assert hub.download_url(url).read_bytes() == body


def test_http_404_is_one_line_naming_the_url(server):
    with pytest.raises(hub.DownloadError) as err:
        hub.resolve_checkpoint(f"{ZOO}/mmaction/toy/missing-01234567.pth")
    message = str(err.value)
    assert f"{server.base}/mmaction/toy/missing-01234567.pth" in message and "404" in message
    assert "\n" not in message


def test_server_down_names_the_url_and_where_to_put_the_file(torch_home, monkeypatch):
    base = f"http://127.0.0.1:{unused_port()}"
    monkeypatch.setenv(hub.MIRROR_ENV, base)
    with pytest.raises(hub.DownloadError) as err:
        hub.resolve_checkpoint(f"{ZOO}/mmaction/toy/toy-01234567.pth")
    message = str(err.value)
    assert f"could not reach {base}/mmaction/toy/toy-01234567.pth" in message
    assert f"put it at {torch_home / 'toy-01234567.pth'}" in message
    assert "\n" not in message


def test_two_downloaders_of_one_file_fetch_it_once(server):
    url, path, body = zoo_file(server)
    server.delay_s = 0.3  # both start before the first is done
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(hub.download_url(url))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and results[0] == results[1] and results[0].read_bytes() == body
    assert server.gets(path) == [None]


def test_file_url_mirror(tmp_path, torch_home, monkeypatch):
    body = b"log line\n" * 100
    folder = tmp_path / "mirror" / "mmaction" / "toy"
    folder.mkdir(parents=True)
    (folder / "train.log").write_bytes(body)
    monkeypatch.setenv(hub.MIRROR_ENV, (tmp_path / "mirror").as_uri() + "/")
    assert hub.resolve_checkpoint(f"{ZOO}/mmaction/toy/train.log").read_bytes() == body


def test_without_a_terminal_there_is_no_bar_only_log_lines(server, torch_home, capsys):
    url, path, _ = zoo_file(server)
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("tinlib.hub")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        got = hub.download_url(url)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert capsys.readouterr().err == ""  # a batch job's log gets no bar redrawn with carriage returns
    assert lines == [f"downloading {server.base}{path} to {got}", f"saved {got} (sha256 matches its name)"]


def test_without_a_terminal_a_partial_download_is_logged_while_it_grows(tmp_path, caplog):
    target = tmp_path / "model-0123abcd.pth"
    partial = tmp_path / "model-0123abcd.pth.5f3e.partial"  # torch.hub's temporary name
    with caplog.at_level(logging.INFO, logger="tinlib.hub"), hub.log_partial_growth(target, every_s=0.02):
        partial.write_bytes(b"x" * 2_500_000)
        deadline = time.monotonic() + 10
        while "2.5 MB so far" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.01)
    assert f"downloading {target.name}: 2.5 MB so far" in caplog.text


def test_progress_bar_on_a_terminal(server, monkeypatch):
    url, _, body = zoo_file(server)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    hub.download_url(url)
    # tqdm's byte bar: 100% of the size in MiB (unit_divisor 1024), 3 significant digits
    assert "100%" in terminal.getvalue() and f"{len(body) / 2**20:.2f}M" in terminal.getvalue()


# --------------------------------------------------------------------------------------------
# Specs, the registry, the mirror
# --------------------------------------------------------------------------------------------
def test_local_paths_pass_through_and_missing_ones_are_user_errors(tmp_path):
    existing = tmp_path / "model.pth"
    existing.write_bytes(b"w")
    assert hub.resolve_checkpoint(existing) == existing
    assert hub.resolve_checkpoint(str(existing)) == existing
    with pytest.raises(UserError, match=re.escape(str(tmp_path / "nope.pth"))):
        hub.resolve_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(UserError, match="torchvision://resnet50"):
        hub.resolve_checkpoint("torchvision://resnet50")


def test_published_urls_are_the_model_zoo_addresses():
    # The MMAction2 0.x TIN model zoo (and the TSM Kinetics-400 checkpoint its fine-tune starts from).
    tin = f"{ZOO}/mmaction/recognition/tin"
    assert hub.published_url("tin_r50_1x1x8_40e_sthv1_rgb") == \
        f"{tin}/tin_r50_1x1x8_40e_sthv1_rgb/tin_r50_1x1x8_40e_sthv1_rgb_20200729-4a33db86.pth"
    assert hub.published_url("tin_r50_1x1x8_40e_sthv2_rgb", "log") == \
        f"{tin}/tin_r50_1x1x8_40e_sthv2_rgb/20200912_225451.log"
    assert hub.published_url("tin_tsm_finetune_r50_1x1x8_50e_kinetics400_rgb", "json") == \
        f"{tin}/tin_tsm_finetune_r50_1x1x8_50e_kinetics400_rgb/20200809_142447.log.json"
    assert hub.published_url("tsm_r50_1x1x8_50e_kinetics400_rgb") == \
        (f"{ZOO}/mmaction/recognition/tsm/tsm_r50_1x1x8_50e_kinetics400_rgb/"
         "tsm_r50_1x1x8_50e_kinetics400_rgb_20200607-af7fb746.pth")
    with pytest.raises(UserError, match="no log file was published"):
        hub.published_url("tsm_r50_1x1x8_50e_kinetics400_rgb", "log")
    with pytest.raises(UserError, match="tin_r50_1x1x8_40e_sthv1_rgb"):  # lists the known configs
        hub.published_url("tin_r50_typo")


def test_mirror_replaces_only_the_openmmlab_prefix(monkeypatch):
    monkeypatch.setenv(hub.MIRROR_ENV, "http://mirror.local/openmmlab/")
    assert hub.mirrored(f"{ZOO}/mmaction/a.pth") == "http://mirror.local/openmmlab/mmaction/a.pth"
    assert hub.mirrored("https://example.org/a.pth") == "https://example.org/a.pth"
    assert hub.mirrored("https://download.openmmlab.com.evil/a.pth") == "https://download.openmmlab.com.evil/a.pth"
    monkeypatch.delenv(hub.MIRROR_ENV)
    assert hub.mirrored(f"{ZOO}/mmaction/a.pth") == f"{ZOO}/mmaction/a.pth"


def test_published_spec_downloads_through_the_mirror(server, torch_home, monkeypatch):
    log_path = "/mmaction/recognition/tin/tin_r50_1x1x8_40e_sthv1_rgb/20200729_034132.log"
    server.files[log_path] = b"epoch 1 ...\n"
    got = hub.resolve_checkpoint("published:tin_r50_1x1x8_40e_sthv1_rgb:log")
    assert got.read_bytes() == b"epoch 1 ...\n"
    # a log's published name is a bare timestamp; the cache name says whose log it is
    assert got == torch_home / "tin_r50_1x1x8_40e_sthv1_rgb_20200729_034132.log"
    assert server.gets(log_path) == [None]

    # The real checkpoint name promises sha256 4a33db86...; the stand-in served here does not match.
    ckpt_path = ("/mmaction/recognition/tin/tin_r50_1x1x8_40e_sthv1_rgb/"
                 "tin_r50_1x1x8_40e_sthv1_rgb_20200729-4a33db86.pth")
    server.files[ckpt_path] = b"stand-in"
    with pytest.raises(hub.DownloadError, match=re.escape(f"{server.base}{ckpt_path} gave")):
        hub.resolve_checkpoint("published:tin_r50_1x1x8_40e_sthv1_rgb")

    url, _, body = zoo_file(server, folder="/mmaction/recognition/tin/toy_config")
    monkeypatch.setitem(hub.PUBLISHED, "toy_config", hub.PublishedArtifacts(checkpoint=url))
    assert hub.resolve_checkpoint("published:toy_config").read_bytes() == body


# --------------------------------------------------------------------------------------------
# tinlib fetch
# --------------------------------------------------------------------------------------------
@pytest.fixture
def toy_config(server, monkeypatch):
    url, path, body = zoo_file(server, size=50_000, folder="/mmaction/recognition/tin/toy_config")
    server.files["/mmaction/recognition/tin/toy_config/train.log"] = b"log"
    server.files["/mmaction/recognition/tin/toy_config/train.log.json"] = b"{}"
    folder = f"{ZOO}/mmaction/recognition/tin/toy_config/"
    monkeypatch.setitem(hub.PUBLISHED, "toy_config", hub.PublishedArtifacts(
        checkpoint=url, log=folder + "train.log", log_json=folder + "train.log.json"))
    return path.rsplit("/", 1)[1], body


def test_fetch_prints_the_local_paths(toy_config, torch_home, capsys):
    name, body = toy_config
    assert cli.main(["fetch", "toy_config"]) == 0
    assert capsys.readouterr().out.splitlines() == [str(torch_home / name)]
    assert (torch_home / name).read_bytes() == body
    assert cli.main(["fetch", "toy_config", "--what", "all"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        str(torch_home / n) for n in (name, "toy_config_train.log", "toy_config_train.log.json")]
    assert cli.main(["fetch", "published:toy_config:json"]) == 0
    assert capsys.readouterr().out.splitlines() == [str(torch_home / "toy_config_train.log.json")]
    assert (torch_home / "toy_config_train.log.json").read_bytes() == b"{}"


def test_fetch_into_a_chosen_folder(toy_config, tmp_path, capsys):
    name, body = toy_config
    assert cli.main(["fetch", "toy_config", "--dir", str(tmp_path / "weights")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "weights" / name)
    assert (tmp_path / "weights" / name).read_bytes() == body


def test_fetch_list(capsys):
    assert cli.main(["fetch", "--list"]) == 0
    out = capsys.readouterr().out
    assert "tin_r50_1x1x8_40e_sthv1_rgb  (ckpt, log, json)" in out
    assert "tsm_r50_1x1x8_50e_kinetics400_rgb  (ckpt)" in out


@pytest.mark.parametrize("argv, code, words", [
    (["fetch", "no_such_config"], 2, ["no published artifacts for config 'no_such_config'"]),
    (["fetch"], 2, ["--list"]),
    (["fetch", f"{ZOO}/mmaction/toy/a.pth", "--what", "log"], 2, ["--what"]),
    (["fetch", "tsm_r50_1x1x8_50e_kinetics400_rgb", "--what", "log"], 2, ["no log file was published"]),
    (["fetch", f"{ZOO}/mmaction/toy/missing.pth"], 4, ["/mmaction/toy/missing.pth", "HTTP 404"]),
])
def test_fetch_errors_are_one_line_with_an_exit_status(server, capsys, argv, code, words):
    assert cli.main(argv) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = [line for line in captured.err.splitlines() if "error: " in line]
    assert len(errors) == 1 and errors[0].startswith("tinlib fetch: error: ")
    assert captured.err.strip().splitlines()[-1] == errors[0] and "Traceback" not in captured.err
    for word in words:
        assert word in errors[0]


def test_fetch_with_the_server_down_exits_4_and_says_where_to_put_the_file(torch_home, monkeypatch, capsys):
    monkeypatch.setenv(hub.MIRROR_ENV, f"http://127.0.0.1:{unused_port()}")
    assert cli.main(["fetch", "tsm_r50_1x1x8_50e_kinetics400_rgb"]) == 4  # docs/bad-inputs.md: download failed
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("tinlib fetch: error: could not reach http://127.0.0.1:")
    assert err.endswith(f"put it at {torch_home / 'tsm_r50_1x1x8_50e_kinetics400_rgb_20200607-af7fb746.pth'}")
