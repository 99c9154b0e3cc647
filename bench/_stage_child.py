"""The child side of `bench/stages.py`: one stage per fresh process, and the bench's constants.

In: `python bench/_stage_child.py STAGE PARAMS_JSON`, run by `stages.run_child`. Out: the stage's
figures (wall and CPU seconds, baseline and peak RSS, subprocess peaks, optionally a cProfile
summary) as JSON in `params["result"]`. Module level imports only the standard library, so that
the parent, which imports the constants from here, stays small (see `stages.run_child`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

CHILD = Path(__file__)  # this script, as the parent runs it
FPS, WIDTH, HEIGHT = 25, 1280, 720
TINY_MODEL, HTDEMUCS_MODEL = "tiny-random", "htdemucs-random"
MB = 1024 * 1024

CUT_VIDEO_VARIANTS = (  # (label, x264 preset, CRF, max height): cut_video's own command, changed here
    ("as the stage: superfast + mb-tree crf 23, 480p", None, None, None),
    ("veryfast crf 23, 480p", "veryfast", None, None),
    ("superfast crf 23, 480p", "superfast", None, None),
    ("ultrafast crf 23, 480p", "ultrafast", None, None),
    ("as the stage, 720p", None, None, 720),
    ("veryfast crf 23, 720p", "veryfast", None, 720),
    ("ultrafast crf 23, 720p", "ultrafast", None, 720),
    ("ultrafast crf 26, 720p", "ultrafast", 26, 720),
)


# ---------------------------------------------------------------- child side: one stage per process


def _spans(duration_s: float) -> list[Any]:
    from curation.clip import plan_clip_spans

    return plan_clip_spans(duration_s, fps=FPS)


def _clip_dir(work: str, index: int) -> Path:
    return Path(work) / "clips" / f"{index:03d}"


def _prepare_probe(p: dict[str, Any]):
    from curation.probe import probe_media
    from dvmset.config import ProbeConfig

    return lambda: {"media_s": probe_media(Path(p["video"]), ProbeConfig()).duration_s}


def _prepare_separate(p: dict[str, Any]):
    import soundfile as sf
    import torch

    from curation.separate import load_separator, separate_file
    from dvmset.config import SeparateConfig

    def run() -> dict[str, Any]:
        start = time.perf_counter()
        separator = load_separator(p["model"], Path(p["repo"]), device=p["device"])
        load_s = time.perf_counter() - start
        Path(p["out_dir"]).mkdir(parents=True, exist_ok=True)
        files = separate_file(separator, Path(p["input"]), Path(p["out_dir"]), SeparateConfig())
        return {
            "media_s": sf.info(files.accompaniment_path).duration,
            "timed_s": time.perf_counter() - start - load_s,  # the real-time factor leaves loading out
            "load_s": load_s,
            "model": p["model"],
            "device": separator.device,
            "threads": torch.get_num_threads(),
            "sample_rate_hz": separator.sample_rate_hz,
        }

    return run


def _prepare_clip(p: dict[str, Any]):
    import soundfile as sf

    from curation.clip import MUSIC_SAMPLE_RATE_HZ, cut_music, cut_video
    from dvmset.config import ClipConfig
    from dvmset.storage import MUSIC_FILE, PICTURE_FILE, VIDEO_FILE

    def run() -> dict[str, Any]:
        music_s = video_s = 0.0
        spans = _spans(p["duration_s"])
        for index, span in enumerate(spans):
            folder = _clip_dir(p["work"], index)
            folder.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            samples = cut_music(Path(p["accompaniment"]), span, ClipConfig())
            sf.write(folder / MUSIC_FILE, samples, MUSIC_SAMPLE_RATE_HZ, subtype="PCM_24")  # normalized in place below
            middle = time.perf_counter()
            picture = cut_video(Path(p["video"]), span, folder / MUSIC_FILE, folder / VIDEO_FILE, ClipConfig(), fps=FPS)
            picture.save(folder / PICTURE_FILE)  # as the clip step
            music_s, video_s = music_s + middle - start, video_s + time.perf_counter() - middle
        return {
            "media_s": sum(s.duration_s for s in spans),
            "clips": len(spans),
            "cut_music_s": music_s,
            "cut_video_s": video_s,
        }

    return run


def _prepare_loudness(p: dict[str, Any]):
    import soundfile as sf

    from curation.loudness import normalize_to_file
    from dvmset.config import LoudnessConfig
    from dvmset.storage import MUSIC_FILE

    def run() -> dict[str, Any]:
        spans = _spans(p["duration_s"])
        for index in range(len(spans)):
            music = _clip_dir(p["work"], index) / MUSIC_FILE
            samples, sample_rate_hz = sf.read(music, dtype="float32", always_2d=True)
            normalize_to_file(samples, sample_rate_hz, music, LoudnessConfig())  # the clip step's call
        return {"media_s": sum(s.duration_s for s in spans), "clips": len(spans)}

    return run


def _prepare_prescreen(p: dict[str, Any]):
    from curation.energy import read_energy_curves
    from curation.picture import load_picture
    from curation.prescreen import prescreen_clip, read_music
    from dvmset.config import PrescreenConfig
    from dvmset.storage import MUSIC_FILE, PICTURE_FILE

    def run() -> dict[str, Any]:
        spans = _spans(p["duration_s"])
        for index, span in enumerate(spans):
            folder = _clip_dir(p["work"], index)
            energy = read_energy_curves(Path(p["energy"])).span(span.start_s, span.end_s)
            picture = load_picture(folder / PICTURE_FILE)  # what the clip step keeps
            prescreen_clip(picture, *read_music(folder / MUSIC_FILE), energy, PrescreenConfig())
        return {"media_s": sum(s.duration_s for s in spans), "clips": len(spans)}

    return run


def _prepare_pipeline(p: dict[str, Any]):
    """The real `clip_step` (cut, loudness, video, prescreen; clips in parallel) on the test
    video, in a local-folder catalog taken through download and probe, with the tiny model's
    stems (`p["stems"]`) as its separation; only clip_step is timed. `p["clip"]`: `[clip]` settings."""
    from curation import steps
    from curation.search import scan_folder
    from dvmset.catalog import Catalog
    from dvmset.config import ClipConfig, Config
    from dvmset.storage import DataRoot

    root = Path(p["work"]) / "pipeline" / p["label"]
    shutil.rmtree(root, ignore_errors=True)
    config = Config(data_root=root, model_dir=Path(p["repo"]))
    config = config.model_copy(
        update={
            "separate": config.separate.model_copy(update={"model": TINY_MODEL}),
            "clip": ClipConfig(**p.get("clip", {})),
        }
    )
    catalog = Catalog.open(config.resolved_catalog_url)
    inputs = root / "inputs"
    inputs.mkdir(parents=True)
    (inputs / Path(p["video"]).name).symlink_to(p["video"])
    catalog.add_candidates(scan_folder(inputs, "bench"))
    for name in ("download", "probe"):
        stage = steps.stage_named(name)
        videos = stage.pending(catalog, config)
        steps.run_stage(stage, catalog, config, videos)
    for video in videos:  # separated: the tiny model's stems of the separate run, so memory stays the clip step's
        shutil.copytree(p["stems"], DataRoot(root).stems_dir(video.video_id))
        catalog.mark_separated(video.video_id, TINY_MODEL, steps.stage_keys(config).separate)
    clip_stage = steps.stage_named("clip")
    videos = clip_stage.pending(catalog, config)

    def run() -> dict[str, Any]:
        summary = steps.run_stage(clip_stage, catalog, config, videos)
        clips = catalog.clips(videos[0].video_id)
        sizes_mb = [(root / clip.video_path).stat().st_size / MB for clip in clips]
        return {
            "media_s": sum(clip.duration_s for clip in clips),
            "clips": len(clips),
            "summary": summary.line(),
            "settings": config.clip.model_dump(),
            "video_mb_per_clip": sum(sizes_mb) / max(1, len(sizes_mb)),
        }

    return run


def _prepare_models(p: dict[str, Any]):
    """The tiny random model (`save_tiny_model`) and a random-weight HTDemucs built with the
    published kwargs, saved in the same layout: `{sig}-{checksum}.th` + a one-model bag `{name}.yaml`."""
    import torch
    import yaml
    from demucs.htdemucs import HTDemucs
    from demucs.states import get_state, save_with_checksum

    from curation.htdemucs_onnx import HTDEMUCS_KWARGS
    from curation.separate import save_tiny_model

    def run() -> dict[str, Any]:
        repo = Path(p["repo"])
        if not (repo / f"{TINY_MODEL}.yaml").exists():
            save_tiny_model(repo, TINY_MODEL, sample_rate_hz=44100)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = HTDemucs(**HTDEMUCS_KWARGS)
        sig = hashlib.sha256(HTDEMUCS_MODEL.encode()).hexdigest()[:8]
        if not (repo / f"{HTDEMUCS_MODEL}.yaml").exists():
            args, kwargs = model._init_args_kwargs  # recorded by demucs' @capture_init
            package = {
                "klass": HTDemucs,
                "args": args,
                "kwargs": kwargs,
                "state": get_state(model, None, half=True),
                "training_args": {},
            }
            save_with_checksum(package, repo / f"{sig}.th")
            (repo / f"{HTDEMUCS_MODEL}.yaml").write_text(yaml.safe_dump({"models": [sig]}), encoding="utf-8")
        return {
            "media_s": 0.0,
            "htdemucs_parameters": sum(t.numel() for t in model.parameters()),
            "htdemucs_file_mb": sum(f.stat().st_size for f in repo.glob(f"{sig}-*.th")) / MB,
        }

    return run


def _prepare_profile_clip(p: dict[str, Any]):
    """Where cut_video's time goes, on the first clip: its exact ffmpeg command (captured from
    `curation.clip.stream_tool`, the small frames it pipes to the analysis written to /dev/null), without
    encoding (decode + filters), and with other presets or sizes."""
    from curation import clip
    from dvmset.config import ClipConfig
    from dvmset.storage import MUSIC_FILE, VIDEO_FILE

    settings = ClipConfig()  # the clip step's defaults
    span = _spans(p["duration_s"])[0]
    out = Path(p["work"]) / "profile" / VIDEO_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    captured: list[list[str]] = []

    def record(args: list[str], *_: object) -> None:  # record the command, write an empty clip
        captured.append(list(args))
        Path(args[args.index("-movflags") + 4].removeprefix("file:")).touch()  # -movflags +faststart -f mp4 FILE

    real_run, clip.stream_tool = clip.stream_tool, record
    try:
        clip.cut_video(Path(p["video"]), span, _clip_dir(p["work"], 0) / MUSIC_FILE, out, settings, fps=FPS)
    finally:
        clip.stream_tool = real_run
    command = captured[0]
    command[command.index("-movflags") + 4] = f"file:{out}"
    command[command.index("pipe:1")] = "file:/dev/null"

    graph = command.index("-filter_complex") + 1

    def variant(preset: str | None, crf: int | None, height: int | None) -> list[str]:
        args = list(command)
        if preset:  # the preset's own settings: without the stage's -x264-params
            args[args.index("-preset") + 1] = preset
            if "-x264-params" in args:
                del args[args.index("-x264-params") : args.index("-x264-params") + 2]
        if crf:
            args[args.index("-crf") + 1] = str(crf)
        if height:
            args[graph] = args[graph].replace(f"min(ih,{settings.max_height})", f"min(ih,{height})")
        return args

    def quality(args: list[str]) -> dict[str, float]:
        """SSIM and PSNR (dB) of the encoded clip against the same frames before encoding."""
        source = args[: args.index("-i") + 2]  # ffmpeg ... -ss START -t LENGTH -i SOURCE
        filters = args[graph].removeprefix("[0:v:0]").partition(",split[clip]")[0]
        lavfi = f"[1:v:0]{filters},split[r1][r2];[0:v:0]split[e1][e2];[e1][r1]ssim;[e2][r2]psnr"
        compare = [source[0], "-nostdin", "-v", "info", "-i", str(out), *source[5:], "-lavfi", lavfi, "-f", "null", "-"]
        log = subprocess.run(compare, check=True, capture_output=True, text=True).stderr
        ssim = re.search(r"SSIM .*All:([0-9.]+)", log)
        psnr = re.search(r"PSNR .*average:([0-9.inf]+)", log)
        return {"ssim": float(ssim.group(1)) if ssim else None, "psnr_db": float(psnr.group(1)) if psnr else None}

    def timed(label: str, args: list[str], measure_quality: bool = True) -> dict[str, Any]:
        out.unlink(missing_ok=True)
        before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        wall_s, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        size_mb = out.stat().st_size / MB if out.exists() else 0.0
        scores = quality(args) if measure_quality else {}
        return {"variant": label, "wall_s": wall_s, "cpu_s": cpu_s, "size_mb": size_mb, **scores}

    def run() -> dict[str, Any]:
        small = command[command.index("[small]") - 1 :]  # -map [small] -f yuv4mpegpipe file:/dev/null
        no_encoding = command[: command.index("-c:v")] + ["-f", "null", "-", *small]
        rows = [timed("decode + filters, no encoding", no_encoding, measure_quality=False)]
        rows += [timed(label, variant(preset, crf, height)) for label, preset, crf, height in CUT_VIDEO_VARIANTS]
        return {"media_s": span.duration_s, "variants": rows, "command": command}

    return run


class SubprocessPeakSampler(threading.Thread):
    """Samples `VmHWM` (peak RSS of the running program image) of this process's children.

    Linux keeps `ru_maxrss` across exec, so a child's `ru_maxrss`, and with it `RUSAGE_CHILDREN`,
    starts at the peak RSS of the process that spawned it: it never shows an ffmpeg smaller than
    the Python process that started it. `VmHWM` is the exec'd program's own. A child that lives
    less than `interval_s` may be missed.
    """

    def __init__(self, interval_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.interval_s, self.peak_mb, self.pids = interval_s, 0.0, set()
        self._done = threading.Event()

    def run(self) -> None:
        tasks = Path(f"/proc/{os.getpid()}/task")
        while not self._done.wait(self.interval_s):
            try:
                kids = [pid for task in tasks.iterdir() for pid in (task / "children").read_text().split()]
                for pid in kids:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.peak_mb = max(self.peak_mb, int(line.split()[1]) / 1024)
                            self.pids.add(pid)
            except OSError:  # a child ended while being read
                continue

    def stop(self) -> None:
        self._done.set()
        self.join()


def child_main(stage: str, params: dict[str, Any]) -> None:
    """Import the stage, note the baseline, run it once, write its figures to `params["result"]`."""
    result = Path(params["result"])
    try:
        run = globals()[f"_prepare_{stage}"](params)  # _prepare_probe, _prepare_separate, ...
    except ImportError as error:
        result.write_text(json.dumps({"error": f"{type(error).__name__}: {error}"}), encoding="utf-8")
        raise
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    baseline_rss_mb = pages * os.sysconf("SC_PAGE_SIZE") / MB
    before = resource.getrusage(resource.RUSAGE_SELF)  # CPU spent on imports is not the stage's
    sampler = SubprocessPeakSampler()
    profiler = None
    if params.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
    sampler.start()
    start = time.perf_counter()
    try:
        figures = profiler.runcall(run) if profiler else run()
    finally:
        wall_s = time.perf_counter() - start
        sampler.stop()
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    figures.update(
        wall_s=wall_s,
        baseline_rss_mb=baseline_rss_mb,
        peak_rss_mb=own.ru_maxrss / 1024,  # KiB on Linux
        share_mb=own.ru_maxrss / 1024 - baseline_rss_mb,
        subprocess_peak_mb=sampler.peak_mb if sampler.pids else None,
        children_maxrss_mb=kids.ru_maxrss / 1024,
        cpu_self_s=own.ru_utime + own.ru_stime - before.ru_utime - before.ru_stime,
        cpu_children_s=kids.ru_utime + kids.ru_stime,
    )
    if profiler:
        import pstats

        stats = sorted(pstats.Stats(profiler).stats.items(), key=lambda item: item[1][2], reverse=True)[:12]
        figures["profile"] = [
            {"function": f"{Path(file).name}:{line}({name})", "calls": calls, "tottime_s": tot, "cumtime_s": cum}
            for (file, line, name), (calls, _, tot, cum, _) in stats
        ]
    result.write_text(json.dumps(figures), encoding="utf-8")


if __name__ == "__main__":
    child_main(sys.argv[1], json.loads(sys.argv[2]))
