"""Procedural images of nameable objects ("a red striped star") in three styles, for the embedded demo.

An object is a shape filled with a pattern in a colour; 10 x 10 x 10 = 1000 concepts, each named by its
three words. Styles are the domains: `clean` and `web` pre-train the bundled CLIP, `target` is what the
demo data set `demo_lt` is drawn from, so that the foundation model needs adaptation (palette cast,
textured backgrounds, lighting, clutter). Rendering is vectorised numpy and fully determined by the rng.
"""
from __future__ import annotations

import numpy as np

COLOURS = {
    "red": (0.86, 0.12, 0.12), "orange": (0.96, 0.55, 0.10), "yellow": (0.94, 0.88, 0.16),
    "green": (0.15, 0.66, 0.22), "teal": (0.08, 0.58, 0.58), "blue": (0.15, 0.28, 0.88),
    "purple": (0.52, 0.18, 0.72), "pink": (0.96, 0.50, 0.74), "brown": (0.50, 0.30, 0.14),
    "white": (0.97, 0.97, 0.97),
}
PATTERNS = ("solid", "striped", "dotted", "checkered", "outlined", "wavy", "shaded", "gridded", "speckled",
            "ringed")
SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "crescent", "heart", "diamond", "arrow")
STYLES = ("clean", "web", "target")
CONCEPTS = len(COLOURS) * len(PATTERNS) * len(SHAPES)


def concept_words(concept: np.ndarray | int) -> tuple:
    """(colour, pattern, shape) indices of concept id(s): id = (colour * 10 + pattern) * 10 + shape."""
    return concept // 100, (concept // 10) % 10, concept % 10


def concept_name(concept: int) -> str:
    colour, pattern, shape = concept_words(int(concept))
    return f"{list(COLOURS)[colour]} {PATTERNS[pattern]} {SHAPES[shape]}"


def latin_square_concepts(num_classes: int = 100) -> list[int]:
    """100 concepts in which every colour, pattern and shape appears 10 times and any two words fix the third,
    so that no class is a head class's twin; the first `num_classes` of them, in a fixed order."""
    concepts = [(c * 10 + (c * 3 + s * 7) % 10) * 10 + s for c in range(10) for s in range(10)]
    order = np.random.default_rng(20240513).permutation(len(concepts))
    return [concepts[i] for i in order[:num_classes]]


def _polar(u, v):
    return np.hypot(u, v), np.arctan2(v, u)


SHAPE_MASKS = (  # (u, v) -> inside, in object coordinates of unit radius
    lambda u, v: np.hypot(u, v) < 0.95,  # circle
    lambda u, v: np.maximum(np.abs(u), np.abs(v)) < 0.78,  # square
    lambda u, v: _triangle(*_polar(u, v)),
    lambda u, v: _star(*_polar(u, v)),
    lambda u, v: ((np.abs(u) < 0.3) & (np.abs(v) < 0.95)) | ((np.abs(v) < 0.3) & (np.abs(u) < 0.95)),  # cross
    lambda u, v: (np.hypot(u, v) < 0.95) & (np.hypot(u, v) > 0.55),  # ring
    lambda u, v: (np.hypot(u, v) < 0.95) & (np.hypot(u - 0.45, v + 0.1) > 0.72),  # crescent
    lambda u, v: _heart(u, v),
    lambda u, v: np.abs(u) + np.abs(v) < 0.98,  # diamond
    lambda u, v: (((np.abs(v) < 0.2) & (u > -0.95) & (u < 0.15))
                  | ((u >= 0.05) & (u < 0.95) & (np.abs(v) < 0.95 - u))),  # arrow, pointing right
)
K = 2 * np.pi / 0.45  # pattern frequency: a period of 0.45 object radii
PATTERN_FILLS = (  # (u, v, shape, rng) -> intensity in [0, 1]
    lambda u, v, s, rng: np.ones_like(u),  # solid
    lambda u, v, s, rng: np.sin(K * v) > 0,  # striped
    lambda u, v, s, rng: np.hypot((u * 2.6) % 1 - 0.5, (v * 2.6) % 1 - 0.5) < 0.28,  # dotted
    lambda u, v, s, rng: (np.sin(K * u) > 0) ^ (np.sin(K * v) > 0),  # checkered
    lambda u, v, s, rng: ~_inside(s, u / 0.62, v / 0.62),  # outlined: the interior left dark
    lambda u, v, s, rng: np.sin(K * v + 1.8 * np.sin(1.1 * K * u)) > 0,  # wavy
    lambda u, v, s, rng: np.clip(0.5 + 0.55 * u, 0, 1),  # shaded: a left-to-right ramp
    lambda u, v, s, rng: (np.abs(np.sin(K * u / 1.3)) < 0.45) | (np.abs(np.sin(K * v / 1.3)) < 0.45),  # gridded
    lambda u, v, s, rng: rng.random(u.shape) < 0.5,  # speckled
    lambda u, v, s, rng: np.sin(K * np.hypot(u, v)) > 0,  # ringed: concentric
)


def _triangle(rho, phi):
    return rho * np.cos((phi + np.pi / 2) % (2 * np.pi / 3) - np.pi / 3) < 0.5  # apex up


def _star(rho, phi):
    return rho < 0.42 + 0.58 * (0.5 + 0.5 * np.cos(5 * (phi + np.pi / 2))) ** 2.5


def _heart(u, v):
    x, y = 1.15 * u, -1.15 * v + 0.25
    return (x * x + y * y - 1) ** 3 - x * x * y ** 3 < 0


def _inside(shape: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """N×H×W masks of each image's shape (`shape` holds N ids) in its object coordinates."""
    out = np.zeros(u.shape, dtype=bool)
    for index, inside in enumerate(SHAPE_MASKS):
        chosen = shape == index
        if chosen.any():
            out[chosen] = inside(u[chosen], v[chosen])
    return out


def _pattern(pattern: np.ndarray, u, v, shape, rng: np.random.Generator) -> np.ndarray:
    """N×H×W intensity of each image's fill pattern: 1 is the full colour, 0.28 a dark shade of it."""
    out = np.zeros(u.shape, dtype=np.float32)
    for index, fill in enumerate(PATTERN_FILLS):
        chosen = pattern == index
        if chosen.any():
            out[chosen] = fill(u[chosen], v[chosen], shape[chosen], rng)
    return 0.28 + 0.72 * out


def _smooth_noise(rng: np.random.Generator, n: int, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1], N×size×size, by bilinear upsampling of a cells×cells grid."""
    grid = rng.random((n, cells + 1, cells + 1)).astype(np.float32)
    t = np.linspace(0, cells, size, dtype=np.float32)
    i = np.minimum(t.astype(int), cells - 1)
    f = t - i
    rows = grid[:, i, :] * (1 - f)[None, :, None] + grid[:, i + 1, :] * f[None, :, None]
    return rows[:, :, i] * (1 - f)[None, None, :] + rows[:, :, i + 1] * f[None, None, :]


def _background(style: str, rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    if style == "clean":
        return np.broadcast_to(rng.uniform(0.55, 0.85, (n, 1, 1, 1)), (n, size, size, 3)).astype(np.float32)
    if style == "web":
        a, b = rng.random((n, 1, 1, 3)), rng.random((n, 1, 1, 3))
        ramp = _smooth_noise(rng, n, size, 1)[..., None]
        return (a * ramp + b * (1 - ramp)).astype(np.float32)
    # target: a textured "ground" in earthy tones with a lighting gradient
    earth = np.array([[0.42, 0.36, 0.24], [0.30, 0.40, 0.22], [0.50, 0.46, 0.38], [0.25, 0.27, 0.30]],
                     dtype=np.float32)
    base = earth[rng.integers(0, len(earth), n)][:, None, None, :]
    texture = _smooth_noise(rng, n, size, 6)[..., None]
    return np.clip(base * (0.65 + 0.7 * texture), 0, 1)


def _clutter(image: np.ndarray, rng: np.random.Generator, count: int) -> None:
    """Small random rectangles (never one of the named shapes) painted in place, under the object."""
    n, size = image.shape[0], image.shape[1]
    for _ in range(count):
        w, h = rng.integers(2, 7, n), rng.integers(2, 7, n)
        x, y = rng.integers(0, size - 2, n), rng.integers(0, size - 2, n)
        colour = rng.random((n, 3)).astype(np.float32)
        for j in range(n):
            image[j, y[j]:y[j] + h[j], x[j]:x[j] + w[j]] = colour[j]


def render(concepts: np.ndarray, style: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """uint8 N×size×size×3 images of the given concept ids in one style (random pose, scale, clutter)."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; valid: {', '.join(STYLES)}")
    concepts = np.asarray(concepts, dtype=np.int64)
    n = len(concepts)
    colour, pattern, shape = concept_words(concepts)
    yy, xx = np.meshgrid(np.arange(size, dtype=np.float32) + 0.5, np.arange(size, dtype=np.float32) + 0.5,
                         indexing="ij")
    radius = rng.uniform(0.26, 0.40, (n, 1, 1)) * size
    cx = rng.uniform(0.5, 1.5, (n, 1, 1)) * size / 2
    cy = rng.uniform(0.5, 1.5, (n, 1, 1)) * size / 2
    cx = np.clip(cx, radius, size - radius)
    cy = np.clip(cy, radius, size - radius)
    angle = rng.uniform(-0.35, 0.35, (n, 1, 1))
    dx, dy = (xx - cx) / radius, (yy - cy) / radius
    u = np.cos(angle) * dx + np.sin(angle) * dy
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    mask = _inside(shape, u, v)[..., None]
    shade = _pattern(pattern, u, v, shape, rng)[..., None]
    rgb = np.array(list(COLOURS.values()), dtype=np.float32)[colour][:, None, None, :]

    image = _background(style, rng, n, size).copy()
    if style != "clean":
        _clutter(image, rng, count=2 if style == "web" else 1)
    if style == "web":
        rgb = np.clip(rgb * rng.uniform(0.8, 1.15, (n, 1, 1, 1)) + rng.normal(0, 0.04, (n, 1, 1, 3)), 0, 1)
    elif style == "target":  # a warm, washed-out palette under uneven light
        grey = rgb.mean(-1, keepdims=True)
        rgb = 0.72 * rgb + 0.28 * grey
        rgb = rgb * np.array([1.06, 0.98, 0.84], dtype=np.float32)
    obj = rgb * shade
    image = np.where(mask, obj, image)
    if style == "target":
        light = 0.75 + 0.5 * _smooth_noise(rng, n, size, 1)[..., None]
        image = image * light
    noise = {"clean": 0.02, "web": 0.06, "target": 0.05}[style]
    image = image + rng.normal(0, noise, image.shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
