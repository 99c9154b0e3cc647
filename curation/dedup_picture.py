"""Crop-proof picture descriptors: what a video shows, whatever copy of it was cropped, padded,
mirrored, sped up or slowed down, or re-encoded.

In: a video's picture samples, 1 s averages every 1 / `PICTURE_RATE_HZ` s, as luma `[P, H, W]` and
chroma `[P, 2, H/2, W/2]` uint8 (4:2:0) with `DECODE_SHORT_SIDE_PX` on the shorter side
(`dedup.fingerprint_video` decodes them). Out: `describe_pictures` -> per sample and region, the
luma descriptor `[P, 4, 63]` int8 and the colours `[P, 4, 8]` uint8; `picture_hashes` of them for
the index (`dedup_groups`); and `picture_score(a, b)`.

The descriptor of a sample:

- its content box: rows and columns at the edges that no sample makes brighter than `BLACK_LUMA`
  are cut off, so a letterboxed or pillarboxed copy keeps its original's box;
- four regions, centre squares of the box: sides `REGION_SHARE` of the box's height, and that
  shrunk by `ZOOM`; the same of its width (each at most the box's other side). A crop that keeps
  the whole height (16:9 to 9:16, 1:1 or 4:3) keeps the height-based squares whole and at the
  same scale; one that keeps the width (a 9:16 original cut to 16:9), the width-based ones; a
  zoom (a centre crop scaled back up) by about 1.25 meets the shrunk squares (1.2 measured);
- per region: the luma area-scaled to 16x16; its 8x8 lowest DCT coefficients but the mean (63),
  each weighted by its frequency (so that the strong lowest frequencies of every natural picture
  do not decide alone), to unit length, x127 as int8; the mean U and V of the region's four
  quadrants. A region without detail (luma std under `FLAT_LUMA_STD`) is all zeros: no evidence.
  A horizontal mirror flips the sign of the coefficients of odd horizontal frequency and swaps
  left and right quadrants.

The score (`picture_score`) of video a in video b, the best over the region pairs (same side,
zoom 1 on at least one) and the mirror: two samples agree when their descriptors' cosine reaches
`MIN_COSINE` and their quadrant colours differ by at most `MAX_COLOUR_DIFF` on average. In each
`WINDOW_S` of a, the best straight line (b's sample = slope x a's + offset, one sample either way;
slopes within `MIN_SPEED` to `MAX_SPEED`) counts the samples of a with an agreeing sample of b on
it; the share of a's informative samples so counted over all windows. A pair scores the better of
a in b and b in a: about 1 for copies, about 0 for other videos (`bench/dedup.py`).
"""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import scipy.fft

PICTURE_RATE_HZ = 2.0
DECODE_SHORT_SIDE_PX = 144
REGION_SHARE = 0.5  # of the content box's height (or width): the side of a region
ZOOM = 0.8  # the shrunk regions' side, of the full ones
REGIONS = 4  # height-based full and shrunk, width-based full and shrunk
COEFFICIENTS = 63
COLOURS = 8  # U then V, quadrants in the order top-left, top-right, bottom-left, bottom-right
BLACK_LUMA = 32  # 0-255: an edge row or column never brighter is a bar (limited-range black: 16)
FLAT_LUMA_STD = 2.0  # 0-255, over a region's 16x16 luma
MIN_COSINE = 0.7  # on the real footage: copies score 1 up to 0.7 (0.875 above), unrelated pairs 0 from 0.7
MAX_COLOUR_DIFF = 12.0  # 0-255, mean over the 8 colours
MIN_SPEED, MAX_SPEED = 0.8, 1.25  # how much faster one copy may play than the other
WINDOW_S = 20.0
MIN_INFORMATIVE_S = 2.0  # of informative samples in each video, for a score at all
PICTURE_MATCH_THRESHOLD = 0.5  # on the real footage: copies 1.0, unrelated pairs 0.0, far copies from 0.65

_SIDE_PX = 16
_WINDOW = round(WINDOW_S * PICTURE_RATE_HZ)
_BLOCK = 10 * _WINDOW  # rows of a whose cosines with all of b are taken at once
_SLOPES = np.exp(np.linspace(math.log(MIN_SPEED), math.log(MAX_SPEED), 19))  # steps of 2.5 %: < 1 sample a window
_FREQUENCY = np.hypot(*np.divmod(np.arange(1, 64), 8))  # (vertical, horizontal) frequency of each coefficient
_ODD_HORIZONTAL = np.arange(1, 64) % 2 == 1  # the coefficients a mirror negates
_MIRROR_SIGNS = np.where(_ODD_HORIZONTAL, -1, 1).astype(np.int8)
_MIRROR_COLOURS = np.array([1, 0, 3, 2, 5, 4, 7, 6])
_REGION_PAIRS = ((0, 0), (0, 1), (1, 0), (2, 2), (2, 3), (3, 2))


def content_box(luma: np.ndarray) -> tuple[int, int, int, int]:
    """`[P, H, W]` samples -> (top, bottom, left, right) of what lies inside black bars; the whole
    frame when less than 8 px a side would be left."""
    height, width = luma.shape[1:]
    rows = np.flatnonzero(luma.max(axis=(0, 2)) > BLACK_LUMA)
    columns = np.flatnonzero(luma.max(axis=(0, 1)) > BLACK_LUMA)
    if len(rows) == 0 or len(columns) == 0 or rows[-1] - rows[0] < 7 or columns[-1] - columns[0] < 7:
        return 0, height, 0, width
    return int(rows[0]), int(rows[-1]) + 1, int(columns[0]), int(columns[-1]) + 1


def region_sides(height: int, width: int) -> tuple[float, ...]:
    """The sides of the four regions of a content box `height` x `width` (module docstring)."""
    by_height = [min(REGION_SHARE * zoom * height, width) for zoom in (1.0, ZOOM)]
    by_width = [min(REGION_SHARE * zoom * width, height) for zoom in (1.0, ZOOM)]
    return (*by_height, *by_width)


def describe_pictures(luma: np.ndarray, chroma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Samples (luma `[P, H, W]`, chroma `[P, 2, H/2, W/2]`, uint8) -> descriptors `[P, 4, 63]`
    int8 and colours `[P, 4, 8]` uint8 (module docstring)."""
    count = len(luma)
    descriptors = np.zeros((count, REGIONS, COEFFICIENTS), np.int8)
    colours = np.zeros((count, REGIONS, COLOURS), np.uint8)
    if count == 0:
        return descriptors, colours
    top, bottom, left, right = content_box(luma)
    for region, side in enumerate(region_sides(bottom - top, right - left)):
        size = max(2, round(side))
        y0, x0 = top + (bottom - top - size) // 2, left + (right - left - size) // 2
        small = np.stack([_area(sample[y0 : y0 + size, x0 : x0 + size], _SIDE_PX) for sample in luma])
        descriptors[:, region] = _luma_descriptors(small)
        c0, c1, cs = y0 // 2, x0 // 2, max(1, size // 2)
        quadrants = [[_area(plane[c0 : c0 + cs, c1 : c1 + cs], 2) for plane in sample] for sample in chroma]
        colours[:, region] = np.round(np.asarray(quadrants).reshape(count, COLOURS)).astype(np.uint8)
    return descriptors, colours


def _area(pixels: np.ndarray, side: int) -> np.ndarray:
    return cv2.resize(pixels.astype(np.float32), (side, side), interpolation=cv2.INTER_AREA)


def _luma_descriptors(small: np.ndarray) -> np.ndarray:
    """`[P, 16, 16]` float luma -> `[P, 63]` int8: weighted low DCT coefficients, unit length x127."""
    coefficients = scipy.fft.dctn(small, axes=(1, 2), norm="ortho")[:, :8, :8].reshape(len(small), 64)[:, 1:]
    weighted = coefficients * _FREQUENCY
    norms = np.linalg.norm(weighted, axis=1, keepdims=True)
    flat = small.reshape(len(small), -1).std(axis=1) < FLAT_LUMA_STD
    unit = np.divide(weighted, norms, out=np.zeros_like(weighted), where=(norms > 0) & ~flat[:, None])
    return np.round(unit * 127).astype(np.int8)


def picture_hashes(descriptors: np.ndarray) -> np.ndarray:
    """`[..., 63]` int8 descriptors -> `[...]` uint64 hashes that a mirror leaves as they are: whether
    each coefficient of even horizontal frequency is positive, and each odd one times the first odd
    one (62 bits); 0 for a region without detail."""
    values = descriptors.astype(np.int16)
    relative = np.where(_ODD_HORIZONTAL, values * values[..., :1], values) > 0
    bits = relative[..., 1:].astype(np.uint64) << np.arange(COEFFICIENTS - 1, dtype=np.uint64)
    hashes = np.bitwise_or.reduce(bits, axis=-1)
    return np.where((descriptors != 0).any(axis=-1), hashes, np.uint64(0))


def picture_score(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[float | None, float]:
    """(score, speed) of two videos' (descriptors, colours) (module docstring): the better of a's
    samples found in b and b's found in a (a slowed-down excerpt has more samples than the stretch
    of its original it shows); speed is how much faster b plays the content than a. None when
    either has under `MIN_INFORMATIVE_S` of informative samples."""
    if min(_informative(a[0]), _informative(b[0])) < MIN_INFORMATIVE_S * PICTURE_RATE_HZ:
        return None, 1.0
    forward, slope = _found_share(a, b)
    if forward == 1.0:
        return forward, 1.0 / slope
    backward, slope_back = _found_share(b, a)
    return (forward, 1.0 / slope) if forward >= backward else (backward, slope_back)


def _found_share(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    """The share of a's informative samples with an agreeing sample of b on their window's line,
    the best over region pairs and mirror (stopping at the first that finds them all), and the
    slope (b's samples per a's) of its best window."""
    informative = _informative(a[0])
    best, best_slope = (0, 0.0), 1.0
    for (region_a, region_b), mirror in itertools.product(_REGION_PAIRS, (False, True)):
        units_b, colours_b = _unit(b[0][:, region_b]), b[1][:, region_b]
        if mirror:
            units_b, colours_b = units_b * _MIRROR_SIGNS, colours_b[:, _MIRROR_COLOURS]
        count, cosines, slope = _aligned_count(_unit(a[0][:, region_a]), a[1][:, region_a], units_b, colours_b)
        if (count, cosines) > best:
            best, best_slope = (count, cosines), slope
        if count >= informative:
            break
    return best[0] / informative, best_slope


def _informative(descriptors: np.ndarray) -> int:
    """Samples with detail in at least one region."""
    return int((descriptors != 0).any(axis=(1, 2)).sum()) if len(descriptors) else 0


def _unit(descriptors: np.ndarray) -> np.ndarray:
    values = descriptors.astype(np.float32)
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    return np.divide(values, norms, out=np.zeros_like(values), where=norms > 0)


def _aligned_count(
    units_a: np.ndarray, colours_a: np.ndarray, units_b: np.ndarray, colours_b: np.ndarray
) -> tuple[int, float, float]:
    """Samples of a (`[Pa, 63]` unit descriptors, `[Pa, 8]` colours) with an agreeing sample of b on
    the best line of their window, summed over windows; the sum of their best cosines on it (a
    tie-break); and the slope of the window that counted most. Cosines are taken `_BLOCK` rows of
    a at a time (one product, not one per window); colours only where a cosine is high enough."""
    total, cosine_sum, best_window, best_slope = 0, 0.0, 0, 1.0
    for block in range(0, len(units_a), _BLOCK):
        cosines = units_a[block : block + _BLOCK] @ units_b.T
        rows, columns = np.nonzero(cosines >= MIN_COSINE)
        if len(rows) == 0:
            continue
        colour_diff = colours_a[block + rows].astype(np.int16) - colours_b[columns].astype(np.int16)
        agree = np.abs(colour_diff).mean(axis=1) <= MAX_COLOUR_DIFF
        agreeing = np.zeros_like(cosines)
        agreeing[rows[agree], columns[agree]] = cosines[rows[agree], columns[agree]]
        for start in range(0, len(agreeing), _WINDOW):
            window = agreeing[start : start + _WINDOW]
            if not window.any():
                continue
            count, line_cosines, slope = _best_line(window)
            total, cosine_sum = total + count, cosine_sum + line_cosines
            if count > best_window:
                best_window, best_slope = count, slope
    return total, cosine_sum, best_slope


def _best_line(agreeing: np.ndarray) -> tuple[int, float, float]:
    """`[W, Pb]` cosines of agreeing samples (0 elsewhere) -> over `_SLOPES` and every offset, the
    most rows with an agreeing column within one of `slope x row + offset` (of two such lines, the
    one of the higher sum of cosines on the line itself), that sum, and the line's slope."""
    rows = len(agreeing)
    near = agreeing.copy()
    near[:, 1:] = np.maximum(near[:, 1:], agreeing[:, :-1])
    near[:, :-1] = np.maximum(near[:, :-1], agreeing[:, 1:])
    columns = np.flatnonzero(near.any(axis=0))
    kept = slice(columns[0], columns[-1] + 1)  # offsets outside the agreeing columns count nothing
    reach = math.ceil(MAX_SPEED * rows)
    padded_near, padded_exact = (np.pad(cells[:, kept], ((0, 0), (reach, reach))) for cells in (near, agreeing))
    best = (0, 0.0, 1.0)
    for slope in _SLOPES:
        shifts = np.round(slope * np.arange(rows)).astype(np.intp)
        offsets = np.arange(-int(shifts[-1]), columns[-1] + 1 - columns[0])
        cells = np.arange(rows)[:, None], offsets[None, :] + shifts[:, None] + reach
        counts, sums = (padded_near[cells] > 0).sum(axis=0), padded_exact[cells].sum(axis=0)
        line = int(np.argmax(counts + 0.99 * sums / (rows + 1)))  # the sums, under 1 row: only a tie-break
        if (int(counts[line]), float(sums[line])) > best[:2]:
            best = (int(counts[line]), float(sums[line]), float(slope))
    return best
