"""The embedded synthetic temporal dataset: Something-Something-like classes that need time order.

Design
------
Every video shows one scene (smooth two-colour background with static clutter, per-frame sensor
noise, a little camera jitter) and an object (random shape, colour and size). Classes differ by
what happens over time:

* four **time-reversal pairs**: left->right / right->left, up / down, towards / away from the
  camera (growing / shrinking), light turning on / off. The second class of a pair is rendered
  by drawing a video of the first class's generator and playing it backwards, so both classes
  have *exactly* the same distribution of individual frames; only the order tells them apart.
  A model that pools per-frame features without temporal interaction (TSN) is at chance
  between the two classes of a pair, while TSM/TIN can learn the direction from 8 segments.
* non-reversal classes: holding an object still, shaking it (fast oscillation: no net
  direction), and several objects side by side (an appearance class even TSN can learn).

Videos vary in length, aspect ratio, speed, object size, colours, backgrounds, noise level and
distractors, so no single pixel or frame statistic gives the class away.

Layouts (``write_synthetic(root, layout)``) mimic the official releases so that the preparation
code (``tinlib.data.prepare``) runs on them unchanged: ``sthv1`` (JPEG folders ``<id>/00001.jpg``,
height 100, ``;``-separated CSVs), ``sthv2`` (``<id>.webm`` VP8/VP9 videos and the JSON files),
``k400`` (``videos_{train,val}/<class>/<youtube_id>_<start>_<end>.mp4`` and CSVs). The K400
layout leaves out the left/right pair because Kinetics-style training flips frames horizontally.
Everything is deterministic given ``seed`` (pixels of every frame; encoded files are byte-equal
for a given codec build).

The command line is ``tinlib prepare synthetic ...`` (:mod:`tinlib.commands.prepare`).
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import string
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tinlib.errors import UserError
from tinlib.io import atomic_write_json, atomic_write_text
from tinlib.progress import track
from tinlib.records import ListSet, RecordError, SyntheticMeta

from . import prepare
from .releases import K400, RELEASES, STHV1, STHV2, SYNTHETIC, normalize_k400_label, sthv2_label_name

__all__ = ["CLASSES", "PRESETS", "LAYOUTS", "SynthClass", "SyntheticError", "classes_for", "render_video",
           "write_synthetic", "write_synthetic_meta", "video_codec", "write_video"]

log = logging.getLogger(__name__)

LAYOUTS = SYNTHETIC.layouts
FPS = SYNTHETIC.fps
META_NAME = SyntheticMeta.FILENAME
assert META_NAME == SYNTHETIC.meta_file
MIN_HEIGHT = 16  # pixels; smaller frames leave the objects a few pixels wide
# bumped when the same parameters write different data (2: the held-out test split), so that an
# older dataset is rewritten instead of reused
PARAMS_VERSION = 2


class SyntheticError(UserError, ValueError):
    """A bad option of the synthetic dataset or an output folder it must not overwrite; the
    message names the option or folder and what to do. (A ValueError too, for callers of the
    Python API.)"""


@dataclass(frozen=True)
class SynthClass:
    """One class: ``template`` (Something-Something V2 style, ``[...]`` placeholders), ``k400`` name,
    the ``motion`` generator and whether the video is played backwards (``reverse``)."""

    template: str
    k400: str
    motion: str
    reverse: bool = False
    flip_sensitive: bool = False

    @property
    def name(self) -> str:
        """The label as Something-Something lists it (template without brackets)."""
        return sthv2_label_name(self.template)

    @property
    def k400_name(self) -> str:
        """The label as Kinetics class folders and the class index name it."""
        return normalize_k400_label(self.k400)


CLASSES: tuple[SynthClass, ...] = (
    SynthClass("Moving [something] from left to right", "moving something left to right", "horizontal",
               flip_sensitive=True),
    SynthClass("Moving [something] from right to left", "moving something right to left", "horizontal",
               reverse=True, flip_sensitive=True),
    SynthClass("Moving [something] up", "moving something up", "vertical"),
    SynthClass("Moving [something] down", "moving something down", "vertical", reverse=True),
    SynthClass("Moving [something] towards the camera", "moving something towards the camera", "scale"),
    SynthClass("Moving [something] away from the camera", "moving something away from the camera", "scale",
               reverse=True),
    SynthClass("Turning the light on over [something]", "turning the light on", "light"),
    SynthClass("Turning the light off over [something]", "turning the light off", "light", reverse=True),
    SynthClass("Holding [something] still", "holding something (still)", "static"),
    SynthClass("Shaking [something]", "shaking something", "shake"),
    SynthClass("Showing [several things] side by side", "showing several things", "several"),
)

# size presets: videos per class in each split (train, val for validation during training, the
# held-out test split), frames per video, frame height per layout
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(per_class_train=2, per_class_val=1, per_class_test=1, frames=(8, 14),
                 height={"sthv1": 48, "sthv2": 48, "k400": 48}),
    "demo": dict(per_class_train=60, per_class_val=20, per_class_test=20, frames=(16, 36),
                 height={"sthv1": 100, "sthv2": 96, "k400": 96}),
    "large": dict(per_class_train=200, per_class_val=50, per_class_test=50, frames=(24, 48),
                  height={"sthv1": 100, "sthv2": 240, "k400": 256}),
}

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "hexagon")
COLOR_NAMES = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink")


def classes_for(layout: str) -> list[SynthClass]:
    """The classes written for ``layout`` (K400: without the flip-sensitive left/right pair)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return [c for c in CLASSES if not (layout == "k400" and c.flip_sensitive)]


# ----------------------------------------------------------------------------------- rendering
def _hue_color(hue: float, sat: float, val: float) -> tuple[int, int, int]:
    hsv = np.array([[[int(hue * 180) % 180, int(sat * 255), int(val * 255)]]], dtype=np.uint8)
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Static scene ``[h, w, 3]`` float32: a two-colour gradient with blurred low-contrast clutter."""
    c0, c1 = rng.uniform(40, 200, size=3), rng.uniform(40, 200, size=3)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    proj = (xx / w - 0.5) * math.cos(angle) + (yy / h - 0.5) * math.sin(angle)
    t = (proj - proj.min()) / max(float(np.ptp(proj)), 1e-6)
    img = (c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]).astype(np.float32)
    clutter = img.copy()
    for _ in range(int(rng.integers(3, 8))):
        color = tuple(float(v) for v in rng.uniform(30, 220, size=3))
        center = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        axes = (int(rng.uniform(0.05, 0.3) * w), int(rng.uniform(0.05, 0.3) * h))
        cv2.ellipse(clutter, center, axes, float(rng.uniform(0, 180)), 0, 360, color, -1)
    alpha = float(rng.uniform(0.1, 0.25))
    img = (1 - alpha) * img + alpha * clutter
    k = 2 * int(max(1, h // 40)) + 1
    return cv2.GaussianBlur(img, (k, k), 0)


def _draw(img: np.ndarray, shape: str, cx: float, cy: float, r: float, color, angle: float) -> None:
    """Draw a filled anti-aliased ``shape`` of half-size ``r`` centred at (cx, cy) (sub-pixel)."""
    s = 16  # 4 fractional bits
    outline = tuple(0.5 * c for c in color)
    if shape == "circle":
        cv2.circle(img, (int(cx * s), int(cy * s)), int(r * s), color, -1, cv2.LINE_AA, 4)
        cv2.circle(img, (int(cx * s), int(cy * s)), int(r * s), outline, max(1, int(r / 6)), cv2.LINE_AA, 4)
        return
    if shape == "cross":
        arm = np.array([[-1, -0.35], [1, -0.35], [1, 0.35], [-1, 0.35]])
        polys = [arm, arm[:, ::-1]]
    else:
        sides = {"square": 4, "triangle": 3, "diamond": 4, "hexagon": 6}[shape]
        phase = math.pi / 4 if shape == "square" else 0.0
        t = phase + np.arange(sides) * 2 * math.pi / sides
        polys = [np.stack([np.cos(t), np.sin(t)], 1) * (1.0 if shape != "diamond" else np.array([0.7, 1.0]))]
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    pts = [((p @ rot.T) * r + np.array([cx, cy])) * s for p in polys]
    pts = [np.round(p).astype(np.int32).reshape(-1, 1, 2) for p in pts]
    for p in pts:  # one call per polygon: overlapping polygons in one call would cancel out
        cv2.fillPoly(img, [p], color, cv2.LINE_AA, 4)
    if shape != "cross":
        cv2.polylines(img, pts, True, outline, max(1, int(r / 6)), cv2.LINE_AA, 4)


def _object(rng: np.random.Generator, h: int, shapes=SHAPES) -> dict[str, Any]:
    hue = float(rng.uniform(0, 1))
    return dict(shape=str(rng.choice(shapes)), color=_hue_color(hue, rng.uniform(0.6, 1.0), rng.uniform(0.7, 1.0)),
                color_name=COLOR_NAMES[int(hue * len(COLOR_NAMES)) % len(COLOR_NAMES)],
                angle=float(rng.uniform(0, 2 * math.pi)), r=float(rng.uniform(0.12, 0.18) * h))


def render_video(motion: str, rng: np.random.Generator, height: int, num_frames: int, width: int | None = None,
                 reverse: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """Render one video of ``motion`` (see ``CLASSES``): ``[num_frames, height, width, 3]`` RGB uint8.

    ``reverse`` plays the same rendering backwards (the time-reversed class of a pair). Returns the
    frames and a small description (object shape/colour, for annotation sentences).
    """
    h, n = int(height), int(num_frames)
    w = int(width) if width else 2 * int(round(h * rng.uniform(1.25, 1.6) / 2))
    bg = _background(rng, h, w)
    main_object = _object(rng, h)
    obj: dict[str, Any] | None = main_object  # None for "several": no single moving object
    # the action happens in a square-ish region around the centre, so centre crops keep it
    cx0, cy0 = w / 2 + rng.uniform(-0.08, 0.08) * w, h / 2 + rng.uniform(-0.05, 0.05) * h
    u = np.linspace(0.0, 1.0, n)
    jit = rng.normal(0, 0.01 * h, size=(n, 2))  # small per-frame wobble of the object
    gain = np.ones(n)
    extra: list[dict[str, Any]] = []
    if rng.random() < 0.25 and motion != "several":  # a static distractor
        d = _object(rng, h)
        d.update(r=d["r"] * 0.6, x=float(rng.uniform(0.05, 0.95) * w), y=float(rng.uniform(0.1, 0.9) * h))
        extra.append(d)
    r = np.full(n, main_object["r"])
    if motion == "horizontal":
        xa, xb = cx0 - rng.uniform(0.3, 0.45) * h, cx0 + rng.uniform(0.3, 0.45) * h
        xs, ys = xa + (xb - xa) * u, np.full(n, cy0 + rng.uniform(-0.2, 0.2) * h)
    elif motion == "vertical":
        ya, yb = rng.uniform(0.78, 0.88) * h, rng.uniform(0.12, 0.22) * h
        xs, ys = np.full(n, cx0 + rng.uniform(-0.25, 0.25) * h), ya + (yb - ya) * u
    elif motion == "scale":
        r0, r1 = rng.uniform(0.06, 0.08) * h, rng.uniform(0.34, 0.42) * h
        r = r0 * (r1 / r0) ** u
        xs, ys = np.full(n, cx0 + rng.uniform(-0.1, 0.1) * h), np.full(n, cy0 + rng.uniform(-0.05, 0.05) * h)
    elif motion == "light":
        g0 = rng.uniform(0.2, 0.4)
        gain = g0 + (1 - g0) * u
        xs, ys = np.full(n, cx0 + rng.uniform(-0.25, 0.25) * h), np.full(n, cy0 + rng.uniform(-0.2, 0.2) * h)
    elif motion == "static":
        xs, ys = np.full(n, cx0 + rng.uniform(-0.3, 0.3) * h), np.full(n, cy0 + rng.uniform(-0.2, 0.2) * h)
    elif motion == "shake":
        # jerky back-and-forth without net displacement: an independent offset per frame, so any
        # choice of sampled frames shows movement (a periodic shake could alias to "still")
        amp = rng.uniform(0.22, 0.3) * h
        xs = cx0 + rng.uniform(-0.15, 0.15) * h + amp * rng.uniform(-1, 1, size=n)
        ys = cy0 + rng.uniform(-0.2, 0.2) * h + 0.25 * amp * rng.uniform(-1, 1, size=n)
    elif motion == "several":
        for _ in range(int(rng.integers(4, 7))):
            d = _object(rng, h)
            d.update(r=d["r"] * rng.uniform(0.6, 0.85), x=float(cx0 + rng.uniform(-0.45, 0.45) * h),
                     y=float(cy0 + rng.uniform(-0.35, 0.35) * h))
            extra.append(d)
        obj = None
        xs = ys = np.zeros(n)
    else:
        raise ValueError(f"unknown motion {motion!r}")
    noise_sigma = rng.uniform(2.0, 5.0)
    shifts = rng.integers(-1, 2, size=(n, 2)) * (rng.random(size=(n, 1)) < 0.5)
    frames = np.empty((n, h, w, 3), np.uint8)
    for t in range(n):
        img = bg.copy()
        for d in extra:
            _draw(img, d["shape"], d["x"], d["y"], d["r"], d["color"], d["angle"])
        if obj is not None:
            _draw(img, obj["shape"], xs[t] + jit[t, 0], ys[t] + jit[t, 1], r[t], obj["color"], obj["angle"])
        if shifts[t].any():
            img = np.roll(img, (int(shifts[t, 0]), int(shifts[t, 1])), axis=(0, 1))
        if gain[t] != 1.0:
            img *= np.float32(gain[t])
        noise = rng.standard_normal(size=img.shape, dtype=np.float32)
        noise *= np.float32(noise_sigma)
        img += noise
        img += np.float32(0.5)
        np.clip(img, 0, 255, out=img)
        frames[t] = img
    if reverse:
        frames = frames[::-1].copy()
    desc = obj if obj is not None else dict(shape="things", color_name="several")
    return frames, {"shape": desc["shape"], "color": desc["color_name"]}


# ------------------------------------------------------------------------------------- writing
def _encoder_works(codec: str, container: str) -> bool:
    """Encode two tiny frames in memory: an encoder can be listed yet fail to open (e.g. when
    decord's bundled FFmpeg was loaded before PyAV's)."""
    import io

    import av
    from av.video.stream import VideoStream

    try:
        buf = io.BytesIO()
        with av.open(buf, "w", format=container) as out:
            stream = out.add_stream(codec, rate=FPS)
            assert isinstance(stream, VideoStream)
            stream.height, stream.width, stream.pix_fmt = 16, 16, "yuv420p"
            for _ in range(2):
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8),
                                                                       format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        return buf.tell() > 0
    except Exception:
        return False


def video_codec(container: str) -> str:
    """A working PyAV encoder for ``container`` ('mp4' or 'webm'), the official codec first."""
    prefs = {"mp4": ("libx264", "h264", "mpeg4"), "webm": ("libvpx-vp9", "libvpx", "vp9", "vp8")}[container]
    for name in prefs:
        if _encoder_works(name, container):
            return name
    raise RuntimeError(f"none of the encoders {prefs} works for .{container} in this PyAV build; install a PyAV "
                       "wheel with libx264/libvpx (pip install av), and import av (or tinlib.data.decoding) "
                       "before decord")


def _encoder_options(codec: str) -> tuple[dict[str, Any], int | None]:
    if codec in ("libx264", "h264"):
        return {"crf": "18", "preset": "ultrafast", "threads": "1"}, None
    if codec.startswith("libvpx") or codec in ("vp8", "vp9"):
        return {"crf": "10", "deadline": "realtime", "cpu-used": "8", "threads": "1"}, 2_000_000
    return {"qscale": "3"}, 2_000_000


def write_video(path: str | os.PathLike, frames: np.ndarray, codec: str, fps: int = FPS) -> None:
    """Encode RGB ``[T, H, W, 3]`` (even H and W) to ``path`` with PyAV, via a temporary file.

    Uses fast, high-quality encoder settings; if the encoder rejects them, its defaults."""
    import av
    from av.video.stream import VideoStream

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    options, bit_rate = _encoder_options(codec)
    for attempt in (0, 1):
        try:
            with av.open(str(tmp), "w") as container:
                stream = container.add_stream(codec, rate=fps)
                assert isinstance(stream, VideoStream)
                stream.height, stream.width = frames.shape[1:3]
                stream.pix_fmt = "yuv420p"
                if attempt == 0:
                    stream.options = options
                if bit_rate:
                    stream.bit_rate = bit_rate
                for frame in frames:
                    image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                    for packet in stream.encode(image):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
            break
        except av.error.ArgumentError:
            if attempt:
                raise
    os.replace(tmp, path)


def _write_frames(folder: Path, frames: np.ndarray, tmpl: str) -> None:
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for k, frame in enumerate(frames, start=1):
        if not cv2.imwrite(str(tmp / tmpl.format(k)), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 90]):
            raise OSError(f"cv2.imwrite failed for {tmp / tmpl.format(k)}")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def _render_task(task: dict[str, Any]) -> dict[str, Any]:
    """Worker: render sample ``task`` and write it where the layout wants it."""
    rng = np.random.default_rng(task["seed_seq"])
    n = int(rng.integers(task["frames"][0], task["frames"][1] + 1))
    frames, desc = render_video(task["motion"], rng, task["height"], n, width=task.get("width"),
                                reverse=task["reverse"])
    if task["kind"] == "rawframes":
        _write_frames(Path(task["out"]), frames, task["tmpl"])
    else:
        write_video(task["out"], frames, task["codec"])
    return {"index": task["index"], "num_frames": n, **desc}


def _ytid(rng: np.random.Generator) -> str:
    alphabet = string.ascii_letters + string.digits + "-_"
    return "".join(alphabet[int(i)] for i in rng.integers(0, len(alphabet), size=11))


def _run_tasks(tasks: list[dict[str, Any]], workers: int, progress: bool) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with track(total=len(tasks), desc="writing the synthetic videos", unit="videos", enabled=progress) as bar:
        if workers <= 1:
            for task in tasks:
                results.append(_render_task(task))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for res in pool.map(_render_task, tasks, chunksize=max(1, len(tasks) // (8 * workers))):
                    results.append(res)
                    bar.update()
    return sorted(results, key=lambda r: r["index"])


_COUNT_OPTIONS = {"train": "num_train", "val": "num_val", "test": "num_test"}


def _params(layout: str, preset: str, counts: dict[str, int | None], seed: int, height: int | None,
            frames: tuple[int, int] | None) -> dict[str, Any]:
    """The parameters the dataset is written with (stored in the meta, compared to reuse it);
    SyntheticError naming the option and what to give for a bad value."""
    if layout not in LAYOUTS:
        raise SyntheticError(f"layout must be one of {', '.join(LAYOUTS)} (--layout), got {layout!r}")
    if preset not in PRESETS:
        raise SyntheticError(f"size must be one of {', '.join(sorted(PRESETS))} (--size), got {preset!r}")
    p = PRESETS[preset]
    k = len(classes_for(layout))
    sizes = {}
    for split in SYNTHETIC.splits:
        given = counts.get(split)
        n = int(given) if given is not None else p[f"per_class_{split}"] * k
        if n < 1:
            option = _COUNT_OPTIONS[split]
            raise SyntheticError(f"--{option.replace('_', '-')} {n}: every split needs at least one video; give a "
                                 f"positive count ({option}=...), or leave it out for the '{preset}' size's "
                                 f"{p[f'per_class_{split}'] * k}")
        sizes[split] = n
    lo, hi = frames or p["frames"]
    h = int(height or p["height"][layout])
    if h < MIN_HEIGHT:
        raise SyntheticError(f"--height {h}: frames must be at least {MIN_HEIGHT} pixels high")
    if layout != "sthv1" and h % 2:
        raise SyntheticError(f"--height {h}: video frames must have an even height (yuv420p encoding); give "
                             f"{h + 1} or {h - 1}")
    if lo < 1 or hi < lo:
        raise SyntheticError(f"frames must be (min, max) with 1 <= min <= max, got {(lo, hi)}")
    return dict(layout=layout, size=preset, seed=int(seed), height=h, frames=[int(lo), int(hi)],
                num_train=sizes["train"], num_val=sizes["val"], num_test=sizes["test"], version=PARAMS_VERSION)


def _reusable(meta_path: Path, params: dict[str, Any]) -> SyntheticMeta | None:
    """The meta of a dataset already written with ``params`` whose lists are all there, else None."""
    try:
        meta = SyntheticMeta.read_optional(meta_path)
    except RecordError as err:
        log.warning("%s; writing the dataset again", err)
        return None
    if meta is None or meta.params != params:
        return None
    lists = [meta.train_list, meta.val_list, meta.test_list]
    return meta if all(lst and Path(lst).exists() for lst in lists) else None


def _clear_output(root: Path, overwrite: bool) -> None:
    """Make ``root`` an empty folder: refuse (SyntheticError) to delete anything that is not a
    synthetic dataset unless ``overwrite``."""
    if root.exists() and not root.is_dir():
        raise SyntheticError(f"{root} is a file, not a folder; choose another --out")
    if root.is_dir() and any(root.iterdir()):
        if not (overwrite or (root / META_NAME).exists()):
            raise SyntheticError(f"{root} is not empty and holds no synthetic dataset written by tinlib; choose an "
                                 "empty or new --out folder, or pass --overwrite (overwrite=True) to delete its "
                                 "contents and write the dataset there")
        log.info(f"replacing the synthetic dataset in {root}" if (root / META_NAME).exists() else
                 f"deleting the contents of {root} (--overwrite)")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)


def write_synthetic(root: str | os.PathLike, layout: str = "sthv1", *, num_train: int | None = None,
                    num_val: int | None = None, num_test: int | None = None, seed: int = 0, size: str = "demo",
                    height: int | None = None, frames: tuple[int, int] | None = None, workers: int | None = None,
                    extract_frames: bool = False, overwrite: bool = False, progress: bool = False) -> dict[str, Any]:
    """Write the synthetic dataset in ``layout`` under ``root`` and build its MMAction2 lists.

    Three splits: ``train``, ``val`` (validation during training) and a held-out ``test`` split
    (what the demo configs evaluate on), each with its own videos, balanced over the classes.
    ``size`` is a preset (``tiny``, ``demo``, ``large``: videos per class and split, frames per
    video and frame height, see :data:`PRESETS`); ``num_train``/``num_val``/``num_test``/``height``/
    ``frames`` override it. Classes are balanced (round robin, shuffled). The release's annotation
    files are written too (train/val under their official names, test as
    :attr:`tinlib.data.releases.Synthetic.test_files`) and the lists are built from them with
    ``tinlib.data.prepare`` (as for the real datasets), e.g. ``sthv1_test_list_rawframes.txt``.
    With ``extract_frames`` (video layouts) frames are also extracted and rawframe lists built.

    If ``root`` already holds a dataset written with the same parameters it is reused
    (``overwrite`` forces a rewrite); a folder holding anything else is refused unless ``overwrite``.
    With ``progress``, a bar on a terminal, else a line at least every 30 s.

    Returns:
        the :class:`tinlib.records.SyntheticMeta` stored in ``root/synthetic_meta.json``, as a dict:
        ``kind``, ``train_list``/``val_list``/``test_list``, ``data_prefix``, ``filename_tmpl``,
        ``start_index`` (what to pass to ``build_dataset``), ``lists`` (the same per format, with
        ``test`` and ``test_data_prefix``), ``counts`` (videos per split), ``class_names``,
        ``num_classes``, ``reversal_pairs`` (index pairs), ``reversal_classes``, ``flip_ok``, the
        parameters and ``seconds`` (time taken to write).

    Raises:
        SyntheticError: a bad option (count below 1, odd video height, unknown layout or size) or
            an output folder holding other files; the message names it and what to do.
    """
    root = Path(root)
    params = _params(layout, size, {"train": num_train, "val": num_val, "test": num_test}, seed, height, frames)
    params["extract_frames"] = bool(extract_frames)
    if workers is not None and workers < 1:
        raise SyntheticError(f"--workers {workers}: give at least 1 process")
    meta_path = root / META_NAME
    if not overwrite:
        existing = _reusable(meta_path, params)
        if existing is not None:
            return existing.to_dict()
    _clear_output(root, overwrite)
    start = time.perf_counter()
    classes = classes_for(layout)
    k = len(classes)
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    master = np.random.default_rng([params["seed"], 7])
    samples = []  # (split, index in split, class)
    for code, split in enumerate(SYNTHETIC.splits):
        labels = np.arange(params[_COUNT_OPTIONS[split]]) % k
        np.random.default_rng([params["seed"], 11, code]).shuffle(labels)
        samples += [(split, i, int(c)) for i, c in enumerate(labels)]
    total = len(samples)
    ids = (master.permutation(total) + 1).tolist()
    tasks, entries = [], []
    codec = video_codec("webm") if layout == "sthv2" else video_codec("mp4")
    for g, (split, i, c) in enumerate(samples):
        cls = classes[c]
        task = dict(index=g, seed_seq=[params["seed"], 13, g], motion=cls.motion, reverse=cls.reverse,
                    height=params["height"], frames=params["frames"])
        media = root / RELEASES[layout].media_dir(split)  # sthv1: frame folders; sthv2: videos; k400: per split
        if layout == "sthv1":
            vid = str(ids[g])
            task.update(kind="rawframes", out=str(media / vid), tmpl=STHV1.frame_template)
        elif layout == "sthv2":
            vid = str(ids[g])
            task.update(kind="videos", out=str(media / f"{vid}.webm"), codec=codec)
        else:
            begin = int(master.integers(0, 290))
            vid = f"{_ytid(master)}_{begin:06d}_{begin + 10:06d}"
            task.update(kind="videos", out=str(media / cls.k400_name / f"{vid}.mp4"), codec=codec, width=2 * int(
                round(params["height"] * (16 / 9 if master.random() < 0.5 else 4 / 3) / 2)), begin=begin)
        Path(task["out"]).parent.mkdir(parents=True, exist_ok=True)
        tasks.append(task)
        entries.append((split, vid, cls, task.get("begin", 0)))
    results = _run_tasks(tasks, workers, progress)
    _write_official_annotations(root, layout, classes, entries, results)
    # the lists come from the annotation files, built as for the real datasets
    annotations = {split: root / SYNTHETIC.split_file(layout, split) for split in SYNTHETIC.splits}
    if layout == "sthv1":
        rep = prepare.prepare_sthv1(root, root, annotations=annotations, quiet=True)
    elif layout == "sthv2":
        rep = prepare.prepare_sthv2(root, root, extract=extract_frames, workers=workers, annotations=annotations,
                                    quiet=True)
    else:
        assert K400.shipped_label_map is not None
        rep = prepare.prepare_kinetics400(root, root, extract=extract_frames, workers=workers, quiet=True,
                                          short_side=params["height"], label_map=root / K400.shipped_label_map,
                                          annotations=annotations)
    names = rep["class_names"]
    index = {name: i for i, name in enumerate(names)}
    key = (lambda c: c.name) if layout != "k400" else (lambda c: c.k400_name)
    by_motion: dict[str, list[int]] = {}
    for cls in classes:
        if cls.motion in ("horizontal", "vertical", "scale", "light"):
            by_motion.setdefault(cls.motion, [-1, -1])[int(cls.reverse)] = index[key(cls)]
    pairs = [list(v) for v in by_motion.values()]
    primary = "rawframes" if "rawframes" in rep["lists"] else "videos"
    lists = {kind: ListSet.from_dict(value) for kind, value in rep["lists"].items()}
    main = lists[primary]
    assert main.train and main.val and main.test
    meta = SyntheticMeta(
        layout=layout, root=str(root), params=params, seed=params["seed"], num_train=params["num_train"],
        num_val=params["num_val"], num_test=params["num_test"], counts=dict(rep["counts"]),
        flip_ok=not any(c.flip_sensitive for c in classes), kind=primary, train_list=main.train,
        val_list=main.val, test_list=main.test, data_prefix=main.data_prefix, filename_tmpl=main.filename_tmpl,
        start_index=main.start_index, lists=lists, class_names=names, num_classes=len(names),
        reversal_pairs=pairs, reversal_classes=sorted(i for p in pairs for i in p),
        seconds=round(time.perf_counter() - start, 2))
    meta.write(meta_path)
    return meta.to_dict()


def write_synthetic_meta(path: str | os.PathLike, meta: dict[str, Any] | SyntheticMeta) -> None:
    """Store the summary of a written synthetic dataset (see :func:`write_synthetic`) at ``path``."""
    (meta if isinstance(meta, SyntheticMeta) else SyntheticMeta.from_dict(meta, path)).write(path)


def _write_official_annotations(root: Path, layout: str, classes: list[SynthClass], entries, results) -> None:
    """The release's own annotation files for the samples written (what prepare reads); the test
    split's in the same format under its own name (:meth:`Synthetic.split_file`)."""
    if layout == "sthv1":
        assert STHV1.labels_file is not None
        atomic_write_text(root / STHV1.labels_file, "".join(f"{c.name}\n" for c in classes))
        for split in SYNTHETIC.splits:
            lines = [f"{vid};{cls.name}\n" for s, vid, cls, _ in entries if s == split]
            atomic_write_text(root / SYNTHETIC.split_file(layout, split), "".join(lines))
    elif layout == "sthv2":
        assert STHV2.labels_file is not None
        atomic_write_json(root / STHV2.labels_file, {c.name: str(i) for i, c in enumerate(classes)})
        for split in SYNTHETIC.splits:
            items = []
            for (s, vid, cls, _), res in zip(entries, results):
                if s != split:
                    continue
                thing = f"{res['color']} {res['shape']}"
                items.append(dict(id=vid, label=cls.template.replace("[something]", thing)
                                  .replace("[several things]", "several things"),
                                  template=cls.template, placeholders=[thing]))
            atomic_write_json(root / SYNTHETIC.split_file(layout, split), items)
    else:
        # class-index file as MMAction2 ships it (names in index order), so that small splits
        # without some class keep the full class list
        assert K400.shipped_label_map is not None
        ordered = sorted(classes, key=lambda c: c.k400_name)
        atomic_write_text(root / K400.shipped_label_map, "".join(f"{c.k400}\n" for c in ordered))
        for split in SYNTHETIC.splits:
            lines = ["label,youtube_id,time_start,time_end,split\n"]
            for s, vid, cls, begin in entries:
                if s == split:
                    label = f'"{cls.k400}"' if "," in cls.k400 or "(" in cls.k400 else cls.k400
                    lines.append(f"{label},{vid[:11]},{begin},{begin + 10},{split}\n")
            atomic_write_text(root / SYNTHETIC.split_file(layout, split), "".join(lines))
