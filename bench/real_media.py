"""The curation pipeline on the real-media corpus, with real weights: what it measured against the truth.

In: the corpus of `tests/support/real_media.py` (real music from Debian's pushover-data, espeak-ng
speech at known times, a 12 s silent gap, a music-only control, a 5.1 track with dialogue on the
centre channel) and the real HTDemucs v4 weights (`make weights`; `--model-dir` for another folder).
Out: a table on stdout, one row per clip: speech and silence seconds found and true, the flags,
the accompaniment's SDR against the known music, and the wall time of `dvmset separate`
(separation, speech detection, clips).

    .venv/bin/python bench/real_media.py [--model-dir DIR] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dvmset.catalog import Catalog  # noqa: E402
from dvmset.config import load_config  # noqa: E402
from dvmset.models import weights_cache_dir  # noqa: E402
from dvmset.storage import ACCOMPANIMENT_FILE, DataRoot  # noqa: E402
from tests.support.real_media import CLIP_S, build_corpus, signal_to_distortion_db  # noqa: E402


def run_stages(work: Path, model_dir: Path) -> float:
    """discover, download and separate the corpus under `work`; the seconds `separate` took."""
    config = work / "dvmset.toml"
    config.write_text(
        f'data_root = "{work / "data"}"\nmodel_dir = "{model_dir}"\n[download]\nmin_duration_s = {CLIP_S}\n'
        f'[probe]\nmin_duration_s = {CLIP_S}\n[separate]\nmodel = "htdemucs"\n[clip]\nclip_s = {CLIP_S}\n',
        encoding="utf-8",
    )
    environ = {key: value for key, value in os.environ.items() if not key.startswith("DVMSET_")}
    seconds = 0.0
    for args in (["discover", "--folder", str(work / "corpus")], ["download"], ["separate"]):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dvmset", *args, "-c", str(config)], check=True, env=environ)
        seconds = time.perf_counter() - started
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=weights_cache_dir() / "htdemucs")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dvmset-bench-real-media-"))
    truths = build_corpus(work / "corpus")
    separate_s = run_stages(work, args.model_dir.resolve())
    config = load_config(work / "dvmset.toml", environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    case_of = {str(t.path.resolve()): t for t in truths.values()}
    table = Table(
        title=f"Real-media corpus, {len(truths)} clips of {CLIP_S:.0f} s; `dvmset separate` took {separate_s:.0f} s"
    )
    for column in ("clip", "speech s (truth)", "silence s (truth)", "flags", "accompaniment SDR dB"):
        table.add_column(column)
    videos = {video.video_id: video for video in catalog.videos()}
    for clip in sorted(catalog.clips(), key=lambda c: case_of[str(Path(videos[c.video_id].url).resolve())].name):
        truth = case_of[str(Path(videos[clip.video_id].url).resolve())]
        stems = DataRoot(config.data_root).stems_dir(clip.video_id) / ACCOMPANIMENT_FILE
        accompaniment, _rate_hz = sf.read(stems, dtype="float32", always_2d=True)
        scores = clip.prescreen
        table.add_row(
            truth.name,
            f"{scores.speech_s:.1f} ({truth.speech_s:.1f})",
            f"{scores.silence_s:.1f} ({truth.silence_s:.1f})",
            ", ".join(flag.value for flag in scores.flags) or "-",
            f"{signal_to_distortion_db(truth.music, accompaniment):.1f}",
        )
    Console().print(table)
    print(f"workdir: {work}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
