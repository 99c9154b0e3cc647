"""The evaluation report: summaries of runs (whole test set and per query), as JSON and as Markdown
tables in the layout of the paper's Table 1, with the protocol written down.

In: `RunResult`s (from `evaluate`), the `EvalSettings` and a few facts about the inputs (manifest,
data root, CLAP sample rate). Out: `summarize` -> `RunSummary`; `summarize_runs` -> each run's
`RunSummaries` (whole set and per query, computed once: FD costs a matrix factorisation); `chance_levels`
-> the chance row (events at random times against the ground-truth music); `report_json` -> a JSON-ready
dict; `report_markdown` -> text; `write_report` -> `<out>/<name>.json` and `<out>/<name>.md`, atomically.
Every metric of every run is read against two references scored under the same protocol, the ground-truth
music (upper) and music shuffled across clips (chance), and, where one is defined, the chance row.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from dvmset.storage import atomic_write_text
from model.metrics.agreement import TEMPO_FACTORS, AgreementSummary, summarize_agreement
from model.metrics.beats import ONSET_DETECTOR, ONSET_SAMPLE_RATE_HZ
from model.metrics.clap import MIN_WINDOW_S
from model.metrics.distribution import frechet_distance
from model.metrics.evaluate import GROUND_TRUTH_RUN, SHUFFLED_RUN, ClipResult, EvalSettings, RunResult
from model.metrics.imagebind import checkpoint_path
from model.metrics.imagebind_inputs import AUDIO_PROTOCOL as IMAGEBIND_AUDIO_PROTOCOL
from model.metrics.imagebind_inputs import VIDEO_PROTOCOL as IMAGEBIND_VIDEO_PROTOCOL
from model.metrics.panns import PANNS_SAMPLE_RATE_HZ
from model.metrics.rhythm import STABLE_VISUAL_RULE, RhythmSummary, mean_or_none, summarize_rhythm
from model.metrics.transitions import TRACKED_BEATS, TransitionSummary, summarize_transitions

PACKAGES = ("dvmset", "torch", "transformers", "librosa", "scenedetect", "opencv-python-headless", "numpy", "scipy")
NOT_AVAILABLE = "n/a"
ESCAPED_PIPE = "\\|"  # a literal | inside a Markdown table cell
CHANCE_ROW = "chance"
CHANCE_DEFINITION = (
    "what events at random times score against the ground-truth music: Rhythm and transition recall, scene "
    "changes at random times (the share of the time within the tolerance of a beat); transition precision, "
    "beats at random times (the share within the tolerance of a transition); beat F, the ground truth's beats "
    "moved by a random offset. FD, KL, ImageBind, CLAP, BCS/BHS and tempo have no such level: the "
    "shuffled music is their chance reference"
)


@dataclass(frozen=True)
class RunSummary:
    """A run's metrics over a set of clips (None where a metric has nothing to average)."""

    clips: int
    fd: float | None
    kl: float | None
    clap: float | None
    imagebind: float | None
    rhythm: RhythmSummary
    bcs: float | None
    bhs: float | None
    beat_scored_clips: int
    transitions: TransitionSummary
    agreement: AgreementSummary


def summarize(clips: Sequence[ClipResult]) -> RunSummary:
    """FD over the clips' PANNs embeddings (None under 2 clips), means of the paired metrics, rhythm."""
    fd = None
    if len(clips) >= 2:
        generated = np.stack([clip.generated_embedding for clip in clips])
        fd = frechet_distance(generated, np.stack([clip.reference_embedding for clip in clips]))
    return RunSummary(
        clips=len(clips),
        fd=fd,
        kl=mean_or_none([clip.kl for clip in clips]),
        clap=mean_or_none([clip.clap for clip in clips]),
        imagebind=mean_or_none([clip.imagebind for clip in clips]),
        rhythm=summarize_rhythm([clip.rhythm for clip in clips]),
        bcs=mean_or_none([clip.beats.coverage for clip in clips]),
        bhs=mean_or_none([clip.beats.hit for clip in clips]),
        beat_scored_clips=sum(1 for clip in clips if clip.beats.reference_beats),
        transitions=summarize_transitions([clip.transitions for clip in clips]),
        agreement=summarize_agreement([clip.agreement for clip in clips]),
    )


@dataclass(frozen=True)
class RunSummaries:
    """A run's summary over all its clips (`whole`) and per query (`per_query`, queries sorted)."""

    whole: RunSummary
    per_query: dict[str, RunSummary]


def summarize_runs(results: Sequence[RunResult]) -> dict[str, RunSummaries]:
    """{run name: its `RunSummaries`}, in the order of `results`."""
    return {result.name: RunSummaries(summarize(result.clips), by_query(result.clips)) for result in results}


def by_query(clips: Sequence[ClipResult]) -> dict[str, RunSummary]:
    """`summarize` per query (clips without a query under "(none)"), queries sorted."""
    groups: dict[str, list[ClipResult]] = {}
    for clip in clips:
        groups.setdefault(clip.query or "(none)", []).append(clip)
    return {query: summarize(groups[query]) for query in sorted(groups)}


def chance_levels(summaries: dict[str, RunSummaries]) -> dict[str, float | None] | None:
    """The chance row (`CHANCE_DEFINITION`), from the ground-truth run's clips; None without that run."""
    if GROUND_TRUTH_RUN not in summaries:
        return None
    truth = summaries[GROUND_TRUTH_RUN].whole
    return {
        "rhythm": truth.rhythm.mean_chance_recall,
        "transition_recall": truth.transitions.chance_recall,
        "transition_precision": truth.transitions.chance_precision,
        "beat_f_measure": truth.agreement.chance_f_measure,
    }


def protocol(
    settings: EvalSettings, clap_sample_rate_hz: int, clap_window_s: float, imagebind_unavailable: str | None
) -> dict[str, Any]:
    """Every protocol choice and package version, as written into the report; `imagebind_unavailable` is
    None when the ImageBind score was computed, else why it was not."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return {
        "versions": {"python": platform.python_version(), **versions},
        **settings.scenes.protocol(),
        "rhythm_tolerance_s": settings.tolerance_s,
        "references": f"every metric is also scored for '{GROUND_TRUTH_RUN}' (each clip's own music: the upper "
        f"reference) and '{SHUFFLED_RUN}' (another clip's music, a seeded derangement: the chance reference), "
        "under this same protocol",
        "chance_row": CHANCE_DEFINITION,
        "rhythm_exclude": settings.exclude,
        "rhythm_exclude_rule": STABLE_VISUAL_RULE
        if settings.exclude == "stable-visual"
        else "clips without scene changes only",
        **settings.beat_tracker.protocol(),
        "rhythm_scene_changes": "of the reference clip (scene_source); those after the end of the generated music "
        "are not counted",
        "transitions": "beat alignment at storyboard transitions (VeM): transitions are the starts of the "
        "storyboard's shots after the first (model.video_structure.storyboard over the Rhythm score's scene "
        "changes, within the shorter of clip and generated music); recall = transitions with a tracked beat of "
        "the generated music within transition_tolerance_s, precision = tracked beats with a transition within "
        "it; the exclusion rule applies",
        "transition_tolerance_s": settings.transition_tolerance_s,
        "tracked_beats": TRACKED_BEATS,
        "beat_agreement": "F-measure of the generated music's tracked beats against the reference music's "
        "(mir_eval.beat.f_measure's definition, own code): beats before beat_skip_s left out, one-to-one "
        "matching within beat_match_tolerance_s; chance: the generated beats moved by a random offset",
        "beat_match_tolerance_s": settings.beat_match_tolerance_s,
        "beat_skip_s": settings.beat_skip_s,
        "tempo": "tempo of each music (the tracked beats' global tempo); Acc1: the generated tempo within "
        "tempo_tolerance of the reference's, Acc2: of "
        + ", ".join(f"{f:.3g}" for f in TEMPO_FACTORS)
        + " times it (Gouyon et al. 2006); shares of clips",
        "tempo_tolerance": settings.tempo_tolerance,
        "onset_detector": ONSET_DETECTOR,
        "onset_sample_rate_hz": ONSET_SAMPLE_RATE_HZ,
        "beat_bin_s": settings.beat_bin_s,
        "bcs_bhs": "D2M-GAN (Zhu et al. 2022): BCS = B_g / B_t, BHS = B_a / B_t over onset bins",
        "panns_checkpoint": settings.panns_checkpoint,
        "panns_sample_rate_hz": PANNS_SAMPLE_RATE_HZ,
        "fd": "Frechet distance of Gaussian fits to PANNs Cnn14 fc1 embeddings (2048), generated vs reference set",
        "kl": "mean over pairs of KL(softmax(reference logits) || softmax(generated logits)), Cnn14 527 AudioSet "
        "logits before the sigmoid (audioldm_eval 'KL' / AudioGen)",
        "clap_model": settings.clap_model_id,
        "clap_sample_rate_hz": clap_sample_rate_hz,
        "clap_windows": f"consecutive {clap_window_s:g} s windows (last under {MIN_WINDOW_S:g} s dropped), "
        "embeddings averaged and renormalized; score = mean cosine of generated and reference music",
        **_imagebind_protocol(settings, imagebind_unavailable),
        "audio_resampling": "mono (channel mean), soxr HQ to each metric's rate",
        "shuffle_seed": settings.shuffle_seed,
    }


def _imagebind_protocol(settings: EvalSettings, unavailable: str | None) -> dict[str, Any]:
    if unavailable is not None:
        return {"imagebind": f"not available: {unavailable}"}
    return {
        "imagebind": "cosine of ImageBind's embedding of the reference clip's video and its embedding of "
        "the generated music, per clip; mean over clips",
        "imagebind_checkpoint": str(checkpoint_path(str(settings.imagebind_checkpoint), settings.model_dir).absolute()),
        "imagebind_video": IMAGEBIND_VIDEO_PROTOCOL,
        "imagebind_audio": IMAGEBIND_AUDIO_PROTOCOL,
    }


def report_json(
    results: Sequence[RunResult],
    summaries: dict[str, RunSummaries],
    protocol_block: dict[str, Any],
    inputs: dict[str, Any],
) -> dict[str, Any]:
    """The report as a JSON-ready dict: inputs, protocol, per run its summary, per-query summaries and clips."""
    runs = []
    for result in results:
        summary = summaries[result.name]
        runs.append(
            {
                "name": result.name,
                "summary": asdict(summary.whole),
                "by_query": {query: asdict(query_summary) for query, query_summary in summary.per_query.items()},
                "missing_clips": list(result.missing),
                "unreadable_clips": [{"clip_id": clip_id, "reason": reason} for clip_id, reason in result.unreadable],
                "clips": [
                    {
                        "clip_id": c.clip_id,
                        "query": c.query,
                        "kl": c.kl,
                        "clap": c.clap,
                        "imagebind": c.imagebind,
                        "rhythm_recall": c.rhythm.recall,
                        "scene_changes": c.rhythm.scene_changes,
                        "rhythm_hits": c.rhythm.hits,
                        "rhythm_chance_recall": c.rhythm.chance_recall,
                        "beats": c.rhythm.beats,
                        "bcs": c.beats.coverage,
                        "bhs": c.beats.hit,
                        "onset_bins_reference": c.beats.reference_beats,
                        "onset_bins_generated": c.beats.generated_beats,
                        "onset_bins_hit": c.beats.hit_beats,
                        "transitions": c.transitions.transitions,
                        "transition_recall": c.transitions.recall,
                        "transition_precision": c.transitions.precision,
                        "transition_chance_recall": c.transitions.chance_recall,
                        "transition_chance_precision": c.transitions.chance_precision,
                        "beat_f_measure": c.agreement.f_measure,
                        "beat_f_measure_chance": c.agreement.chance_f_measure,
                        "tempo_bpm_reference": c.agreement.reference_tempo_bpm,
                        "tempo_bpm_generated": c.agreement.generated_tempo_bpm,
                        "tempo_acc1": c.agreement.tempo_acc1,
                        "tempo_acc2": c.agreement.tempo_acc2,
                    }
                    for c in result.clips
                ],
            }
        )
    return {"inputs": inputs, "protocol": protocol_block, "chance": chance_levels(summaries), "runs": runs}


def _cell(value: float | None, digits: int) -> str:
    return NOT_AVAILABLE if value is None else f"{value:.{digits}f}"


def _table(rows: dict[str, RunSummary], first: str, chance: dict[str, float | None] | None = None) -> list[str]:
    lines = [
        f"| {first} | clips | FD ↓ | KL ↓ | ImageBind ↑ | CLAP ↑ | Rhythm ↑ |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in rows.items():
        lines.append(
            f"| {name} | {s.clips} | {_cell(s.fd, 2)} | {_cell(s.kl, 3)} | {_cell(s.imagebind, 4)} | "
            f"{_cell(s.clap, 4)} | {_cell(s.rhythm.mean_recall, 4)} |"
        )
    if chance is not None:
        lines.append(f"| {CHANCE_ROW} | | {' | '.join([NOT_AVAILABLE] * 4)} | {_cell(chance['rhythm'], 4)} |")
    return lines


def _transitions_table(rows: dict[str, RunSummary], chance: dict[str, float | None] | None) -> list[str]:
    lines = [
        "| run | clips with transitions | transition recall ↑ | chance | transition precision ↑ | chance | "
        "beat F ↑ | chance | tempo Acc1 ↑ | tempo Acc2 ↑ |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in rows.items():
        t, a = s.transitions, s.agreement
        values = (t.recall, t.chance_recall, t.precision, t.chance_precision, a.f_measure, a.chance_f_measure)
        cells = [_cell(value, 4) for value in values] + [_cell(a.tempo_acc1, 3), _cell(a.tempo_acc2, 3)]
        lines.append(f"| {name} | {t.scored_clips} | {' | '.join(cells)} |")
    if chance is not None:
        lines.append(
            f"| {CHANCE_ROW} | | {_cell(chance['transition_recall'], 4)} | | "
            f"{_cell(chance['transition_precision'], 4)} | | {_cell(chance['beat_f_measure'], 4)} | | "
            f"{NOT_AVAILABLE} | {NOT_AVAILABLE} |"
        )
    return lines


def _reading(names: set[str]) -> str:
    """How to read the rows, or why they cannot be read against references."""
    if not {GROUND_TRUTH_RUN, SHUFFLED_RUN} <= names:
        return (
            "No ground-truth and shuffled references in this report (turned off, or under 2 clips): its "
            "numbers have nothing to be read against."
        )
    return (
        f"Read each run between its references, scored under the same protocol: '{GROUND_TRUTH_RUN}' (each "
        f"clip's own music: the upper reference, not always 1) and '{SHUFFLED_RUN}' (another clip's music: what "
        f"music that ignores the video gets). The '{CHANCE_ROW}' row is {CHANCE_DEFINITION}. A run near "
        f"'{SHUFFLED_RUN}' or '{CHANCE_ROW}' shows nothing the metric measures."
    )


def _rhythm_table(rows: dict[str, RunSummary]) -> list[str]:
    lines = [
        "| run | Rhythm (mean) | Rhythm (pooled) | chance | scored clips | excluded (see rhythm_exclude) | BCS | BHS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in rows.items():
        r = s.rhythm
        lines.append(
            f"| {name} | {_cell(r.mean_recall, 4)} | {_cell(r.pooled_recall, 4)} | "
            f"{_cell(r.mean_chance_recall, 4)} | {r.scored_clips} | {r.excluded_clips} | "
            f"{_cell(s.bcs, 3)} | {_cell(s.bhs, 3)} |"
        )
    return lines


def report_markdown(
    results: Sequence[RunResult],
    summaries: dict[str, RunSummaries],
    protocol_block: dict[str, Any],
    inputs: dict[str, Any],
    title: str,
) -> str:
    """Table 1 layout (one row per run), rhythm and beat details, per-query tables, and the protocol."""
    wholes = {name: summary.whole for name, summary in summaries.items()}
    chance = chance_levels(summaries)
    names = {result.name for result in results}
    lines = [f"# {title}", "", f"Manifest `{inputs['manifest']}`, {inputs['clips']} clips.", ""]
    if "repeat" in inputs:
        lines += [f"Repeat with the resolved config written beside this report: `{inputs['repeat']}`", ""]
    lines += _table(wholes, "Method", chance)
    lines += [
        "",
        _reading(names),
        "Rhythm: mean over clips of the recall of scene changes with a beat within "
        f"{protocol_block['rhythm_tolerance_s']} s (pooled recall and chance level below). "
        "KL and CLAP pair each clip with its reference; FD compares the two sets.",
        f"ImageBind: {protocol_block['imagebind']}.",
    ]
    if {GROUND_TRUTH_RUN, SHUFFLED_RUN} <= names:
        lines.append(
            "FD compares the set of generated music with the set of references, whatever the pairing: "
            f"'{GROUND_TRUTH_RUN}' and '{SHUFFLED_RUN}' hold the same music, so their FD is the same (0)."
        )
    for result in results:
        if result.missing or result.unreadable:
            lines.append(
                f"{result.name}: {len(result.missing)} clips without generated music and "
                f"{len(result.unreadable)} with unreadable music were left out."
            )
    lines += ["", "## Transitions, beats and tempo", ""] + _transitions_table(wholes, chance)
    lines += [
        "",
        f"Transitions: storyboard shot boundaries against the tracked beats within "
        f"{protocol_block['transition_tolerance_s']} s (recall: transitions on a beat; precision: beats on a "
        f"transition). Beat F: tracked beats against the ground truth's within "
        f"{protocol_block['beat_match_tolerance_s']} s, from {protocol_block['beat_skip_s']} s. Tempo: shares of "
        f"clips within {protocol_block['tempo_tolerance']:.0%} (Acc2: also at 1/3, 1/2, 2, 3 times).",
    ]
    lines += ["", "## Rhythm and beats", ""] + _rhythm_table(wholes)
    for result in results:
        lines += ["", f"## Per query: {result.name}", ""] + _table(summaries[result.name].per_query, "Query")
    lines += ["", "## Protocol", "", "| setting | value |", "|---|---|"]
    for key, value in protocol_block.items():
        shown = ", ".join(f"{k} {v}" for k, v in value.items()) if isinstance(value, dict) else value
        lines.append(f"| {key} | {str(shown).replace('|', ESCAPED_PIPE)} |")
    return "\n".join(lines) + "\n"


def write_report(
    results: Sequence[RunResult], protocol_block: dict[str, Any], inputs: dict[str, Any], out_dir: Path, name: str
) -> tuple[Path, Path]:
    """`<out_dir>/<name>.json` and `<out_dir>/<name>.md`, each written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
    summaries = summarize_runs(results)
    report = report_json(results, summaries, protocol_block, inputs)
    atomic_write_text(json_path, json.dumps(report, indent=2) + "\n")
    title = "Evaluation of " + ", ".join(result.name for result in results)
    atomic_write_text(markdown_path, report_markdown(results, summaries, protocol_block, inputs, title))
    return json_path, markdown_path
