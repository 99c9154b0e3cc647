"""The curation pipeline on real media with real weights, against known ground truth.

Real music (Debian's pushover-data), espeak-ng speech laid over it at known times, a 12 s silent
gap, a music-only control and a 5.1 track with dialogue on the centre channel
(`tests/support/real_media.py`), run through `dvmset discover`, `download` and `separate` (which
separates with the real HTDemucs v4 weights, measures speech with Silero VAD, cuts, normalizes
and prescreens the clips). Each case makes one 30 s clip.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from dvmset.catalog import Catalog
from dvmset.cli.main import app
from dvmset.config import load_config
from dvmset.records import PrescreenFlag, VideoStatus
from dvmset.storage import ACCOMPANIMENT_FILE, DataRoot
from tests.support.real_media import CLIP_S, build_corpus, real_music_available, signal_to_distortion_db

pytestmark = [
    pytest.mark.real_weights,
    pytest.mark.slow,
    pytest.mark.skipif(not real_music_available(), reason="needs Debian's pushover-data and espeak-ng"),
]

SPEECH_TOLERANCE = 0.25  # of the true speech seconds, per clip
NO_SPEECH_S = 1.0  # at most this much "speech" where nobody speaks
SILENCE_TOLERANCE_S = 1.5
MIN_ACCOMPANIMENT_SDR_DB = 12.0


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory, real_htdemucs_dir):
    """Build the corpus, run the stages with the real weights; (truths by name, config, catalog)."""
    work = tmp_path_factory.mktemp("real-media")
    truths = build_corpus(work / "corpus")
    config_path = work / "dvmset.toml"
    config_path.write_text(
        f'data_root = "{work / "data"}"\nmodel_dir = "{real_htdemucs_dir}"\n'
        f"[download]\nmin_duration_s = {CLIP_S}\n[probe]\nmin_duration_s = {CLIP_S}\n"
        f'[separate]\nmodel = "htdemucs"\n[clip]\nclip_s = {CLIP_S}\n',
        encoding="utf-8",
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the real separator uses both cores
    try:
        runner = CliRunner()
        for args in (["discover", "--folder", str(work / "corpus")], ["download"], ["separate"]):
            result = runner.invoke(app, [*args, "--config", str(config_path)])
            assert result.exit_code == 0, result.output
    finally:
        torch.set_num_threads(threads)
    config = load_config(config_path, environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    yield truths, config, catalog
    catalog.close()


def clips_by_case(corpus_run) -> dict[str, object]:
    truths, _config, catalog = corpus_run
    names = {str(truth.path.resolve()): name for name, truth in truths.items()}
    video_case = {video.video_id: names[str(Path(video.url).resolve())] for video in catalog.videos()}
    clips = {video_case[clip.video_id]: clip for clip in catalog.clips()}
    assert sorted(clips) == sorted(truths), "one clip per case"
    return clips


def test_every_case_is_separated_by_the_real_model_and_clipped(corpus_run):
    _truths, _config, catalog = corpus_run
    for video in catalog.videos():
        assert video.status is VideoStatus.CLIPPED, video.error
        assert not video.separator_stand_in
        ids = [stamp.model_id for stamp in video.separation_models]
        assert ids[0] == "htdemucs" and any(model_id.startswith("silero-vad") for model_id in ids)
        assert all(stamp.sha256 and not stamp.stand_in for stamp in video.separation_models)
    assert not any(clip.stand_in for clip in catalog.clips())


def test_speech_seconds_are_within_a_quarter_of_the_truth(corpus_run):
    truths = corpus_run[0]
    for name, clip in clips_by_case(corpus_run).items():
        truth = truths[name].speech_s
        found = clip.prescreen.speech_s
        if truth:
            assert abs(found - truth) <= SPEECH_TOLERANCE * truth, (
                f"{name}: {found:.1f} s of speech, truth {truth:.1f} s"
            )
        else:
            assert found <= NO_SPEECH_S, f"{name}: {found:.1f} s of speech where nobody speaks"


def test_silence_is_within_a_second_and_a_half(corpus_run):
    truths = corpus_run[0]
    for name, clip in clips_by_case(corpus_run).items():
        found, truth = clip.prescreen.silence_s, truths[name].silence_s
        assert abs(found - truth) <= SILENCE_TOLERANCE_S, f"{name}: {found:.1f} s of silence, truth {truth:.1f} s"


def test_flags_follow_the_truth_and_the_music_only_clip_is_not_flagged(corpus_run):
    truths = corpus_run[0]
    for name, clip in clips_by_case(corpus_run).items():
        non_music_truth = truths[name].speech_s + truths[name].silence_s
        assert (PrescreenFlag.NON_MUSIC in clip.prescreen.flags) == (non_music_truth > 5.0), name
    assert clips_by_case(corpus_run)["music_only"].prescreen.flags == ()


def test_the_accompaniment_is_the_known_music(corpus_run):
    truths, config, catalog = corpus_run
    for video in catalog.videos():
        truth = next(t for t in truths.values() if t.path.resolve() == Path(video.url).resolve())
        accompaniment_path = DataRoot(config.data_root).stems_dir(video.video_id) / ACCOMPANIMENT_FILE
        accompaniment, rate_hz = sf.read(accompaniment_path, dtype="float32", always_2d=True)
        assert rate_hz == 44_100
        sdr_db = signal_to_distortion_db(truth.music, accompaniment)
        assert sdr_db >= MIN_ACCOMPANIMENT_SDR_DB, f"{truth.name}: accompaniment SDR {sdr_db:.1f} dB"
