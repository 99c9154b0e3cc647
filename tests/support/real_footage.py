"""Real footage and its altered copies, for checking near-duplicate grouping (`curation.dedup`).

The footage is real: the videos and photographs that installed packages ship (gradio's media
assets, scikit-learn's and matplotlib's sample photographs), found through the packages' own
files; nothing is downloaded. A source is either a stretch of a shipped video or a montage of two
photographs, each panned or zoomed over (a "Ken Burns" move) with a hard cut between them.

Each source is made as a 16:9 original and then altered by the `TRANSFORMS` (crops to 9:16, 1:1
and 4:3, letterbox and pillarbox pads, a horizontal mirror, speed changes, a zoom, a re-encode),
each copy under other music than the original's (real music from Debian's pushover-data where it
is installed, else chords of other notes), except the plain re-encode, which keeps it.

`build_footage(folder)` writes every video and returns them as `Footage` (source, transform,
path, speed); `matched_pairs` lists the pairs that should be grouped (every other pair should not).
"""

from __future__ import annotations

import importlib.util
import itertools
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

MUSIC_DIR = Path("/usr/share/pushover/themes")  # Debian: pushover-data
_TRACKS = ("castle", "dungeon", "aztec", "japanese", "electro", "greek", "space", "option")
_FPS = 25


def _package_file(package: str, *parts: str) -> Path | None:
    """A file shipped inside an installed package (found without importing it), or None."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent.joinpath(*parts)
    return path if path.is_file() else None


@dataclass(frozen=True)
class Source:
    """An original: `video` (a shipped video, from `start_s`) or `photos` (a montage of two)."""

    name: str
    video: tuple[str, ...] | None = None  # (package, path parts...)
    start_s: float = 0.0
    photos: tuple[tuple[str, ...], ...] = ()

    def files(self) -> list[Path | None]:
        return [_package_file(*self.video)] if self.video else [_package_file(*photo) for photo in self.photos]


SOURCES = (
    Source("earth", video=("gradio", "media_assets", "videos", "world.mp4"), start_s=8.0),
    Source(
        "safari",
        photos=(("gradio", "media_assets", "images", "cheetah.jpg"), ("gradio", "media_assets", "images", "lion.jpg")),
    ),
    Source(
        "landmarks",
        photos=(("gradio", "media_assets", "images", "tower.jpg"), ("sklearn", "datasets", "images", "china.jpg")),
    ),
    Source(
        "portraits",
        photos=(
            ("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg"),
            ("gradio", "media_assets", "images", "groot.jpeg"),
        ),
    ),
    Source(
        "closeups",
        photos=(("gradio", "media_assets", "images", "cheetah1.jpg"), ("sklearn", "datasets", "images", "flower.jpg")),
    ),
    Source("end_card", video=("gradio", "media_assets", "videos", "a.mp4")),
)


@dataclass(frozen=True)
class Transform:
    """How a copy differs from its original: an ffmpeg video filter (`{w}`, `{h}`: the original's
    size), a speed factor (2: twice as fast), the x264 CRF, and whether it keeps the music."""

    name: str
    video_filter: str = "null"
    speed: float = 1.0
    crf: int = 28
    same_music: bool = False


TRANSFORMS = (
    Transform("reencode", "scale={w}*2/3:-2", crf=36, same_music=True),
    Transform("crop_9x16", "crop=trunc(ih*9/32)*2:ih"),
    Transform("crop_1x1", "crop=ih:ih"),
    Transform("pillarbox_4x3", "crop=trunc(ih*2/3)*2:ih,pad={w}:{h}:(ow-iw)/2:0"),
    Transform("letterbox_9x16", "pad=iw:trunc(iw*8/9)*2:0:(oh-ih)/2"),
    Transform("mirror", "hflip"),
    Transform("speed_1.25", speed=1.25),
    Transform("speed_0.8", speed=0.8),
    Transform("zoom_1.2", "crop=trunc(iw/2.4)*2:trunc(ih/2.4)*2,scale={w}:{h}"),
    Transform("crop_9x16_mirror_speed_1.1", "crop=trunc(ih*9/32)*2:ih,hflip", speed=1.1, crf=32),
)
ORIGINAL = "original"


@dataclass(frozen=True)
class Footage:
    source: str
    transform: str  # ORIGINAL or a `Transform.name`
    path: Path
    speed: float = 1.0  # how much faster than the original it plays

    @property
    def name(self) -> str:
        return f"{self.source}.{self.transform}"


def footage_available() -> bool:
    """True when every source's shipped files are installed (and ffmpeg is)."""
    return shutil.which("ffmpeg") is not None and all(path for source in SOURCES for path in source.files())


def build_footage(
    folder: Path,
    *,
    sources: tuple[Source, ...] = SOURCES,
    transforms: tuple[Transform, ...] = TRANSFORMS,
    duration_s: float = 10.0,
    height_px: int = 360,
) -> list[Footage]:
    """Write each source's 16:9 original (`height_px` high, `duration_s` long or the shipped video's
    length if shorter) and every transform of it into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for number, source in enumerate(sources):
        original = _make_original(folder / f"{source.name}.mp4", source, number, duration_s, height_px)
        made.append(Footage(source.name, ORIGINAL, original))
        for shift, transform in enumerate(transforms, start=1):
            path = folder / f"{source.name}.{transform.name}.mp4"
            track = number if transform.same_music else number + 1 + shift % (len(_TRACKS) - 1)  # never the original's
            _make_copy(path, original, transform, track, height_px)
            made.append(Footage(source.name, transform.name, path, transform.speed))
    return made


def matched_pairs(
    footage: list[Footage], speed_range: tuple[float, float] = (0.0, float("inf"))
) -> list[tuple[Footage, Footage]]:
    """Every pair of videos made from one source, one playing the other's pictures at a speed
    within `speed_range` (two copies sped up and slowed down differ by more than either)."""
    low, high = speed_range
    pairs = itertools.combinations(footage, 2)
    return [(a, b) for a, b in pairs if a.source == b.source and low <= b.speed / a.speed <= high]


def _make_original(path: Path, source: Source, number: int, duration_s: float, height_px: int) -> Path:
    width = height_px * 16 // 9 // 2 * 2
    files = source.files()
    if source.video:
        inputs = ["-ss", str(source.start_s), "-t", str(duration_s), "-i", str(files[0])]
        picture = f"[0:v]scale={width}:{height_px},setsar=1,fps={_FPS}[v]"
    else:
        segment_s = duration_s / len(files)
        inputs = []
        for file in files:
            inputs += ["-loop", "1", "-framerate", str(_FPS), "-t", str(segment_s), "-i", str(file)]
        moves = [_ken_burns(index, width, height_px, round(segment_s * _FPS)) for index in range(len(files))]
        joined = "".join(f"[p{index}]" for index in range(len(files)))
        picture = ";".join(moves) + f";{joined}concat=n={len(files)}:v=1:a=0[v]"
    music = _music_input(number, duration_s)
    args = [*inputs, *music, "-filter_complex", picture, "-map", "[v]", "-map", f"{len(files)}:a"]
    _ffmpeg([*args, *_encode(20), "-t", str(duration_s), "-shortest", str(path)])
    return path


def _ken_burns(index: int, width: int, height: int, frames: int) -> str:
    """A filter chain for photo input `index`: covered to 16:9, then zoomed in (even inputs) or
    panned left to right (odd ones) over `frames` frames, labelled `[p<index>]`."""
    canvas = f"{2 * width}:{2 * height}"
    cover = f"[{index}:v]scale={canvas}:force_original_aspect_ratio=increase,crop={canvas}"
    if index % 2 == 0:
        move = f"zoompan=z='1+0.3*on/{frames}':x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2':d=1:s={width}x{height}:fps={_FPS}"
    else:
        move = f"zoompan=z=1.3:x='(iw-iw/zoom)*on/{frames}':y='ih/2-ih/zoom/2':d=1:s={width}x{height}:fps={_FPS}"
    return f"{cover},{move},setsar=1[p{index}]"


def _make_copy(path: Path, original: Path, transform: Transform, track: int, height_px: int) -> None:
    width = height_px * 16 // 9 // 2 * 2
    video_filter = transform.video_filter.format(w=width, h=height_px)
    if transform.speed != 1.0:
        video_filter += f",setpts=PTS/{transform.speed}"
    args = ["-i", str(original)]
    if transform.same_music:
        audio = ["-map", "0:a"]
    else:
        args += _music_input(track, 60.0)
        audio = ["-map", "1:a", "-shortest"]
    args += ["-map", "0:v", *audio, "-vf", f"{video_filter},setsar=1", *_encode(transform.crf), str(path)]
    _ffmpeg(args)


def _music_input(track: int, duration_s: float) -> list[str]:
    """ffmpeg input arguments for music number `track` (modulo 8): a pushover track when installed,
    else a chord of its own."""
    name = _TRACKS[track % len(_TRACKS)]
    if (MUSIC_DIR / f"{name}.ogg").is_file():
        return ["-ss", "10", "-t", str(duration_s), "-i", str(MUSIC_DIR / f"{name}.ogg")]
    semitones = [(track % len(_TRACKS) * 3 + k * 4) % 24 for k in range(3)]
    notes = "+".join(f"0.2*sin(2*PI*{110 * 2 ** (semitone / 12):.2f}*t)" for semitone in semitones)
    return ["-f", "lavfi", "-t", str(duration_s), "-i", f"aevalsrc={notes}:s=44100"]


def _encode(crf: int) -> list[str]:
    return [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-crf",
        str(crf),
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "96k",
    ]


def _ffmpeg(args: list[str]) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, capture_output=True, timeout=300)
