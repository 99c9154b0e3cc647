"""Generation on tiny random models: windows in absolute time, continuation from the previous window, seeds,
music exactly as long as the video muxed under its untouched picture, and `dvmset generate` end to end."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import soundfile as sf
import torch

from dvmset.cli.common import ExitCode
from model.backbone import load_backbone
from model.dataset import curve_at_frames
from model.errors import ConditioningError
from model.features import VisualFeatures, load_clip_encoder
from model.generate import (
    GenerationSettings,
    Window,
    generate_from_features,
    generate_music,
    plan_windows,
    window_conditions,
)
from model.rhythm_predictor import PredictorConfig, RhythmPredictor
from model.soundtrack import mux_music, write_music
from model.video_conditions import AFFECT_DIM
from model.vidmusician import ConditioningConfig, VidMusician
from tests.support.generated_media import make_cut_video, make_tone
from tests.support.model_workdirs import TINY_TRAIN, run_cli, tiny_workdir
from tests.support.tiny_models import TINY_CLIP_EMBED_DIM, TINY_CODEC_RATE_HZ, TINY_NUM_CODEBOOKS
from tests.support.training_manifests import write_training_manifest

CODEC_FRAME_RATE_HZ = 25  # the tiny codec's (conftest: 8 kHz, hop 320)
SHORT_WINDOWS = GenerationSettings(window_s=2.0, prompt_s=1.0, seed=5)


@pytest.fixture(scope="module")
def stage2_model(tiny_conditioned_musicgen_dir) -> VidMusician:
    """A stage-2 model whose rhythm module is not at its (all-zero) initialisation."""
    torch.manual_seed(0)
    model = VidMusician(load_backbone(str(tiny_conditioned_musicgen_dir), device="cpu"), TINY_CLIP_EMBED_DIM)
    model.add_rhythm()
    with torch.no_grad():
        for parameter in model.rhythm.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape))
    return model.eval()


def ramp_features(duration_s: int) -> VisualFeatures:
    """Features whose values say where they are: every entry of second i's embedding is i, the 50 Hz
    curve's entry j is j (so the 25 Hz codec frame f, max-pooled over entries 2f and 2f + 1, reads 2f + 1)."""
    embeds = torch.arange(duration_s, dtype=torch.float32)[:, None].expand(duration_s, TINY_CLIP_EMBED_DIM)
    return VisualFeatures(embeds.contiguous(), torch.arange(50 * duration_s, dtype=torch.float32), "ramp")


def test_plan_windows_covers_the_track_with_whole_second_strides():
    assert plan_windows(125, 25, window_s=2, prompt_s=1) == [
        Window(0, 0, 50),
        Window(25, 25, 75),
        Window(50, 25, 100),
        Window(75, 25, 125),
    ]
    assert plan_windows(1500, 50, window_s=30, prompt_s=12) == [Window(0, 0, 1500)]
    assert plan_windows(2000, 50, window_s=30, prompt_s=12) == [Window(0, 0, 1500), Window(900, 600, 2000)]
    with pytest.raises(ValueError, match="whole number of seconds"):
        GenerationSettings(window_s=2.0, prompt_s=1.5)
    with pytest.raises(ValueError, match="whole number of seconds"):
        GenerationSettings(window_s=2.0, prompt_s=2.0)


def test_each_window_is_conditioned_on_its_own_seconds_and_continues_the_previous_one(stage2_model, monkeypatch):
    """What the rhythm module and the embedding manager receive in window k is the video's condition at
    absolute time; the prompt of window k is the last second of the music already made."""
    received_curves, received_embeds, prompts = [], [], []
    handles = [
        stage2_model.rhythm.register_forward_pre_hook(lambda module, args: received_curves.append(args[0].clone())),
        stage2_model.embedding_manager.register_forward_pre_hook(
            lambda module, args: received_embeds.append(args[0].clone())
        ),
    ]
    generate = stage2_model.generate

    def recording_generate(*args, prompt_codes=None, **kwargs):
        prompts.append(None if prompt_codes is None else prompt_codes.clone())
        return generate(*args, prompt_codes=prompt_codes, **kwargs)

    monkeypatch.setattr(stage2_model, "generate", recording_generate)
    try:
        soundtrack = generate_from_features(stage2_model, ramp_features(5), 5.0, SHORT_WINDOWS, progress=False)
    finally:
        for handle in handles:
            handle.remove()

    assert soundtrack.codes.shape == (TINY_NUM_CODEBOOKS, 5 * CODEC_FRAME_RATE_HZ)
    assert soundtrack.waveform.shape == (5 * TINY_CODEC_RATE_HZ,)
    assert [(w.start_frame, w.end_frame) for w in soundtrack.windows] == [(0, 50), (25, 75), (50, 100), (75, 125)]
    assert len(received_curves) == len(received_embeds) == len(prompts) == 4
    ramp = ramp_features(5)
    whole_track_curve = window_conditions(
        ramp.global_embeds_1fps, ramp.rhythm_curve_50hz, Window(0, 0, 125), CODEC_FRAME_RATE_HZ
    )[1]
    for k, window in enumerate(soundtrack.windows):
        frames = torch.arange(window.start_frame, window.end_frame, dtype=torch.float32)
        expected_curve = torch.cat([2 * frames + 1, torch.zeros(TINY_NUM_CODEBOOKS - 1)])  # the delay tail reads 0
        torch.testing.assert_close(received_curves[k], expected_curve[None], rtol=0, atol=0)
        assert torch.equal(received_curves[k][:, :50], whole_track_curve[:, window.start_frame : window.end_frame])
        seconds = received_embeds[k][0, :, 0].tolist()
        assert seconds == [k, k + 1]  # window k spans seconds [k, k + 2)
        if k == 0:
            assert prompts[k] is None
        else:
            assert torch.equal(prompts[k][0], soundtrack.codes[:, window.start_frame : window.start_frame + 25])


def test_with_the_options_on_each_window_gets_the_whole_videos_conditions_at_its_own_times(
    tiny_conditioned_musicgen_dir,
):
    """A predicted-odf model with affect on: window k receives the rows of the whole video's predicted rhythm
    curve and of its semantic condition (affect columns included) at its absolute times; without the
    video's affect rows it refuses."""
    torch.manual_seed(0)
    predictor = RhythmPredictor(PredictorConfig(TINY_CLIP_EMBED_DIM, hidden=8)).eval()
    backbone = load_backbone(str(tiny_conditioned_musicgen_dir), device="cpu")
    model = VidMusician(backbone, TINY_CLIP_EMBED_DIM + AFFECT_DIM, ConditioningConfig(affect=True), predictor)
    model.add_rhythm()
    features, affect = ramp_features(5), torch.rand(5, AFFECT_DIM)
    received_curves, received_embeds = [], []
    handles = [
        model.rhythm.register_forward_pre_hook(lambda module, args: received_curves.append(args[0].clone())),
        model.embedding_manager.register_forward_pre_hook(lambda module, args: received_embeds.append(args[0].clone())),
    ]
    try:
        soundtrack = generate_from_features(model, features, 5.0, SHORT_WINDOWS, progress=False, affect=affect)
    finally:
        for handle in handles:
            handle.remove()

    semantic = model.video_conditions.semantic(features, affect)
    curve = curve_at_frames(model.video_conditions.rhythm_curve_50hz(features, affect), 5 * CODEC_FRAME_RATE_HZ)
    assert semantic.shape == (5, TINY_CLIP_EMBED_DIM + AFFECT_DIM) and curve.unique().numel() > 2
    for k, window in enumerate(soundtrack.windows):  # window k spans seconds [k, k + 2)
        assert torch.equal(received_curves[k][0, :50], curve[window.start_frame : window.end_frame])
        assert torch.equal(received_embeds[k][0], semantic[k : k + 2])
    with pytest.raises(ConditioningError, match="affect"):
        generate_from_features(model, features, 5.0, SHORT_WINDOWS, progress=False)


def test_a_continuation_feeds_the_prompt_as_the_prefix_and_keeps_the_rhythm_aligned(stage2_model):
    """Generating after a prompt of P frames: the music starts with the prompt, the decoder positions
    (prompt included) get the rhythm that a teacher-forced pass gives them, with guidance, and `decode`
    turns the codes into MusicGen's own audio."""
    generator = torch.Generator().manual_seed(2)
    embeds, mask = torch.randn(1, 2, TINY_CLIP_EMBED_DIM, generator=generator), torch.ones(1, 2, dtype=torch.long)
    prompt = torch.randint(0, 64, (1, TINY_NUM_CODEBOOKS, 7), generator=generator)
    curve = torch.rand(1, 20, generator=generator)
    num_steps = 20 - 7 + TINY_NUM_CODEBOOKS - 1
    music = stage2_model.generate(embeds, mask, num_steps, rhythm_curve=curve, guidance_scale=3.0, prompt_codes=prompt)

    assert music.codes.shape == (1, TINY_NUM_CODEBOOKS, 20) and torch.equal(music.codes[:, :, :7], prompt)
    assert music.decoder_input_ids.shape == (TINY_NUM_CODEBOOKS, 7 + num_steps)
    with torch.no_grad():
        teacher_forced = stage2_model.decoder_logits(embeds, mask, music.decoder_input_ids, rhythm_curve=curve)
    steps = music.step_logits.shape[1]  # the first step's logits come from the prefix's last position
    torch.testing.assert_close(music.step_logits[:TINY_NUM_CODEBOOKS], teacher_forced[:, -steps:], rtol=0, atol=1e-5)
    assert torch.equal(stage2_model.backbone.decode(music.codes), music.audio[:, 0])


def test_the_same_seed_gives_the_same_music(tiny_conditioned_musicgen_dir):
    torch.manual_seed(1)
    stage1 = VidMusician(load_backbone(str(tiny_conditioned_musicgen_dir), device="cpu"), TINY_CLIP_EMBED_DIM).eval()
    features = ramp_features(3)
    first = generate_from_features(stage1, features, 2.7, SHORT_WINDOWS, progress=False)
    torch.manual_seed(123)  # the caller's random state plays no part
    again = generate_from_features(stage1, features, 2.7, SHORT_WINDOWS, progress=False)
    other = generate_from_features(
        stage1, features, 2.7, GenerationSettings(window_s=2.0, prompt_s=1.0, seed=6), progress=False
    )
    assert torch.equal(first.codes, again.codes) and torch.equal(first.waveform, again.waveform)
    assert not torch.equal(first.codes, other.codes)
    assert first.waveform.shape == (round(2.7 * TINY_CODEC_RATE_HZ),)
    assert len(first.windows) == 2  # 68 frames: [0, 50) and [25, 68)


def ffprobe_streams(path: Path) -> list[dict]:
    command = [
        "ffprobe",
        "-v",
        "error",
        "-show_entries",
        "stream=codec_type,codec_name,duration",
        "-of",
        "json",
        str(path),
    ]
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)["streams"]


def video_packets_md5(path: Path) -> str:
    command = ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "md5", "-"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def assert_music_under_the_same_picture(video: Path, out: Path, fps: int) -> None:
    """One video stream with the input's packets, bit for bit, and one AAC stream as long as the picture
    (within a video frame)."""
    streams = ffprobe_streams(out)
    assert sorted(stream["codec_type"] for stream in streams) == ["audio", "video"]
    audio = next(stream for stream in streams if stream["codec_type"] == "audio")
    picture = next(stream for stream in streams if stream["codec_type"] == "video")
    assert audio["codec_name"] == "aac"
    source_duration_s = float(ffprobe_streams(video)[0]["duration"])
    assert float(picture["duration"]) == pytest.approx(source_duration_s, abs=1e-3)
    assert float(audio["duration"]) == pytest.approx(source_duration_s, abs=1 / fps)
    assert video_packets_md5(out) == video_packets_md5(video)


def test_music_for_a_video_is_muxed_under_its_untouched_picture(stage2_model, tiny_clip_dir, tmp_path):
    video = make_cut_video(tmp_path / "input.mp4", 4.5, fps=10, cut_every_s=1.0)
    encoder = load_clip_encoder(str(tiny_clip_dir), device="cpu")
    soundtrack = generate_music(stage2_model, video, encoder, SHORT_WINDOWS, progress=False)
    assert soundtrack.waveform.shape == (round(4.5 * TINY_CODEC_RATE_HZ),)
    assert len(soundtrack.windows) == 4

    waveform = soundtrack.waveform.numpy()
    out = mux_music(video, waveform, soundtrack.sampling_rate_hz, tmp_path / "out" / "scored.mp4")
    assert_music_under_the_same_picture(video, out, fps=10)
    music = write_music(tmp_path / "out" / "music.flac", waveform, soundtrack.sampling_rate_hz)
    assert sf.info(music).frames == round(4.5 * TINY_CODEC_RATE_HZ) and sf.info(music).samplerate == 8000
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["music.flac", "scored.mp4"]  # no temp


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory) -> Path:
    """A folder with tiny models under models/, a manifest, and stage-1 then stage-2 checkpoints written by
    `dvmset train` (one step each)."""
    folder = tiny_workdir(tmp_path_factory.mktemp("generate-cli"))
    write_training_manifest(folder, num_accepted=2)
    common = ["train", "--manifest", "manifests/v1/train.parquet", "--steps", "1", *TINY_TRAIN]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        for stage_args in (["--stage", "1"], ["--stage", "2", "--init", "runs/v1/stage1/checkpoint.pt"]):
            code, output = run_cli(*common, *stage_args)
            assert code == 0, output
    return folder


def run_generate(workdir: Path, *args: str) -> tuple[int, str]:
    """`dvmset generate` in `workdir`: (exit code, output with its line breaks undone)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        return run_cli("generate", *args)


STAGE2 = ["--checkpoint", "runs/v1/stage2/checkpoint.pt"]


def test_dvmset_generate_writes_the_video_with_music_from_a_trained_checkpoint(trained_workdir):
    args = [
        "video.mp4",
        "-o",
        "scored/out.mp4",
        *STAGE2,
        "--window-s",
        "2",
        "--prompt-s",
        "1",
        "--seed",
        "4",
        "--guidance",
        "2.5",
        "--music-out",
        "scored/music.wav",
    ]
    code, output = run_generate(trained_workdir, *args)
    assert code == 0, output
    assert "3.00 s of music in 2 window(s), seed 4: scored/out.mp4, scored/music.wav" in output
    assert_music_under_the_same_picture(trained_workdir / "video.mp4", trained_workdir / "scored" / "out.mp4", fps=10)
    first = sf.read(trained_workdir / "scored" / "music.wav")[0]
    assert first.shape == (3 * TINY_CODEC_RATE_HZ,)

    code, output = run_generate(trained_workdir, *args[:-1], "scored/again.wav")
    assert code == 0, output
    assert (sf.read(trained_workdir / "scored" / "again.wav")[0] == first).all()  # the same seed, the same music


def test_dvmset_generate_errors_say_what_is_wrong(trained_workdir, tmp_path):
    code, output = run_generate(trained_workdir, "video.mp4", "-o", "x.mp4", "--checkpoint", "runs/absent.pt")
    assert code == ExitCode.CONFIG and f"no checkpoint at {trained_workdir / 'runs' / 'absent.pt'}" in output

    elsewhere = tmp_path / "elsewhere.toml"  # a model folder without the checkpoint's models, other [model] sizes
    elsewhere.write_text(
        f'data_root = "data"\nmodel_dir = "{tmp_path / "models"}"\n[model]\nlora_rank = 32\n'
        'lora_alpha = 16.0\nrhythm = "predicted-odf"\n'
    )
    code, output = run_generate(trained_workdir, "video.mp4", "-o", "x.mp4", *STAGE2, "-c", str(elsewhere))
    assert code == ExitCode.CONFIG, output
    assert (
        "the checkpoint's model settings are used, not the config's [model]: lora_rank 8 (config: 32), "
        "rhythm clip-distance (config: predicted-odf)"
    ) in output
    assert "'tiny/clip' could not be loaded" in output and str(tmp_path / "models" / "tiny" / "clip") in output

    tone = make_tone(tmp_path / "tone.flac", 1.0)  # a file without frames
    code, output = run_generate(trained_workdir, str(tone), "-o", "x.mp4", *STAGE2)
    assert code == ExitCode.ITEMS_FAILED and "no_video_stream" in output, output

    code, output = run_generate(trained_workdir, "video.mp4", "-o", "x.webm", *STAGE2)
    assert code == ExitCode.USAGE and "cannot write video to x.webm" in output
    code, output = run_generate(
        trained_workdir, "video.mp4", "-o", "x.mp4", *STAGE2, "--window-s", "2", "--prompt-s", "1.5"
    )
    assert code == ExitCode.USAGE and "whole number of seconds" in output
    assert not list(trained_workdir.glob("*x.mp4*"))  # nothing written, not even a temporary file
