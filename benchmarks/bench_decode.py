"""Video decoding speed per backend (ms per clip and clips/s), written to results/benchmarks.md.

One clip = open the video, sample 8 frames as training does (``sample_views``, train mode) and
decode them to RGB uint8, with one thread everywhere. Backends: torchcodec (exact seeking, as tinlib
opens it, and approximate), decord and PyAV through tinlib's readers, and OpenCV's ``VideoCapture``
(reads sequentially up to the last sampled frame); with CUDA also torchcodec on the GPU and batched
JPEG decoding (nvJPEG) of the same 8 frames. Data: the synthetic dataset at the official releases'
sizes (SthV2: VP9 webm, height 240; K400: H.264 mp4, short side 256). Rounds alternate between the
backends; the median round is reported.

Usage: ``python benchmarks/bench_decode.py [--clips N] [--rounds R] [--keep DIR] [--no-write]``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from tinlib.data.decoding import open_video  # noqa: E402
from tinlib.data.gpu_decode import decode_jpegs  # noqa: E402
from tinlib.data.sampling import sample_views  # noqa: E402
from tinlib.data.synthetic import write_synthetic  # noqa: E402
from tinlib.data.video_readers import available_backends  # noqa: E402

SETTINGS = [("SthV2-sized VP9 webm (h 240)", "sthv2", 240), ("K400-sized H.264 mp4 (short side 256)", "k400", 256)]
SEGMENTS = 8


def tinlib_reader(backend: str, device: str = "cpu") -> Callable[[str, np.random.Generator], np.ndarray]:
    def decode(path: str, rng: np.random.Generator) -> np.ndarray:
        clip = open_video(path, backend, device)
        if clip.backend != backend:
            raise RuntimeError(f"{backend} fell back to {clip.backend} on {path}: {clip.fallback_reason}")
        return clip.get(sample_views(len(clip), SEGMENTS, rng=rng)[0])
    return decode


def torchcodec_approximate(path: str, rng: np.random.Generator) -> np.ndarray:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(path, seek_mode="approximate", num_ffmpeg_threads=1, dimension_order="NHWC")
    return decoder.get_frames_at(sorted(set(sample_views(len(decoder), SEGMENTS, rng=rng)[0].tolist()))).data.numpy()


def opencv_capture(path: str, rng: np.random.Generator) -> np.ndarray:
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    wanted, frames = set(sample_views(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), SEGMENTS, rng=rng)[0].tolist()), {}
    for index in range(max(wanted) + 1):
        ok, frame = cap.read()
        if index in wanted and ok:
            frames[index] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    return np.stack(list(frames.values()))


def jpeg_reader(device: str) -> Callable[[str, np.random.Generator], object]:
    """8 of the clip's frames stored as JPEG files beside it (written by :func:`write_jpegs`)."""
    def decode(path: str, rng: np.random.Generator) -> object:
        frames = decode_jpegs(sorted(Path(path + ".jpg").iterdir()), device)
        if device == "cuda":
            torch.cuda.synchronize()
        return frames
    return decode


def write_jpegs(paths: list[str]) -> None:
    for path in paths:
        folder = Path(path + ".jpg")
        folder.mkdir(exist_ok=True)
        clip = open_video(path, "pyav")
        for k, frame in enumerate(clip.get(sample_views(len(clip), SEGMENTS, test_mode=True)[0])):
            cv2.imwrite(str(folder / f"img_{k:05}.jpg"), frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])


def readers() -> dict[str, Callable]:
    out: dict[str, Callable] = {}
    for backend in available_backends():
        out[{"torchcodec": "torchcodec (exact seek: tinlib)", "pyav": "PyAV"}.get(backend, backend)] = \
            tinlib_reader(backend)
        if backend == "torchcodec":
            out["torchcodec (approximate seek)"] = torchcodec_approximate
    out["OpenCV VideoCapture (sequential)"] = opencv_capture
    if torch.cuda.is_available():
        out["torchcodec on cuda (NVDEC)"] = tinlib_reader("torchcodec", "cuda")
        out["8 JPEG frames, decode_jpeg on cuda (nvJPEG)"] = jpeg_reader("cuda")
        out["8 JPEG frames, decode_jpeg on the CPU"] = jpeg_reader("cpu")
    return out


def time_round(decode: Callable, paths: list[str], seed: int) -> float | str:
    """ms per clip over ``paths``, or the error that stopped the backend."""
    rng = np.random.default_rng(abs(seed))
    start = time.perf_counter()
    try:
        for path in paths:
            decode(path, rng)
    except Exception as err:  # noqa: BLE001 -- reported in the table
        return f"fails: {type(err).__name__}: {' '.join(str(err).split())[:80]}"
    return 1000 * (time.perf_counter() - start) / len(paths)


def measure(paths: list[str], rounds: int) -> dict[str, float | str]:
    chosen = readers()
    times: dict[str, list] = {name: [] for name in chosen}
    for decode in chosen.values():  # warm-up: imports, CUDA contexts, the page cache
        time_round(decode, paths, seed=-1)
    for r in range(rounds):
        for name, decode in chosen.items():
            times[name].append(time_round(decode, paths, seed=r))
    return {name: next((t for t in ts if isinstance(t, str)), None) or statistics.median(ts)
            for name, ts in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=24, help="videos per setting, each decoded once per round")
    ap.add_argument("--rounds", type=int, default=5, help="rounds (alternating between the backends); the median")
    ap.add_argument("--keep", help="write the benchmark data here (reused by later runs) instead of a temp dir")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave results/benchmarks.md alone")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="bench_decode_")
    base = Path(args.keep or tmp.name)
    load_before, results = os.getloadavg()[0], {}
    for name, layout, height in SETTINGS:
        meta = write_synthetic(base / f"{layout}_{height}", layout, size="demo", height=height, num_train=args.clips,
                               num_val=1, num_test=1, frames=(24, 40), workers=2)
        prefix = Path(meta["data_prefix"])
        paths = sorted(str(p) for p in prefix.rglob("*") if p.suffix in (".webm", ".mp4"))[:args.clips]
        if torch.cuda.is_available():
            write_jpegs(paths)
        results[name] = measure(paths, args.rounds)
        print(f"[{name}] {len(paths)} videos: {results[name]}", flush=True)
    load_after = os.getloadavg()[0]
    print(markdown := table(results, args, argv, load_before, load_after))
    if not args.no_write:
        from report import write_section

        print(f"wrote {write_section('video-decoding', markdown)}")
    if tmp is not None:
        tmp.cleanup()
    return 0


def table(results: dict, args: argparse.Namespace, argv: list[str] | None, load_before: float,
          load_after: float) -> str:
    from report import load_and_command

    names = list(results)
    lines = ["## Video decoding (`benchmarks/bench_decode.py`)", "",
             f"Open a video, sample {SEGMENTS} frames as training does and decode them to RGB uint8; one thread; "
             f"ms per clip (and clips/s), median of {args.rounds} rounds alternating between the backends, over "
             f"{args.clips} synthetic videos per setting (24-40 frames). `auto` takes the first available of "
             "torchcodec, decord, PyAV (`tinlib/data/video_readers.py`, `AUTO_ORDER`), in this table's order.", "",
             "| backend | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for backend in results[names[0]]:
        cells = [results[n][backend] for n in names]
        lines.append(f"| {backend} | " + " | ".join(c if isinstance(c, str) else f"{c:.1f} ms ({1000 / c:.0f}/s)"
                                                  for c in cells) + " |")
    notes = ["", "tinlib opens torchcodec with exact seeking: the approximate mode takes the frame count from the "
             "header (duration x fps), off by one frame on several of these webm files, which shifts training's "
             "sampling and can ask for a frame past the end. OpenCV is not a tinlib backend: it reads sequentially "
             "up to the last sampled frame (its cost grows with the video's length) and returns BGR."]
    return "\n".join(lines + notes + ["", *load_and_command("bench_decode.py", argv, load_before, load_after)])


if __name__ == "__main__":
    sys.exit(main())
