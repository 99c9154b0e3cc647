"""Near-duplicate detection: one fingerprint per video, a match rule, and stable groups.

In: a video file, and the sound to fingerprint (by default the video's own; the pipeline passes
the separated accompaniment). Out: a `Fingerprint`, saved once per video as a small `.npz`
(`save_fingerprint` / `load_fingerprint`, or `load_index_hashes` for what the index reads),
and `compare(a, b)`: whether two videos are near-duplicates.

The fingerprint (`FINGERPRINT_VERSION`), from one decode of the picture at 8 fps (shorter side
`DECODE_SHORT_SIDE_PX`, square pixels, 4:2:0):

- crop-proof picture descriptors, 2 samples a second (1 s averages): `curation.dedup_picture`;
- frame hashes: 4 samples a second. Frames are area-scaled to 32x32 (YUV), and
  averaged over 1 s windows every 0.25 s (so that copies whose frames fall between each other's
  still give near-equal samples). A sample is a 64-bit DCT perceptual hash of the luma (bit k:
  the k-th of the 8x8 lowest DCT coefficients exceeds their median) and the mean chroma (U, V)
  of a 4x4 grid, so that the same shapes in other colours are another picture. A picture with
  no detail (black, one flat colour) hashes to 0 and counts as no evidence.
- sound: the log energy of 16 mel bands (40 Hz - 4 kHz) of the mono sound at 8 kHz, every
  0.05 s over 0.512 s windows, in 0.5 dB steps below the loudest band, floored at -60 dB.

The match rule (`compare`), over every time offset up to `max_offset_s` at which the two videos
overlap over at least half of the shorter one:

- visual score: the best share of overlapping samples whose hashes differ in at most
  `MAX_FRAME_BITS` of 64 bits and whose grid colours differ by at most `MAX_CHROMA_DIFF` on
  average, plus what sampling half a step off can explain where the colour changes fast (pairs
  of flat pictures left out; None when nothing else is left);
- audio score: the best cosine similarity of the overlapping band-energy curves, as cube roots
  of power (about loudness), each band centred over its whole track, so a change of loudness or
  a fixed EQ drops out (None when either track is silent or missing);
- picture score (at any offset): `dedup_picture.picture_score`, the share of one video's samples
  whose crop-proof descriptors agree with the other's along the best time line, speeds 0.8 to
  1.25x (None when either has under 2 s of detailed pictures).

`similarity` is the lower of the visual and audio scores that exist (0 when neither does). Two
videos match when it reaches `MATCH_THRESHOLD` (the same picture AND the same sound: a copy under
its own music), or when the picture score alone reaches `PICTURE_MATCH_THRESHOLD` (the same
pictures under any music, cropped, padded, mirrored, sped up or not). A shared stock track under
another picture is no duplicate. Not caught: recoloured copies, crops off the centre that lose
much of the centre regions, zooms far from 1x and 1.25x, blurred-background pads, speed changes
well past 25 % (two copies at 0.8x and 1.25x still scored 0.65 to 1 on the real-footage set).

Grouping videos by this rule, through an index rather than by comparing every pair, is
`curation.dedup_groups`.
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import scipy.fft

from curation.dedup_picture import (
    COEFFICIENTS,
    COLOURS,
    DECODE_SHORT_SIDE_PX,
    PICTURE_MATCH_THRESHOLD,
    PICTURE_RATE_HZ,
    REGIONS,
    describe_pictures,
    picture_hashes,
    picture_score,
)
from curation.picture import parse_y4m_header
from dvmset.errors import DedupError, ReasonCode
from dvmset.storage import atomic_path
from dvmset.tools import require_tool, run_ffprobe, run_tool, stream_tool

FINGERPRINT_VERSION = 2  # 2: crop-proof picture descriptors; hashes from the one 4:2:0 decode
DECODE_RATE_HZ = 8
FRAME_BOX = 8  # decoded frames averaged into one hash (1 s)
FRAME_HOP = 2  # decoded frames between hashes (0.25 s)
FRAME_RATE_HZ = DECODE_RATE_HZ / FRAME_HOP
AUDIO_SAMPLE_RATE_HZ = 8000
AUDIO_HOP = 400  # samples: one band-energy row every 0.05 s
AUDIO_WINDOW = 4096  # samples: 0.512 s
AUDIO_RATE_HZ = AUDIO_SAMPLE_RATE_HZ / AUDIO_HOP
AUDIO_BANDS = 16
AUDIO_MIN_HZ = 40.0
AUDIO_MAX_HZ = 4000.0
FLOOR_DB = -60.0
DB_STEP = 0.5  # band energies are stored as int8 multiples of this

MAX_FRAME_BITS = 10  # hashes this close show the same picture...
MAX_CHROMA_DIFF = 8.0  # ...if their grid colours differ this little on average (0-255 levels)
MATCH_THRESHOLD = 0.5
MAX_OFFSET_S = 10.0
MIN_OVERLAP_SHARE = 0.5  # of the shorter video, at every offset considered

_HASH_SIDE = 32
_CHROMA_GRID = 4  # cells a side
_FLAT_FRAME_STD = 2.0  # grey levels (0-255)
_SILENT_TRACK_STD = 1e-3  # of the cube-root curves: a track this steady carries no evidence
_FRAMES_PER_HALF = round(DECODE_RATE_HZ / PICTURE_RATE_HZ)  # a picture sample averages two half seconds
_PICTURE_SCALE = (  # the shorter side to DECODE_SHORT_SIDE_PX, both sides even, square pixels
    f"scale=w='if(gte(iw*sar,ih),2*trunc({DECODE_SHORT_SIDE_PX}*iw*sar/ih/2),{DECODE_SHORT_SIDE_PX})'"
    f":h='if(gte(iw*sar,ih),{DECODE_SHORT_SIDE_PX},2*trunc({DECODE_SHORT_SIDE_PX}*ih/(iw*sar)/2))':flags=area,setsar=1"
)
_DTYPES = {
    "frame_hashes": np.uint64,
    "frame_chroma": np.uint8,
    "band_db": np.int8,
    "picture_descriptors": np.int8,
    "picture_colours": np.uint8,
    "picture_hashes": np.uint64,
}
_NPY_HEADER = re.compile(  # the header `np.save` writes for a C-ordered array: (dtype, shape)
    rb"\{'descr': '([<>|=]?[a-zA-Z]\d*)', 'fortran_order': False, 'shape': \(((?:\d+, ?)*\d*)\), \} *\n"
)


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """What `compare` needs of one video. Picture samples, one every 1 / `FRAME_RATE_HZ` s:
    `frame_hashes` `[F]` uint64 and `frame_chroma` `[F, 32]` uint8 (U then V, 4x4 cells each);
    `band_db` `[T, 16]` int8 in `DB_STEP` dB, a row every 1 / `AUDIO_RATE_HZ` s (`[0, 16]`
    when the video has no sound); crop-proof picture samples, one every 1 / `PICTURE_RATE_HZ` s:
    `picture_descriptors` `[P, 4, 63]` int8 and `picture_colours` `[P, 4, 8]` uint8 (none: no
    picture score)."""

    frame_hashes: np.ndarray
    frame_chroma: np.ndarray
    band_db: np.ndarray
    picture_descriptors: np.ndarray = field(default_factory=lambda: np.zeros((0, REGIONS, COEFFICIENTS), np.int8))
    picture_colours: np.ndarray = field(default_factory=lambda: np.zeros((0, REGIONS, COLOURS), np.uint8))


@dataclass(frozen=True)
class Match:
    """The scores of one pair (module docstring); an offset is how many seconds later the same
    content comes in the second video (negative: earlier); `picture_speed`, how much faster the
    second video plays the pictures that `picture` scored."""

    visual: float | None
    audio: float | None
    visual_offset_s: float
    audio_offset_s: float
    picture: float | None
    picture_speed: float

    @property
    def similarity(self) -> float:
        scores = [score for score in (self.visual, self.audio) if score is not None]
        return min(scores) if scores else 0.0

    @property
    def is_match(self) -> bool:
        return self.similarity >= MATCH_THRESHOLD or (self.picture or 0.0) >= PICTURE_MATCH_THRESHOLD


# --- fingerprints ---------------------------------------------------------------------------


def fingerprint_video(video_path: Path, audio_path: Path | None = None, *, timeout_s: float = 600.0) -> Fingerprint:
    """Fingerprint the picture of `video_path` and the sound of `audio_path` (default: the video's).

    Raises `DedupError`: NO_VIDEO_STREAM when the file has no picture, DECODE_ERROR when
    ffmpeg cannot read it or a given `audio_path`. A video without sound whose own sound is
    asked for gets an empty `band_db`.
    """
    streams = _stream_types(video_path, timeout_s)
    if "video" not in streams:
        raise DedupError(ReasonCode.NO_VIDEO_STREAM, f"{video_path.name} has no video stream")
    video_filter = f"fps={DECODE_RATE_HZ},{_PICTURE_SCALE},format=yuv420p"
    args = [
        require_tool("ffmpeg"),
        "-nostdin",
        "-v",
        "error",
        "-i",
        f"file:{video_path}",
        "-map",
        "0:v:0",
        "-vf",
        video_filter,
        "-f",
        "yuv4mpegpipe",
        "pipe:1",
    ]
    what = f"decoding {video_path.name}"
    frames, luma, chroma = stream_tool(args, timeout_s, ReasonCode.DECODE_ERROR, what, _read_frames, error=DedupError)
    if len(frames) == 0:
        raise DedupError(ReasonCode.DECODE_ERROR, f"no frame decoded from {video_path.name}")
    if audio_path is None and "audio" not in streams:
        band_db = np.zeros((0, AUDIO_BANDS), np.int8)
    else:
        pcm_args = ["-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(AUDIO_SAMPLE_RATE_HZ), "-f", "f32le"]
        pcm = _ffmpeg_output(audio_path or video_path, pcm_args, timeout_s)
        band_db = band_energies_db(np.frombuffer(pcm, "<f4"))
    pictures = box_average(frames)
    descriptors, colours = describe_pictures(luma, chroma)
    return Fingerprint(phash_frames(pictures[:, 0]), grid_chroma(pictures[:, 1:]), band_db, descriptors, colours)


def _read_frames(stream: BinaryIO) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 4:2:0 YUV4MPEG2 stream at `DECODE_RATE_HZ` -> its frames area-scaled to 32x32 `[N, 3, 32, 32]`
    and the picture samples (luma `[P, H, W]`, chroma `[P, 2, H/2, W/2]`): the means of two
    consecutive half-second means, one per half second (one mean of every frame, if under 1 s).
    Holds about 135 kB per second of video (110 of them the samples)."""
    header = stream.readline()
    if not header:
        no_frames = np.zeros((0, 3, _HASH_SIDE, _HASH_SIDE), np.uint8)
        return no_frames, np.zeros((0, 0, 0), np.uint8), np.zeros((0, 2, 0, 0), np.uint8)
    try:
        width, height, _fps = parse_y4m_header(header)
    except ValueError as error:
        raise DedupError(ReasonCode.DECODE_ERROR, f"unexpected decoder output: {error}") from error
    luma_size, frame_size = width * height, width * height * 3 // 2
    frames, samples = [], []
    half_sum, in_half, previous_half = np.zeros(frame_size, np.float32), 0, None
    while stream.readline().startswith(b"FRAME"):
        data = stream.read(frame_size)
        if len(data) < frame_size:
            break
        planes = np.frombuffer(data, np.uint8)
        y, uv = planes[:luma_size].reshape(height, width), planes[luma_size:].reshape(2, height // 2, width // 2)
        frames.append([cv2.resize(plane, (_HASH_SIDE, _HASH_SIDE), interpolation=cv2.INTER_AREA) for plane in (y, *uv)])
        half_sum += planes
        in_half += 1
        if in_half == _FRAMES_PER_HALF:
            half = half_sum / in_half
            if previous_half is not None:
                samples.append(np.round((previous_half + half) / 2).astype(np.uint8))
            half_sum, in_half, previous_half = np.zeros_like(half_sum), 0, half
    if not samples and frames:  # under 1 s: one sample, the mean of every frame
        total = half_sum if previous_half is None else half_sum + previous_half * _FRAMES_PER_HALF
        samples.append(np.round(total / len(frames)).astype(np.uint8))
    flat = np.asarray(samples, np.uint8).reshape(len(samples), frame_size)
    luma = flat[:, :luma_size].reshape(-1, height, width)
    chroma = flat[:, luma_size:].reshape(-1, 2, height // 2, width // 2)
    return np.asarray(frames, np.uint8).reshape(-1, 3, _HASH_SIDE, _HASH_SIDE), luma, chroma


def box_average(frames: np.ndarray, box: int = FRAME_BOX, hop: int = FRAME_HOP) -> np.ndarray:
    """`[N, ...]` frames -> `[M, ...]` float64 means of `box` frames every `hop` (one at least)."""
    box = min(box, len(frames))
    sums = np.cumsum(np.concatenate([np.zeros((1, *frames.shape[1:])), frames]), axis=0)
    starts = np.arange(0, len(frames) - box + 1, hop)
    return (sums[starts + box] - sums[starts]) / box


def phash_frames(frames: np.ndarray) -> np.ndarray:
    """`[F, 32, 32]` grey pictures -> `[F]` uint64 pHashes; flat pictures -> 0 (another picture
    hashes to 0 only if over half of its 64 coefficients tie at their maximum)."""
    pixels = np.asarray(frames, np.float64)
    coefficients = scipy.fft.dctn(pixels, axes=(1, 2), norm="ortho")[:, :8, :8].reshape(len(pixels), 64)
    # exact ties (a synthetic picture's many zero coefficients) go below, not to rounding noise
    tie_margin = 1e-9 * np.abs(coefficients).max(axis=1, keepdims=True)
    bits = coefficients > np.median(coefficients, axis=1, keepdims=True) + tie_margin
    hashes = np.bitwise_or.reduce(bits.astype(np.uint64) << np.arange(64, dtype=np.uint64), axis=1)
    flat = pixels.reshape(len(pixels), -1).std(axis=1) < _FLAT_FRAME_STD
    return np.where(flat, np.uint64(0), hashes)


def grid_chroma(chroma: np.ndarray) -> np.ndarray:
    """`[F, 2, 32, 32]` U and V planes -> `[F, 32]` uint8 means of a 4x4 grid of cells."""
    cell = _HASH_SIDE // _CHROMA_GRID
    cells = chroma.reshape(len(chroma), 2, _CHROMA_GRID, cell, _CHROMA_GRID, cell).mean(axis=(3, 5))
    return np.round(cells.reshape(len(chroma), -1)).astype(np.uint8)


def band_energies_db(samples: np.ndarray) -> np.ndarray:
    """Mono samples at 8 kHz `[N]` -> `[T, 16]` int8 band energies (module docstring)."""
    samples = np.pad(np.asarray(samples, np.float64), (0, max(0, AUDIO_WINDOW - len(samples))))
    starts = np.arange(1 + (len(samples) - AUDIO_WINDOW) // AUDIO_HOP)[:, None] * AUDIO_HOP
    spectrum = np.fft.rfft(samples[starts + np.arange(AUDIO_WINDOW)] * np.hanning(AUDIO_WINDOW), axis=1)
    energy = (np.abs(spectrum) ** 2) @ _mel_filters().T
    peak = energy.max()
    relative_db = 10.0 * np.log10(np.maximum(energy / peak, 1e-30)) if peak > 0 else np.full(energy.shape, FLOOR_DB)
    return np.round(np.maximum(relative_db, FLOOR_DB) / DB_STEP).astype(np.int8)


def _mel_filters() -> np.ndarray:
    """`[16, AUDIO_WINDOW // 2 + 1]` triangular filters evenly spaced on the mel scale."""
    mel_edges = np.linspace(_mel(AUDIO_MIN_HZ), _mel(AUDIO_MAX_HZ), AUDIO_BANDS + 2)
    edges_hz = 700.0 * (10.0 ** (mel_edges / 2595.0) - 1.0)
    bins_hz = np.fft.rfftfreq(AUDIO_WINDOW, 1.0 / AUDIO_SAMPLE_RATE_HZ)
    low, centre, high = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    return np.maximum(0.0, np.minimum((bins_hz - low) / (centre - low), (high - bins_hz) / (high - centre)))


def _mel(hz: float) -> float:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _ffmpeg_output(path: Path, output_args: list[str], timeout_s: float) -> bytes:
    args = [require_tool("ffmpeg"), "-nostdin", "-v", "error", "-i", f"file:{path}", *output_args, "pipe:1"]
    return run_tool(args, timeout_s, ReasonCode.DECODE_ERROR, f"decoding {path.name}", error=DedupError, binary=True)


def _stream_types(path: Path, timeout_s: float) -> set[str]:
    """The kinds of stream in `path` ("video", "audio", ...), by ffprobe."""
    options = ["-show_entries", "stream=codec_type", "-of", "csv=p=0"]
    listing = run_ffprobe(path, options, timeout_s, ReasonCode.DECODE_ERROR, f"probing {path.name}", error=DedupError)
    return {line.strip().strip(",") for line in listing.splitlines() if line.strip()}


def save_fingerprint(fingerprint: Fingerprint, path: Path) -> Path:
    """Write `fingerprint` as an `.npz` at `path`, atomically (about 40 kB a minute of video), with
    the hashes of its picture descriptors (`dedup_picture.picture_hashes`) for the index."""
    meta = json.dumps({"version": FINGERPRINT_VERSION})
    with atomic_path(path) as temp, open(temp, "wb") as handle:
        np.savez_compressed(
            handle,
            frame_hashes=fingerprint.frame_hashes,
            frame_chroma=fingerprint.frame_chroma,
            band_db=fingerprint.band_db,
            picture_descriptors=fingerprint.picture_descriptors,
            picture_colours=fingerprint.picture_colours,
            picture_hashes=picture_hashes(fingerprint.picture_descriptors),
            meta=meta,
        )
    return path


def load_fingerprint(path: Path) -> Fingerprint:
    """Read what `save_fingerprint` wrote. `DedupError` (INTERNAL_ERROR) when the file is
    unreadable or of another `FINGERPRINT_VERSION`: fingerprint the video again."""
    names = ("frame_hashes", "frame_chroma", "band_db", "picture_descriptors", "picture_colours")
    return Fingerprint(**_load_arrays(path, names))


def load_index_hashes(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The frame hashes `[F]` and picture hashes `[P, 4]` of a fingerprint file, reading and
    decompressing nothing else (publish reads every video's: each member is read whole and a plain
    header parsed directly, which takes about half the time of `np.load`)."""
    try:
        with zipfile.ZipFile(path) as archive:
            meta = _npy_array(archive.read("meta.npy"))
            _check_version(meta, path)  # (a DedupError: not caught below)
            frame_hashes = _npy_array(archive.read("frame_hashes.npy"))
            hashes = _npy_array(archive.read("picture_hashes.npy"))
        return frame_hashes.astype(_DTYPES["frame_hashes"]), hashes.astype(_DTYPES["picture_hashes"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise DedupError(ReasonCode.INTERNAL_ERROR, f"cannot read fingerprint {path}: {error}") from error


def _npy_array(raw: bytes) -> np.ndarray:
    """The array of an `.npy` file's bytes: a header as `np.save` writes it for a C-ordered
    array parsed directly (no `ast`), any other through `np.lib.format.read_array`."""
    if raw[:6] == b"\x93NUMPY":
        start = 8 + (2 if raw[6] == 1 else 4)
        length = int.from_bytes(raw[8:start], "little")
        match = _NPY_HEADER.fullmatch(raw, start, start + length)
        if match:
            shape = tuple(int(n) for n in match[2].split(b",") if n.strip())
            dtype = np.dtype(match[1].decode())
            return np.frombuffer(raw, dtype, count=math.prod(shape), offset=start + length).reshape(shape)
    return np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)


def _check_version(meta: np.ndarray, path: Path) -> None:
    """DedupError unless a fingerprint file's `meta` names `FINGERPRINT_VERSION`."""
    version = json.loads(meta.item()).get("version")
    if version != FINGERPRINT_VERSION:
        message = f"fingerprint {path} is version {version}, not {FINGERPRINT_VERSION}"
        raise DedupError(ReasonCode.INTERNAL_ERROR, message)


def _load_arrays(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays `names` of a fingerprint file, in their `Fingerprint` dtypes, after checking
    its version (`load_fingerprint`'s errors)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            _check_version(data["meta"], path)  # (a DedupError: not caught below)
            return {name: data[name].astype(_DTYPES[name]) for name in names}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise DedupError(ReasonCode.INTERNAL_ERROR, f"cannot read fingerprint {path}: {error}") from error


# --- comparing two videos -------------------------------------------------------------------


def compare(a: Fingerprint, b: Fingerprint, *, max_offset_s: float = MAX_OFFSET_S) -> Match:
    """Score the pair under the match rule of the module docstring."""
    visual, visual_lag = _visual_score(a, b, round(max_offset_s * FRAME_RATE_HZ))
    curves_a, curves_b = _loudness_curves(a.band_db), _loudness_curves(b.band_db)
    audio, audio_lag = None, 0
    if curves_a is not None and curves_b is not None:
        audio, audio_lag = _best_cosine(curves_a, curves_b, round(max_offset_s * AUDIO_RATE_HZ))
    pictures_a, pictures_b = (a.picture_descriptors, a.picture_colours), (b.picture_descriptors, b.picture_colours)
    picture, speed = picture_score(pictures_a, pictures_b)
    return Match(visual, audio, visual_lag / FRAME_RATE_HZ, audio_lag / AUDIO_RATE_HZ, picture, speed)


def similarity(a: Fingerprint, b: Fingerprint) -> float:
    """`compare(a, b).similarity`: about 1 for copies of one video, about 0 for unrelated ones."""
    return compare(a, b).similarity


def _lags(length_a: int, length_b: int, max_lag: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lags (b's index minus a's) within `max_lag` whose overlap covers `MIN_OVERLAP_SHARE` of the
    shorter sequence, with the overlap's start in a, start in b, and length."""
    lags = np.arange(-max_lag, max_lag + 1)
    start_a, start_b = np.maximum(0, -lags), np.maximum(0, lags)
    overlap = np.minimum(length_a - start_a, length_b - start_b)
    keep = overlap >= max(1, MIN_OVERLAP_SHARE * min(length_a, length_b))
    return lags[keep], start_a[keep], start_b[keep], overlap[keep]


def _visual_score(a: Fingerprint, b: Fingerprint, max_lag: int) -> tuple[float | None, int]:
    best, best_lag = None, 0
    slack_a, slack_b = _colour_slack(a.frame_chroma), _colour_slack(b.frame_chroma)
    for lag, start_a, start_b, overlap in zip(*_lags(len(a.frame_hashes), len(b.frame_hashes), max_lag), strict=True):
        x, y = a.frame_hashes[start_a : start_a + overlap], b.frame_hashes[start_b : start_b + overlap]
        informative = (x != 0) | (y != 0)
        if not informative.any():
            continue
        colour_x = a.frame_chroma[start_a : start_a + overlap].astype(np.int16)
        colour_y = b.frame_chroma[start_b : start_b + overlap].astype(np.int16)
        slack = np.maximum(slack_a[start_a : start_a + overlap], slack_b[start_b : start_b + overlap])
        same_colour = np.abs(colour_x - colour_y).mean(axis=1) <= MAX_CHROMA_DIFF + slack
        close = (np.bitwise_count(x ^ y) <= MAX_FRAME_BITS) & same_colour & (x != 0) & (y != 0)
        share = float(close.sum() / informative.sum())
        if best is None or share > best:
            best, best_lag = share, int(lag)
    return best, best_lag


def _colour_slack(chroma: np.ndarray) -> np.ndarray:
    """`[F]`: how much a sample's mean colour difference may grow when a copy samples it up to half
    a step off (at a cut, say): half its larger mean change to a neighbouring sample."""
    step = np.abs(np.diff(chroma.astype(np.int16), axis=0)).mean(axis=1)
    return 0.5 * np.maximum(np.r_[0.0, step], np.r_[step, 0.0])


def _loudness_curves(band_db: np.ndarray) -> np.ndarray | None:
    """`[T, B]` cube roots of band power, each band centred over the track; None when silent."""
    if len(band_db) == 0:
        return None
    curves = 10.0 ** (band_db.astype(np.float64) * (DB_STEP / 30.0))
    centred = curves - curves.mean(axis=0)
    return centred if centred.std() > _SILENT_TRACK_STD else None


def _best_cosine(x: np.ndarray, y: np.ndarray, max_lag: int) -> tuple[float, int]:
    """Best cosine similarity of `x[t]` and `y[t + lag]` (`[T, B]` each) over the allowed lags."""
    lags, start_a, start_b, overlap = _lags(len(x), len(y), max_lag)
    if len(lags) == 0:
        return 0.0, 0
    size = scipy.fft.next_fast_len(len(x) + len(y))
    spectrum = np.conj(scipy.fft.rfft(x, size, axis=0)) * scipy.fft.rfft(y, size, axis=0)
    products = scipy.fft.irfft(spectrum.sum(axis=1), size)[lags % size]  # sum over t of x[t] . y[t + lag]
    energy_x = np.concatenate([[0.0], np.cumsum((x * x).sum(axis=1))])
    energy_y = np.concatenate([[0.0], np.cumsum((y * y).sum(axis=1))])
    norms = np.sqrt(
        (energy_x[start_a + overlap] - energy_x[start_a]) * (energy_y[start_b + overlap] - energy_y[start_b])
    )
    cosines = np.divide(products, norms, out=np.zeros_like(products), where=norms > 1e-12)
    best = int(np.argmax(cosines))
    return float(cosines[best]), int(lags[best])
