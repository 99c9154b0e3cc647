"""The evaluation report on real media (issue 19): every metric beside its references, under both Rhythm
protocols, and what the onset protocol gives for cuts on the beat against cuts at random times.

In: 30 s of each recorded track of Debian's pushover-data (`tests/support/real_media.music_excerpt`, from
`--start-s`), and two lavfi pictures per track (a test pattern whose hue jumps at each cut, 25 fps):
- edited: cuts on the music's tracked beats (`model.music_features`), shots of 2 to 4 beats, as an editor
  cuts a promo to its music (the corpus has no professionally edited video: this stands in for one);
- random: as many cuts at uniform random times (seeded), at least `MIN_SHOT_S` apart.
The evaluator (`model.metrics.evaluate.evaluate_runs`, PySceneDetect on every video) scores the edited clips
with each clip's own music as the "generated" run, beside the ground-truth and shuffled references, once per
Rhythm protocol (`onsets-d2m`, the default, and `beat_track`); then the ground-truth music of both sets.
FD, KL, CLAP and ImageBind read the tests' tiny random-weight stand-ins (`tests/support/tiny_models.py`):
their numbers show that the rows are there, they are not data. The rhythm and beat metrics need no network.
Out: on stdout, the metric table (own music, ground truth, shuffled, chance) and the edited-vs-random table;
the full reports (JSON, Markdown) under `--out` (default: a temporary folder, printed).

    .venv/bin/python bench/evaluate_real_media.py [--out DIR] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.evaluate import tiny_models  # noqa: E402
from model.metrics.evaluate import (  # noqa: E402
    GROUND_TRUTH_RUN,
    SHUFFLED_RUN,
    EvalClip,
    EvalSettings,
    MetricModels,
    evaluate_runs,
    reference_runs,
)
from model.metrics.report import RunSummary, chance_levels, protocol, summarize_runs, write_report  # noqa: E402
from model.metrics.rhythm import TOLERANCE_S, d2m_onset_beats_s, default_beat_tracker, scene_change_hits  # noqa: E402
from model.metrics.trackers import BEAT_PROTOCOLS, load_beat_tracker  # noqa: E402
from model.music_features import ANALYSIS_RATE_HZ, music_features  # noqa: E402
from model.tokens import MusicAt  # noqa: E402
from tests.support.generated_media import make_cut_video  # noqa: E402
from tests.support.real_media import CLIP_S, MUSIC_DIR, SAMPLE_RATE_HZ, music_excerpt  # noqa: E402

FPS = 25
MIN_SHOT_S = 1.0
SHOT_BEATS = (2, 3, 4)
OWN_RUN = "own music (as generated)"
PROTOCOLS = ("onsets-d2m", "beat_track")
STAND_IN = "tiny random-weight stand-in: not data"


def edited_cuts_s(beats_s: np.ndarray, rng: np.random.Generator) -> list[float]:
    """Cuts on the beats, every 2nd to 4th beat (drawn), inside (MIN_SHOT_S, CLIP_S - MIN_SHOT_S)."""
    cuts, index = [], int(rng.choice(SHOT_BEATS))
    while index < beats_s.size:
        if MIN_SHOT_S < beats_s[index] < CLIP_S - MIN_SHOT_S:
            cuts.append(float(beats_s[index]))
        index += int(rng.choice(SHOT_BEATS))
    return cuts


def random_cuts_s(count: int, rng: np.random.Generator) -> list[float]:
    """`count` uniform times inside (MIN_SHOT_S, CLIP_S - MIN_SHOT_S), at least MIN_SHOT_S apart (uniform
    times on the span less the gaps, each then moved on by the gaps before it)."""
    slack_s = CLIP_S - 2 * MIN_SHOT_S - (count - 1) * MIN_SHOT_S
    return (MIN_SHOT_S + np.sort(rng.uniform(0.0, slack_s, count)) + MIN_SHOT_S * np.arange(count)).tolist()


def write_video(path: Path, cuts_s: list[float]) -> Path:
    """A 320x240 H.264 test pattern of CLIP_S at FPS whose hue jumps at the frame nearest each cut."""
    steps = "+".join(f"gte(t,{round(cut * FPS) / FPS - 0.5 / FPS:.3f})" for cut in cuts_s) or "0"
    return make_cut_video(path, CLIP_S, fps=FPS, size="320x240", hue=f"h='97*({steps})':s=1.5")


def make_clips(folder: Path, start_s: float, seed: int) -> tuple[list[EvalClip], list[EvalClip]]:
    """The edited and the random clip of every track (music.flac, edited.mp4, random.mp4 per track)."""
    rng = np.random.default_rng(seed)
    edited, at_random = [], []
    for track in sorted(path.stem for path in MUSIC_DIR.glob("*.ogg")):
        clip_dir = folder / track
        clip_dir.mkdir(parents=True, exist_ok=True)
        music = music_excerpt(track, start_s)[: round(CLIP_S * SAMPLE_RATE_HZ)]
        music_path = clip_dir / "music.flac"
        sf.write(music_path, music, SAMPLE_RATE_HZ, subtype="PCM_16")
        beats_s = music_features(MusicAt(music_path)(ANALYSIS_RATE_HZ)).beats_s  # as the evaluator reads it
        cuts = edited_cuts_s(beats_s, rng)
        edited.append(
            EvalClip(f"real:{track}:edited", "edited", write_video(clip_dir / "edited.mp4", cuts), music_path, CLIP_S)
        )
        random_video = write_video(clip_dir / "random.mp4", random_cuts_s(len(cuts), rng))
        at_random.append(EvalClip(f"real:{track}:random", "random", random_video, music_path, CLIP_S))
    return edited, at_random


def evaluate_set(
    clips: list[EvalClip],
    runs: dict[str, dict[str, Path | None]],
    models: MetricModels,
    imagebind_path: Path,
    beats: str,
    out: Path,
    name: str,
) -> dict[str, RunSummary]:
    """Each run's summary over `clips` under the `beats` protocol (and the chance levels, under "chance");
    the report written to `out/<name>.json` and `.md`."""
    tracker = load_beat_tracker(BEAT_PROTOCOLS[beats])
    settings = EvalSettings(beat_tracker=tracker, imagebind_checkpoint=str(imagebind_path))
    results = evaluate_runs(clips, runs, models, settings)
    block = protocol(settings, models.clap.sample_rate_hz, models.clap.window_s, None)
    block["stand_in_models"] = f"PANNs, CLAP, ImageBind: the tests' {STAND_IN}"
    write_report(results, block, {"manifest": "bench: pushover-data real media", "clips": len(clips)}, out, name)
    summaries = summarize_runs(results)
    return {run: summary.whole for run, summary in summaries.items()} | {"chance": chance_levels(summaries)}


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def metric_rows(by_protocol: dict[str, dict]) -> list[tuple[str, str, list[float | None]]]:
    """(metric, protocol, [own, ground truth, shuffled, chance]) for every metric."""
    first = by_protocol[PROTOCOLS[0]]
    runs = [first[OWN_RUN], first[GROUND_TRUTH_RUN], first[SHUFFLED_RUN]]
    chance = first["chance"]
    networks = (("FD ↓", "fd"), ("KL ↓", "kl"), ("ImageBind ↑", "imagebind"), ("CLAP ↑", "clap"))
    rows = [(f"{label} ({STAND_IN})", "", [getattr(run, key) for run in runs] + [None]) for label, key in networks]
    for beats, summaries in by_protocol.items():
        rhythm_runs = [summaries[run].rhythm.mean_recall for run in (OWN_RUN, GROUND_TRUTH_RUN, SHUFFLED_RUN)]
        rows.append(("Rhythm ↑", beats, rhythm_runs + [summaries["chance"]["rhythm"]]))
    rows += [
        ("BCS", "onset bins", [run.bcs for run in runs] + [None]),
        ("BHS ↑", "onset bins", [run.bhs for run in runs] + [None]),
        (
            "Transition recall ↑",
            "tracked beats",
            [run.transitions.recall for run in runs] + [chance["transition_recall"]],
        ),
        (
            "Transition precision ↑",
            "tracked beats",
            [run.transitions.precision for run in runs] + [chance["transition_precision"]],
        ),
        ("Beat F ↑", "tracked, ±70 ms", [run.agreement.f_measure for run in runs] + [chance["beat_f_measure"]]),
        ("Tempo Acc1 ↑", "4 %", [run.agreement.tempo_acc1 for run in runs] + [None]),
        ("Tempo Acc2 ↑", "4 %, x1/3..3", [run.agreement.tempo_acc2 for run in runs] + [None]),
    ]
    return rows


def print_onset_coverage(clips: list[EvalClip]) -> None:
    """Per track: the onsets the D2M-GAN protocol finds, and the share of tracked beats with one within the
    Rhythm tolerance (why a cut on a beat may score nothing under that protocol)."""
    print("\n| track | onsets-d2m onsets | tracked beats | beats with an onset within 0.1 s |")
    print("|---|---:|---:|---:|")
    for clip in clips:
        music = MusicAt(clip.music_path)(ANALYSIS_RATE_HZ)
        onsets_s, beats_s = d2m_onset_beats_s(music), music_features(music).beats_s
        hit = scene_change_hits(beats_s, onsets_s, TOLERANCE_S) / beats_s.size if beats_s.size else None
        print(f"| {clip.clip_id.split(':')[1]} | {onsets_s.size} | {beats_s.size} | {_cell(hit)} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="keep the clips and reports here (default: a temporary folder)")
    parser.add_argument("--start-s", type=float, default=20.0, help="where each track's excerpt starts")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cut plans and the shuffle")
    args = parser.parse_args(argv)
    if not MUSIC_DIR.is_dir():
        sys.exit(f"needs Debian's pushover-data (apt-get install pushover-data): no {MUSIC_DIR}")
    work = args.out or Path(tempfile.mkdtemp(prefix="bench-evaluate-real-media-"))
    edited, at_random = make_clips(work / "clips", args.start_s, args.seed)
    models, described = tiny_models(work / "models", imagebind=True)  # saves models/imagebind.pth
    imagebind_path = work / "models" / "imagebind.pth"
    default_beat_tracker().beats_s(np.zeros(ANALYSIS_RATE_HZ, dtype=np.float32))  # librosa's compilation, once
    own = {clip.clip_id: clip.music_path for clip in edited}
    by_protocol, random_truth = {}, {}
    for beats in PROTOCOLS:
        runs = {OWN_RUN: own} | reference_runs(edited, args.seed)
        reports = work / "reports"
        by_protocol[beats] = evaluate_set(edited, runs, models, imagebind_path, beats, reports, f"edited-{beats}")
        truth = {GROUND_TRUTH_RUN: reference_runs(at_random, args.seed)[GROUND_TRUTH_RUN]}
        random_truth[beats] = evaluate_set(at_random, truth, models, imagebind_path, beats, reports, f"random-{beats}")
    cuts = by_protocol[PROTOCOLS[0]][GROUND_TRUTH_RUN].rhythm.scene_changes
    print(
        f"{len(edited)} tracks x {CLIP_S:g} s of pushover-data music; {cuts} cuts detected on the edited clips; "
        f"models: {described} ({STAND_IN}); reports in {work / 'reports'}\n"
    )
    print("| metric | protocol | own music (as generated) | ground truth | shuffled | chance |")
    print("|---|---|---:|---:|---:|---:|")
    for metric, beats, values in metric_rows(by_protocol):
        print(f"| {metric} | {beats} | " + " | ".join(_cell(value) for value in values) + " |")
    print(
        f"\nGround-truth music, cuts on the beat (edited) vs cuts at random times, mean over the {len(edited)} "
        "clips (the edited cuts sit on the tracked beats, so transition recall is high by construction):\n"
    )
    print("| Rhythm protocol | edited | its chance | random cuts | its chance |")
    print("|---|---:|---:|---:|---:|")
    for beats in PROTOCOLS:
        on_beat = by_protocol[beats][GROUND_TRUTH_RUN].rhythm
        random_cut = random_truth[beats][GROUND_TRUTH_RUN].rhythm
        print(
            f"| {beats} | {_cell(on_beat.mean_recall)} | {_cell(on_beat.mean_chance_recall)} | "
            f"{_cell(random_cut.mean_recall)} | {_cell(random_cut.mean_chance_recall)} |"
        )
    on_beat = by_protocol[PROTOCOLS[0]][GROUND_TRUTH_RUN].transitions
    random_cut = random_truth[PROTOCOLS[0]][GROUND_TRUTH_RUN].transitions
    print(
        f"| transition recall (tracked beats) | {_cell(on_beat.recall)} | {_cell(on_beat.chance_recall)} | "
        f"{_cell(random_cut.recall)} | {_cell(random_cut.chance_recall)} |"
    )
    print_onset_coverage(edited)


if __name__ == "__main__":
    main()
