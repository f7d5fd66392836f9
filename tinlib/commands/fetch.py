"""``tinlib fetch``: download published checkpoints and training logs into torch's hub cache and print
each local path on stdout (``ckpt=$(tinlib fetch CONFIG)``); notes go to stderr. Exit status: 0 done,
2 bad usage (unknown config or kind), 3 download failed (:class:`~tinlib.hub.DownloadError`; run again)."""
from __future__ import annotations

import argparse

from tinlib.cli import command_main

WHAT_CHOICES = ("ckpt", "log", "json", "all")


def build_parser() -> argparse.ArgumentParser:
    from tinlib.hub import MIRROR_ENV, OPENMMLAB_URL

    parser = argparse.ArgumentParser(
        prog="tinlib fetch",
        description="Download a published checkpoint or training log (or any URL) into torch's hub cache "
                    "($TORCH_HOME/hub/checkpoints) and print its local path. A file already there is not "
                    "downloaded again; a download whose sha256 does not match its name is refused.",
        epilog=f"{MIRROR_ENV}=BASE replaces {OPENMMLAB_URL} in every URL (a mirror, or file:///path on a "
               "cluster without internet).")
    parser.add_argument("source", nargs="?",
                        help="config name (see --list), published:CONFIG[:ckpt|log|json], or an http(s) URL")
    parser.add_argument("--what", choices=WHAT_CHOICES, default=None,
                        help="for a config: the checkpoint (ckpt, default), the log, its json, or all of them")
    parser.add_argument("--dir", default=None, help="download into this folder instead of torch's hub cache")
    parser.add_argument("--verify", action="store_true", help="re-hash a file that is already in the cache")
    parser.add_argument("--list", action="store_true", help="list the configs with published artifacts")
    return parser


def _targets(source: str, what: str | None) -> list[tuple[str | None, str]]:
    """What to fetch: ``(config, kind)`` pairs, or ``(None, url)`` for a URL."""
    from tinlib.errors import UserError
    from tinlib.hub import ARTIFACT_KINDS, PUBLISHED, PUBLISHED_SCHEME, is_remote, parse_published, published_url

    if source.startswith(PUBLISHED_SCHEME):
        config, kind = parse_published(source)
        if what is not None and source.count(":") > 1:
            raise UserError(f"give the kind either in {source!r} or with --what, not both")
        kind = what or kind
    elif is_remote(source):
        if what is not None:
            raise UserError("--what applies to a config name; a URL names one file already")
        return [(None, source)]
    else:
        config, kind = source, what or "ckpt"
    if kind == "all":
        published_url(config)  # unknown config -> UserError
        return [(config, k) for k in ARTIFACT_KINDS if PUBLISHED[config].url(k)]
    published_url(config, kind)  # unknown config or kind -> UserError before any download
    return [(config, kind)]


def run(args: argparse.Namespace) -> int:
    """List the published configs, or download what ``args.source`` names and print each local path."""
    from tinlib.errors import UserError
    from tinlib.hub import ARTIFACT_KINDS, PUBLISHED, download_url, fetch_published

    if args.list:
        for name, artifacts in PUBLISHED.items():
            kinds = ", ".join(k for k in ARTIFACT_KINDS if artifacts.url(k))
            print(f"{name}  ({kinds})")
        return 0
    if not args.source:
        raise UserError("name a config, published:CONFIG or a URL to fetch (tinlib fetch --list shows the configs)")
    if args.dir is not None:
        from tinlib.io import check_output_dir

        check_output_dir(args.dir, "--dir")
    for config, kind in _targets(args.source, args.what):
        if config is None:
            path = download_url(kind, args.dir, verify=args.verify)  # `kind` holds the URL
        else:
            path = fetch_published(config, kind, args.dir, verify=args.verify)
        print(path, flush=True)
    return 0


main = command_main("tinlib fetch", build_parser, run)
