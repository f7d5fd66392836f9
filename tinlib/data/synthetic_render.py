"""The synthetic dataset's classes and how one video of each is drawn (:func:`render_video`).

Every video shows one scene (a smooth two-colour background with static clutter, per-frame sensor
noise, a little camera jitter) and an object of random shape, colour and size; the classes differ
by what happens over time. Four **time-reversal pairs** (left->right / right->left, up / down,
towards / away from the camera, light on / off): the second class of a pair is a video of the
first's generator played backwards, so both have exactly the same distribution of single frames and
only the order tells them apart. TSN, which pools frames without temporal interaction, is at chance
within a pair; TSM/TIN learn the direction from 8 segments. The other classes are holding still,
shaking (no net direction) and several objects side by side (an appearance class TSN learns too).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .releases import SYNTHETIC, normalize_k400_label, sthv2_label_name


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

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "hexagon")
COLOR_NAMES = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink")


def classes_for(layout: str) -> list[SynthClass]:
    """The classes written for ``layout`` (K400: without the flip-sensitive left/right pair)."""
    if layout not in SYNTHETIC.layouts:
        raise ValueError(f"layout must be one of {SYNTHETIC.layouts}, got {layout!r}")
    return [c for c in CLASSES if not (layout == "k400" and c.flip_sensitive)]


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
    # the action happens in a square-ish region around the centre, so centre crops keep it
    cx0, cy0 = w / 2 + rng.uniform(-0.08, 0.08) * w, h / 2 + rng.uniform(-0.05, 0.05) * h
    jit = rng.normal(0, 0.01 * h, size=(n, 2))  # small per-frame wobble of the object
    extra: list[dict[str, Any]] = []
    if rng.random() < 0.25 and motion != "several":  # a static distractor
        d = _object(rng, h)
        d.update(r=d["r"] * 0.6, x=float(rng.uniform(0.05, 0.95) * w), y=float(rng.uniform(0.1, 0.9) * h))
        extra.append(d)
    xs, ys, r, gain = _trajectory(motion, rng, h, n, (cx0, cy0), main_object["r"], extra)
    obj = main_object if motion != "several" else None  # "several": no single moving object
    frames = _paint(rng, bg, extra, obj, (xs + jit[:, 0], ys + jit[:, 1], r, gain))
    if reverse:
        frames = frames[::-1].copy()
    desc = obj if obj is not None else dict(shape="things", color_name="several")
    return frames, {"shape": desc["shape"], "color": desc["color_name"]}


def _trajectory(motion: str, rng: np.random.Generator, h: int, n: int, center: tuple[float, float], radius: float,
                extra: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The object's centre ``x, y``, half-size ``r`` and the scene's brightness ``gain``, each ``[n]``,
    for ``motion`` around ``center``; "several" adds its objects to ``extra`` instead."""
    cx0, cy0 = center
    u = np.linspace(0.0, 1.0, n)
    r, gain = np.full(n, radius), np.ones(n)
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
        xs = ys = np.zeros(n)
    else:
        raise ValueError(f"unknown motion {motion!r}")
    return xs, ys, r, gain


def _paint(rng: np.random.Generator, bg: np.ndarray, extra: list[dict[str, Any]], obj: dict[str, Any] | None,
           path: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Frames ``[n, h, w, 3]`` uint8: ``bg [h, w, 3]`` with the static ``extra`` objects and ``obj``
    along ``path`` (``x, y, r, gain``, each ``[n]``), camera jitter and sensor noise."""
    xs, ys, r, gain = path
    n = len(xs)
    noise_sigma = rng.uniform(2.0, 5.0)
    shifts = rng.integers(-1, 2, size=(n, 2)) * (rng.random(size=(n, 1)) < 0.5)
    frames = np.empty((n, *bg.shape), np.uint8)
    for t in range(n):
        img = bg.copy()
        for d in extra:
            _draw(img, d["shape"], d["x"], d["y"], d["r"], d["color"], d["angle"])
        if obj is not None:
            _draw(img, obj["shape"], xs[t], ys[t], r[t], obj["color"], obj["angle"])
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
    return frames

