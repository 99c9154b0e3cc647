"""`dvmset evaluate` end to end: a two-clip manifest with generated media, tiny Cnn14 and CLAP in a local
model folder (and a tiny ImageBind where a test adds one), two generated runs plus the ground-truth and
shuffled references; JSON and Markdown."""

from __future__ import annotations

import json
import shlex
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from curation import prescreen
from dvmset.cli.common import ExitCode
from dvmset.cli.main import app
from dvmset.config import PrescreenConfig
from dvmset.ids import id_to_dirname
from dvmset.storage import DataRoot
from manifests.schema import ManifestRow, manifest_path, read_manifest, write_manifest
from manifests.split import Split
from model.metrics import evaluate as evaluate_module
from model.metrics.evaluate import GROUND_TRUTH_RUN, SHUFFLED_RUN
from tests.support.generated_media import BEAT_PERIOD_S, write_cut_video, write_drums
from tests.support.manifest_rows import make_row, make_video

VIDEO_S = 7.0
MUSIC_S = 8.0  # librosa trims weak beats at the very end; the last cut stays clear of it
# (video id, query, first cut and first drum hit in s): the two clips' beats are half a beat apart
CLIPS = (("youtube:food1", "food commercial", 2.0), ("youtube:city1", "city video guide", 2.0 - BEAT_PERIOD_S / 2))


@pytest.fixture
def workdir(tmp_path, monkeypatch, tiny_cnn14_path, tiny_clap_dir) -> Path:
    """A data root with two clips (cut video and drums whose hits fall on the cuts) and their test manifest;
    `models/panns/` and `models/tiny/clap`; `generated/aligned` (the same beats, other drum sounds) and
    `generated/late` (half a beat late); a config naming the data root and model folder."""
    data_root = DataRoot(tmp_path / "data").ensure()
    rows = []
    for video_id, query, first_cut_s in CLIPS:
        row = make_row(make_video(video_id, (query,)), 0.0, f"g-{video_id}", Split.TEST)
        data_root.resolve(row.video_path).parent.mkdir(parents=True, exist_ok=True)
        write_cut_video(data_root.resolve(row.video_path), VIDEO_S, first_cut_s)
        first_hit_s = first_cut_s % BEAT_PERIOD_S
        write_drums(data_root.resolve(row.music_path), MUSIC_S, first_hit_s)
        name = id_to_dirname(row.clip_id)
        (tmp_path / "generated" / "aligned").mkdir(parents=True, exist_ok=True)
        (tmp_path / "generated" / "late").mkdir(exist_ok=True)
        write_drums(tmp_path / "generated" / "aligned" / f"{name}.flac", MUSIC_S, first_hit_s, seed=7)
        write_drums(tmp_path / "generated" / "late" / f"{name}.flac", MUSIC_S, first_hit_s + BEAT_PERIOD_S / 2, seed=7)
        rows.append(row)
    write_manifest(rows, manifest_path(tmp_path / "manifests" / "v1", Split.TEST), {"manifest_version": "v1"})
    (tmp_path / "models" / "panns").mkdir(parents=True)
    shutil.copy(tiny_cnn14_path, tmp_path / "models" / "panns" / tiny_cnn14_path.name)
    shutil.copytree(tiny_clap_dir, tmp_path / "models" / "tiny" / "clap")
    (tmp_path / "dvmset.toml").write_text('data_root = "data"\nmodel_dir = "models"\n')
    monkeypatch.chdir(tmp_path)
    return tmp_path


def evaluate(*args: str, manifest: str = "manifests/v1/test.parquet") -> tuple[int, str]:
    result = CliRunner().invoke(
        app,
        ["evaluate", "--manifest", manifest, "--panns", "Cnn14_tiny.pth", "--clap", "tiny/clap", *args],
        env={"COLUMNS": "300"},
    )
    return result.exit_code, " ".join(result.output.split())


def test_evaluate_ranks_runs_and_references_and_writes_both_reports(workdir):
    code, output = evaluate("--generated", "generated/aligned", "--generated", "generated/late")
    assert code == 0, output
    report = json.loads((workdir / "reports" / "v1" / "evaluation.json").read_text())
    summaries = {run["name"]: run["summary"] for run in report["runs"]}
    assert list(summaries) == ["aligned", "late", GROUND_TRUTH_RUN, SHUFFLED_RUN]
    truth, shuffled = summaries[GROUND_TRUTH_RUN], summaries[SHUFFLED_RUN]
    assert truth["kl"] == 0.0 and truth["clap"] == pytest.approx(1.0)
    assert shuffled["kl"] > truth["kl"] and shuffled["clap"] < truth["clap"]
    assert truth["rhythm"]["mean_recall"] == 1.0 and shuffled["rhythm"]["mean_recall"] == 0.0
    assert truth["fd"] == pytest.approx(shuffled["fd"], abs=1e-6)  # the same set of music
    assert summaries["aligned"]["rhythm"]["pooled_recall"] == 1.0
    assert summaries["late"]["rhythm"]["pooled_recall"] == 0.0
    assert summaries["aligned"]["bhs"] == 1.0 and summaries["aligned"]["bcs"] == 1.0
    assert truth["rhythm"]["scene_changes"] == 6 and truth["rhythm"]["excluded_clips"] == 0  # 3 cuts each
    aligned = report["runs"][0]
    assert set(aligned["by_query"]) == {"food commercial", "city video guide"}
    assert aligned["by_query"]["food commercial"]["clips"] == 1 and aligned["by_query"]["food commercial"]["fd"] is None
    protocol = report["protocol"]
    assert protocol["scene_detector"] == "PySceneDetect ContentDetector" and protocol["scene_threshold"] == 27.0
    assert protocol["panns_sample_rate_hz"] == 32_000 and protocol["rhythm_tolerance_s"] == 0.1
    assert protocol["imagebind"] == (
        f"not available: no ImageBind weights at {workdir / 'models' / 'imagebind' / 'imagebind_huge.pth'}; "
        "download imagebind_huge.pth from https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"
    )
    assert all(run["summary"]["imagebind"] is None for run in report["runs"])
    assert "ImageBind: not available: no ImageBind weights at" in output
    markdown = (workdir / "reports" / "v1" / "evaluation.md").read_text()
    assert "| Method | clips | FD ↓ | KL ↓ | ImageBind ↑ | CLAP ↑ | Rhythm ↑ |" in markdown
    assert f"| {GROUND_TRUTH_RUN} | 2 | " in markdown and "## Per query: aligned" in markdown
    assert "| scene_detector | PySceneDetect ContentDetector |" in markdown
    assert "their FD is the same" in markdown
    assert f"| {GROUND_TRUTH_RUN} | 2 | 0.00 | 0.000 | n/a | 1.0000 | 1.0000 |" in markdown


def test_every_metric_is_scored_for_both_references_beside_a_chance_row(workdir):
    """The drums fall on the cuts (2, 4, 6 s) of their own clip and half a beat off the other clip's."""
    code, output = evaluate("--generated", "generated/aligned")
    assert code == 0, output
    report = json.loads((workdir / "reports" / "v1" / "evaluation.json").read_text())
    summaries = {run["name"]: run["summary"] for run in report["runs"]}
    for name in (GROUND_TRUTH_RUN, SHUFFLED_RUN):
        summary = summaries[name]
        scores = [summary[key] for key in ("fd", "kl", "clap", "bcs", "bhs")] + [summary["rhythm"]["mean_recall"]]
        scores += [summary["transitions"][key] for key in ("recall", "precision", "chance_recall", "chance_precision")]
        scores += [summary["agreement"][key] for key in ("f_measure", "chance_f_measure", "tempo_acc1", "tempo_acc2")]
        assert None not in scores, name
    truth, shuffled = summaries[GROUND_TRUTH_RUN], summaries[SHUFFLED_RUN]
    assert truth["transitions"]["recall"] == 1.0 and shuffled["transitions"]["recall"] == 0.0
    assert truth["transitions"]["precision"] > truth["transitions"]["chance_precision"]
    assert truth["agreement"]["f_measure"] == 1.0 and shuffled["agreement"]["f_measure"] == 0.0
    assert truth["agreement"]["tempo_acc1"] == shuffled["agreement"]["tempo_acc1"] == 1.0  # both at 120 BPM
    assert summaries["aligned"]["agreement"]["f_measure"] == 1.0
    assert report["chance"] == {
        "rhythm": truth["rhythm"]["mean_chance_recall"],
        "transition_recall": truth["transitions"]["chance_recall"],
        "transition_precision": truth["transitions"]["chance_precision"],
        "beat_f_measure": truth["agreement"]["chance_f_measure"],
    }
    assert 0.2 < report["chance"]["beat_f_measure"] < 0.35  # 2 x 70 ms of every 0.5 s
    protocol = report["protocol"]
    assert protocol["transition_tolerance_s"] == 0.1 and protocol["beat_match_tolerance_s"] == 0.07
    assert protocol["beat_skip_s"] == 5.0 and protocol["tempo_tolerance"] == 0.04
    assert "beat.beat_track" in protocol["tracked_beats"] and "storyboard" in protocol["transitions"]
    markdown = (workdir / "reports" / "v1" / "evaluation.md").read_text()
    chance_rhythm = f"{report['chance']['rhythm']:.4f}"
    assert f"| chance | | n/a | n/a | n/a | n/a | {chance_rhythm} |" in markdown
    assert "## Transitions, beats and tempo" in markdown and "Read each run between its references" in markdown
    assert f"| {GROUND_TRUTH_RUN} | 2 | 1.0000 | " in markdown.split("## Transitions, beats and tempo")[1]


def test_flags_override_the_config_and_the_written_config_repeats_the_evaluation(workdir, tmp_path, monkeypatch):
    (workdir / "run.toml").write_text(
        'data_root = "data"\nmodel_dir = "models"\n[evaluate]\nbeats = "beat_track"\ntolerance_s = 0.2\n'
        "references = false\nbeat_skip_s = 1.0\n"
    )
    code, output = evaluate(
        "--generated",
        "generated/late",
        "--config",
        "run.toml",
        "--tolerance-s",
        "0.05",
        "--no-imagebind",
        manifest="manifests/v1",
    )  # the version folder: its test split
    assert code == 0, output
    first = json.loads((workdir / "reports" / "v1" / "evaluation.json").read_text())
    protocol = first["protocol"]
    assert protocol["rhythm_tolerance_s"] == 0.05 and protocol["beats"] == "beat_track"  # the flag, the file
    assert protocol["beat_skip_s"] == 1.0 and [run["name"] for run in first["runs"]] == ["late"]
    assert first["chance"] is None  # no references: nothing to be read against, and the report says so
    assert "nothing to be read against" in (workdir / "reports" / "v1" / "evaluation.md").read_text()
    written = (workdir / "reports" / "v1" / "evaluation.toml").read_text()
    assert "tolerance_s = 0.05" in written and 'beats = "beat_track"' in written
    assert "imagebind_score = false" in written and 'panns = "Cnn14_tiny.pth"' in written
    assert f'data_root = "{workdir / "data"}"' in written  # absolute: the file works from any folder
    assert first["inputs"]["config"].endswith("evaluation.toml") and "--config" in first["inputs"]["repeat"]
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    args = shlex.split(first["inputs"]["repeat"])[1:]  # the command the report gives, from another folder
    result = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    again = json.loads((workdir / "reports" / "v1" / "evaluation.json").read_text())
    assert again["protocol"] == first["protocol"] and again["runs"] == first["runs"]
    assert (workdir / "reports" / "v1" / "evaluation.toml").read_text() == written


def test_the_evaluate_sections_defaults_are_the_evaluators(workdir):
    from dvmset.cli.evaluate import eval_settings
    from dvmset.config import EvaluateConfig
    from model.metrics.evaluate import EvalSettings

    resolved = eval_settings(EvaluateConfig(), None, workdir / "manifests" / "v1" / "test.parquet")
    defaults = EvalSettings()
    assert resolved.beat_tracker.spec == defaults.beat_tracker.spec
    assert replace(resolved, beat_tracker=defaults.beat_tracker) == defaults


def test_missing_and_unreadable_generated_files_are_counted_and_names_must_match_folders(workdir):
    first, second = sorted((workdir / "generated" / "late").iterdir())
    first.unlink()
    second.write_bytes(b"not audio")
    code, output = evaluate("--generated", "generated/late", "--name", "late run", "--no-references", "--report", "r")
    assert code == 0, output
    assert "late run: 0 clips scored, 1 without music, 1 unreadable" in output
    report = json.loads((workdir / "reports" / "v1" / "r.json").read_text())
    (run,) = report["runs"]
    assert len(run["missing_clips"]) == 1 and run["unreadable_clips"][0]["reason"].startswith("cannot read")
    assert run["summary"]["clips"] == 0 and run["summary"]["kl"] is None
    markdown = (workdir / "reports" / "v1" / "r.md").read_text()
    assert "1 clips without generated music and 1 with unreadable music" in markdown
    code, output = evaluate("--generated", "generated/late", "--name", "a", "--name", "b")
    assert code == ExitCode.USAGE and "one distinct --name per --generated" in output


def test_missing_weights_exit_with_the_config_code(workdir):
    code, output = evaluate("--generated", "generated/late", "--panns", "Cnn14_mAP=0.431.pth")
    assert code == ExitCode.CONFIG and "zenodo.org" in output


def test_a_plugged_in_beat_tracker_sets_the_rhythm_score_and_is_recorded(workdir):
    spec = "tests.model.metrics.tracker_plugins:fixed_beats_s"  # beats at 2 and 4 s only, read at 16 kHz
    code, output = evaluate("--generated", "generated/late", "--no-references", "--beat-tracker", spec)
    assert code == 0, output
    report = json.loads((workdir / "reports" / "v1" / "evaluation.json").read_text())
    (run,) = report["runs"]
    clips = {clip["query"]: clip for clip in run["clips"]}
    assert clips["food commercial"]["rhythm_hits"] == 2 and clips["food commercial"]["beats"] == 2  # cuts 2, 4, 6
    assert clips["city video guide"]["rhythm_hits"] == 0  # cuts 1.75, 3.75, 5.75: 0.25 s from a beat
    assert clips["city video guide"]["rhythm_chance_recall"] == pytest.approx(0.4 / MUSIC_S)
    assert run["summary"]["rhythm"]["mean_recall"] == pytest.approx(1 / 3)
    assert run["summary"]["rhythm"]["pooled_recall"] == pytest.approx(2 / 6)
    protocol = report["protocol"]
    assert protocol["beat_tracker"] == "fixed beats at 2 and 4 s (test tracker)"
    assert protocol["beat_tracker_spec"] == spec and protocol["beat_sample_rate_hz"] == 16_000
    markdown = (workdir / "reports" / "v1" / "evaluation.md").read_text()
    assert "| beat_tracker | fixed beats at 2 and 4 s (test tracker) |" in markdown
    assert protocol["beats"] == "custom"


def test_stable_visual_clips_are_left_out_of_the_rhythm_score_by_the_manifests_prescreen(workdir):
    rows = read_manifest(workdir / "manifests" / "v1" / "test.parquet").to_pylist()
    still = {"youtube:food1": 0.9, "youtube:city1": 0.1}  # the first clip's picture stands still
    rows = [
        ManifestRow(**{**row, "static_share": still[row["video_id"]], "scene_cuts_s": (2.0, 4.0, 6.0)}) for row in rows
    ]
    write_manifest(rows, workdir / "manifests" / "v3" / "test.parquet", {})
    for rule, excluded in (("none", 0), ("stable-visual", 1)):
        code, output = evaluate(
            "--generated",
            "generated/late",
            "--no-references",
            "--exclude",
            rule,
            "--report",
            rule,
            manifest="manifests/v3/test.parquet",
        )
        assert code == 0, output
        report = json.loads((workdir / "reports" / "v3" / f"{rule}.json").read_text())
        assert report["runs"][0]["summary"]["rhythm"]["excluded_clips"] == excluded
        assert report["protocol"]["rhythm_exclude"] == rule
    assert "stands still" in report["protocol"]["rhythm_exclude_rule"]
    code, output = evaluate("--generated", "generated/late", "--exclude", "landscapes")
    assert code == ExitCode.USAGE and "--exclude must be one of" in output


def test_the_beat_protocol_is_named_and_recorded(workdir):
    code, output = evaluate("--generated", "generated/late", "--no-references", "--beats", "beat_track")
    assert code == 0, output
    protocol = json.loads((workdir / "reports" / "v1" / "evaluation.json").read_text())["protocol"]
    assert protocol["beats"] == "beat_track" and protocol["beat_tracker_spec"].endswith(":music_beats_s")
    code, output = evaluate("--generated", "generated/late", "--beats", "plp", "--beat-tracker", "a:b")
    assert code == ExitCode.USAGE and "not both" in output


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nocolon", "given as module:function"),
        ("a:b", "module 'a' cannot be imported"),
        ("tests.model.metrics.tracker_plugins:text_beats_s", "not beat times"),
        ("tests.model.metrics.tracker_plugins:short_audio_only_beats_s", "MemoryError('audio too long"),  # on a clip
    ],
)
def test_a_bad_beat_tracker_exits_with_the_usage_code_and_no_report(workdir, spec, message):
    code, output = evaluate("--generated", "generated/late", "--beat-tracker", spec)
    assert code == ExitCode.USAGE and message in output
    assert not (workdir / "reports").exists()


def count_scene_detections(monkeypatch) -> list[Path]:
    """The videos PySceneDetect is run on from now on, in order."""
    videos: list[Path] = []
    detect = evaluate_module.scene_changes_s
    monkeypatch.setattr(
        evaluate_module, "scene_changes_s", lambda path, settings: videos.append(path) or detect(path, settings)
    )
    return videos


def test_each_reference_video_is_analysed_once_for_all_runs(workdir, monkeypatch):
    videos = count_scene_detections(monkeypatch)
    code, output = evaluate("--generated", "generated/aligned", "--generated", "generated/late")  # 4 runs
    assert code == 0, output
    assert len(videos) == len(set(videos)) == len(CLIPS)


def test_scenes_from_the_manifest_replace_detection_and_say_what_the_prescreen_ran(workdir, monkeypatch):
    """The manifest's cuts differ from the videos' (2, 4, 6 s and 1.75, 3.75, 5.75 s): the first clip's are
    on the late run's beats, the second clip has none (so it is excluded, unlike with detection)."""
    rows = read_manifest(workdir / "manifests" / "v1" / "test.parquet").to_pylist()
    manifest_cuts_s = {"youtube:food1": (2.25, 4.75), "youtube:city1": ()}
    rows = [ManifestRow(**{**row, "scene_cuts_s": manifest_cuts_s[row["video_id"]]}) for row in rows]
    config_text = "[prescreen]\nscene_threshold = 31.0\n"  # as publish records the config, one section of it
    metadata = {"config": config_text, "code_version": "abc1234"}
    write_manifest(rows, workdir / "manifests" / "v2" / "test.parquet", metadata)
    videos = count_scene_detections(monkeypatch)
    code, output = evaluate(
        "--generated", "generated/late", "--no-references", "--scenes", "manifest", manifest="manifests/v2/test.parquet"
    )
    assert code == 0, output
    assert videos == []  # PySceneDetect never ran
    report = json.loads((workdir / "reports" / "v2" / "evaluation.json").read_text())
    rhythm = report["runs"][0]["summary"]["rhythm"]
    assert (rhythm["mean_recall"], rhythm["scene_changes"], rhythm["excluded_clips"]) == (1.0, 2, 1)
    protocol = report["protocol"]
    assert protocol["scene_source"].startswith("manifest")
    assert "PySceneDetect ContentDetector" in protocol["scene_detector"]
    assert prescreen.STAGE_VERSION in protocol["scene_detector"]
    assert protocol["scene_threshold"] == 31.0  # as recorded
    assert protocol["min_scene_s"] == PrescreenConfig().min_scene_s  # not recorded: the config's default
    assert "do not apply" in protocol["scene_detector_settings"] and protocol["scene_cuts_code_version"] == "abc1234"
    code, output = evaluate(
        "--generated", "generated/late", "--no-references", "--report", "detected", manifest="manifests/v2/test.parquet"
    )
    detected = json.loads((workdir / "reports" / "v2" / "detected.json").read_text())["runs"][0]["summary"]
    assert detected["rhythm"]["mean_recall"] == 0.0 and detected["rhythm"]["scene_changes"] == 6


def test_manifest_scenes_without_a_recorded_config_say_so_and_unknown_sources_are_refused(workdir):
    code, output = evaluate("--generated", "generated/late", "--no-references", "--scenes", "manifest")
    assert code == 0, output
    protocol = json.loads((workdir / "reports" / "v1" / "evaluation.json").read_text())["protocol"]
    assert protocol["scene_threshold"] == "not recorded in the manifest"
    code, output = evaluate("--generated", "generated/late", "--scenes", "both")
    assert code == ExitCode.USAGE and "--scenes must be one of detect, manifest" in output
    code, output = evaluate("--generated", "generated/late", "--scenes", "manifest", "--scene-threshold", "20")
    assert code == ExitCode.USAGE and "do not apply with --scenes manifest" in output


def test_a_tiny_imagebind_in_the_model_folder_fills_the_imagebind_column(workdir, tiny_imagebind_path, monkeypatch):
    (workdir / "models" / "imagebind").mkdir()
    shutil.copy(tiny_imagebind_path, workdir / "models" / "imagebind" / "imagebind_huge.pth")
    embedded_videos: list[Path] = []
    views = evaluate_module.video_views
    monkeypatch.setattr(evaluate_module, "video_views", lambda path: embedded_videos.append(path) or views(path))
    code, output = evaluate("--generated", "generated/aligned", "--generated", "generated/late")
    assert code == 0, output
    assert len(embedded_videos) == len(set(embedded_videos)) == len(CLIPS)  # once per clip for the 4 runs
    report = json.loads((workdir / "reports" / "v1" / "evaluation.json").read_text())
    for run in report["runs"]:
        scores = [clip["imagebind"] for clip in run["clips"]]
        assert len(scores) == 2 and all(-1.0 <= score <= 1.0 for score in scores)
        assert run["summary"]["imagebind"] == pytest.approx(sum(scores) / 2)
        food = next(clip["imagebind"] for clip in run["clips"] if clip["query"] == "food commercial")
        assert run["by_query"]["food commercial"]["imagebind"] == pytest.approx(food)
    truth, shuffled = report["runs"][2], report["runs"][3]
    assert {clip["imagebind"] for clip in truth["clips"]} != {clip["imagebind"] for clip in shuffled["clips"]}
    protocol = report["protocol"]
    assert protocol["imagebind"].startswith("cosine of ImageBind's embedding of the reference clip's video")
    assert protocol["imagebind_checkpoint"] == str(workdir / "models" / "imagebind" / "imagebind_huge.pth")
    assert "5 clips of 2 s" in protocol["imagebind_video"] and "128 mel bins" in protocol["imagebind_audio"]
    markdown = (workdir / "reports" / "v1" / "evaluation.md").read_text()
    summary = report["runs"][0]["summary"]
    assert f"| aligned | 2 | {summary['fd']:.2f} | {summary['kl']:.3f} | {summary['imagebind']:.4f} | " in markdown
    assert "| imagebind_audio | mono (channel mean)" in markdown and "ImageBind: not available" not in output


def test_imagebind_can_be_turned_off_or_named_and_a_file_that_does_not_fit_stops_the_run(workdir, tiny_imagebind_path):
    code, output = evaluate("--generated", "generated/late", "--no-references", "--imagebind", str(tiny_imagebind_path))
    assert code == 0, output
    report = json.loads((workdir / "reports" / "v1" / "evaluation.json").read_text())
    assert report["runs"][0]["summary"]["imagebind"] is not None
    assert report["protocol"]["imagebind_checkpoint"] == str(tiny_imagebind_path)
    code, output = evaluate(
        "--generated", "generated/late", "--no-references", "--imagebind", str(tiny_imagebind_path), "--no-imagebind"
    )
    assert code == 0, output
    report = json.loads((workdir / "reports" / "v1" / "evaluation.json").read_text())
    assert report["runs"][0]["summary"]["imagebind"] is None
    assert report["protocol"]["imagebind"].startswith("not available: turned off")
    state = torch.load(tiny_imagebind_path, weights_only=True)
    del state["modality_heads.vision.2.weight"]
    torch.save(state, workdir / "cut.pth")
    code, output = evaluate("--generated", "generated/late", "--imagebind", "cut.pth")
    assert code == ExitCode.CONFIG and "missing modality_heads.vision.2.weight" in output
