"""Publish: the catalog's decided clips -> `<data_root>/manifests/<version>/` (stage 9).

In: an open catalog, the config, a version name. Out: `train.parquet`, `test.parquet` and the
dataset card in a new folder (built beside it and renamed into place, so a failed publish leaves
nothing under the version's name), the videos' groups and new sides stored in the catalog, and a
`PublishResult` with the counts.

Steps: index the fingerprint of every clipped video (`stems/<video>/fingerprint.npz`, made by the
fingerprint stage; only its picture hashes are read up front, the rest only for the candidate
pairs of `dedup_groups`); `assign_groups` with the groups already stored; split the groups of the
videos with accepted clips (`split_groups`, stratified by each video's first query, published
sides fixed); store groups and new sides; write one manifest row per decided accepted clip, with
the size, SHA-256 and decoded duration of its video and music files and the music's tempo and beat
count (`manifests.media_facts`, measured on a few threads) and, in the metadata, `media_root`: the
data root relative to the version's folder. The card counts the rejected clips by reason and names the models the clips'
stems came from. A version that exists is never overwritten. A split that would get no rows is
refused (`EmptySplitError`: the groups each side needs and has); rows equal to the last
version's are not written again (`NothingChangedError`) unless `force` is set. Both checks come
before anything is written, the catalog included. Version names, the last version and the code
version are `curation.versions`'.

Clips whose music a stand-in separator made (random weights: `ClipRecord.stand_in`, or a
stand-in among the video's `separation_models`) are filtered noise, not data: a publish that
would write any of them, accepted or rejected, is refused (`StandInError`, nothing written)
unless `allow_stand_in` is set; then the card opens with a warning and says `stand_in: true`.

A new video that would merge groups already published on different sides (it matches a train
video and a test video) cannot go on either side without a leak, and published videos never
move: it is withheld (not grouped, not published; `PublishResult.withheld_video_ids`) and the
rest publishes. It stays withheld in later publishes for as long as it bridges them.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from curation import dedup, dedup_groups
from curation.versions import (
    VERSION_PATTERN,
    NothingChangedError,
    VersionExistsError,
    code_version,
    latest_version,
    manifests_root,
    next_version,
    same_rows,
)
from dvmset.catalog import Catalog
from dvmset.config import Config, config_toml
from dvmset.errors import PublishError
from dvmset.records import ClipRecord, ClipStatus, Decision, ModelStamp, VideoRecord, VideoStatus
from dvmset.storage import FINGERPRINT_FILE, DataRoot, temp_name_for
from dvmset.store import Storage
from manifests.card import NO_QUERY, SEPARATOR_ROLE, SPEECH_ROLE, ModelUse, write_dataset_card
from manifests.media_facts import measure_clip_media
from manifests.schema import (
    MEDIA_ROOT_KEY,
    ManifestRow,
    manifest_path,
    manifest_row,
    media_root_of,
    read_manifest,
    write_manifest,
)
from manifests.split import Split, SplitConfig, SplitItem, split_groups

log = logging.getLogger(__name__)


class EmptySplitError(PublishError):
    """A side of the split would have no rows (readers such as `datasets` fail on an empty split);
    nothing was written. `side`: the empty side(s); `groups`: side -> groups it would get;
    `needed`: groups a query needs before one goes to test; `largest_query`: (query, its groups)."""

    def __init__(self, side: str, groups: dict[str, int], needed: int, largest_query: tuple[str, int]):
        self.side, self.groups, self.needed, self.largest_query = side, dict(groups), needed, tuple(largest_query)
        query, query_groups = largest_query
        super().__init__(
            f"the {side} split would have no rows, and an empty split breaks readers (Hugging Face datasets): "
            f"a split needs at least 1 group of videos with accepted clips on each side (2 in all), and a query "
            f"puts a group on the test side only once it has {needed} groups; there are {groups.get('train', 0)} "
            f"groups on train and {groups.get('test', 0)} on test (the query with the most, {query!r}, has "
            f"{query_groups}). Accept clips of more videos, then publish again"
        )

    def __reduce__(self):  # pickles (Prefect keeps a failed state's data) as made
        return type(self), (self.side, self.groups, self.needed, self.largest_query)


class StandInError(PublishError):
    """Clips to publish have music made by a stand-in (random-weight) model, and stand-in output
    was not allowed (`allow_stand_in`, `--allow-stand-in`); nothing was written. `reason`:
    "stand_in"; `clips`: how many (accepted and rejected); `models`: the stand-in models' ids."""

    reason = "stand_in"

    def __init__(self, clips: int, models: tuple[str, ...]):
        self.clips = clips
        self.models = tuple(models)
        named = ", ".join(repr(model) for model in self.models) or "a stand-in model"
        super().__init__(
            f"{clips} clips to publish (accepted or rejected) have music made by a stand-in separator with "
            f"random weights ({named}): it removes no vocals and its music is filtered noise, not data. "
            "Separate those videos again with real weights (htdemucs), or publish them anyway, marked as "
            "stand-in output, with --allow-stand-in (flows: allow_stand_in=True)"
        )

    def __reduce__(self) -> tuple[type[StandInError], tuple[int, tuple[str, ...]]]:
        return type(self), (self.clips, self.models)  # pickles (Prefect keeps a failed state's data) as made


@dataclass(frozen=True)
class PublishResult:
    """What a publish wrote: its folder, clips and videos per side, rejected clips, groups,
    videos put on a side for the first time, the group merges new videos caused, and the new
    videos withheld because they would join groups published on both sides."""

    version: str
    manifest_dir: Path
    clips: dict[Split, int]
    videos: dict[Split, int]
    rejected_clips: int
    groups: int
    newly_published_videos: int
    merges: tuple[dedup_groups.GroupMerge, ...]
    withheld_video_ids: tuple[str, ...] = ()
    stand_in_clips: int = 0  # clips written (accepted and rejected) whose music a stand-in made
    stand_in_models: tuple[str, ...] = ()  # those stand-in models' ids


def publish(
    catalog: Catalog, config: Config, version: str, *, allow_stand_in: bool = False, force: bool = False
) -> PublishResult:
    """Publish the catalog's decided clips as manifest `version` (see the module docstring).
    VersionExistsError if the version exists; StandInError if a clip to publish is stand-in
    output and `allow_stand_in` is false; EmptySplitError if a side would have no rows;
    NothingChangedError if the rows equal the last version's and `force` is false (nothing is
    written then, the catalog included); PublishError if the version is not a plain name, a
    video to publish has no fingerprint or unreadable media, or the stored groups already join
    both sides."""
    if not VERSION_PATTERN.fullmatch(version):
        raise PublishError(f"version {version!r} must be letters, digits, '.', '_' or '-' (at most 64)")
    storage = config.data_storage()
    final = manifests_root(config) / version
    if final.exists():
        raise VersionExistsError(
            f"manifest version {version!r} exists at {final} and is never overwritten; "
            f"publish under another --version (the next free one is {next_version(config)})"
        )
    data = storage.data
    every_video = list(catalog.videos())
    videos = {video.video_id: video for video in every_video if video.status is VideoStatus.CLIPPED}
    decisions = catalog.decisions()
    decided, accepted = _accepted_clips(catalog, decisions, videos)
    stored_groups = {video.video_id: video.group_id for video in every_video if video.group_id is not None}
    side_of = {video.video_id: video.split for video in every_video if video.split is not None}
    prints = _fingerprints(storage, videos.values(), set(accepted))
    grouping, withheld = _group_without_bridges(prints, stored_groups, side_of)
    group_of = grouping.group_of
    accepted = {video_id: clips for video_id, clips in accepted.items() if video_id not in withheld}
    stand_ins = [c for c in decided if c.video_id not in withheld and clip_is_stand_in(c, videos[c.video_id])]
    stand_in_models = _stand_in_models(stand_ins, videos)
    if stand_ins and not allow_stand_in:
        raise StandInError(len(stand_ins), stand_in_models)
    published = _published_sides(side_of, group_of)
    items = [SplitItem(group_of[v], _query(videos[v]), len(clips)) for v, clips in accepted.items()]
    split = split_groups(items, SplitConfig(**config.publish.model_dump()), published)
    split_of = {video_id: split.assignments[group_of[video_id]].value for video_id in accepted}
    _refuse_empty_sides(split_of, group_of, accepted, videos, config)
    for clip in (clip for clips in accepted.values() for clip in clips):  # what the rows measure, made local
        storage.fetch(data.resolve(clip.video_path))
        storage.fetch(data.resolve(clip.music_path))
    rows = _manifest_rows(data, accepted, videos, decisions, group_of, split_of)
    last = latest_version(config)
    if not force and last is not None and same_rows(rows, last):
        raise NothingChangedError(version, last)
    models = model_uses(accepted, videos, split_of)
    stand_in_rejected = sum(1 for clip in stand_ins if decisions[clip.clip_id].status is ClipStatus.REJECTED)
    staging = temp_name_for(final)
    try:
        _write(
            staging / version,
            rows,
            catalog.rejection_counts(decisions),
            catalog,
            config,
            version,
            models=models,
            stand_in_rejected=stand_in_rejected,
            media_root=media_root_of(final, data.root),
            video_durations_s=_video_durations(videos, accepted),
            rejected_clips=sum(1 for d in decisions.values() if d.status is ClipStatus.REJECTED),
        )
        storage.upload_as(staging / version, final)  # under final keys before the catalog records the splits
        catalog.set_groups({video: group for video, group in group_of.items() if stored_groups.get(video) != group})
        newly = catalog.publish_splits(split_of, version)
        os.rename(staging / version, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for merge in grouping.merges:
        log.warning(
            "publish %s: group %s absorbed %s (videos %s)", version, merge.kept, merge.absorbed, merge.moved_video_ids
        )
    if withheld:
        log.warning("publish %s: withheld %s: each joins groups published on both sides", version, sorted(withheld))
    return PublishResult(
        version=version,
        manifest_dir=final,
        clips={side: len(rows[side]) for side in Split},
        videos={side: sum(1 for s in split_of.values() if s == side.value) for side in Split},
        rejected_clips=sum(1 for d in decisions.values() if d.status is ClipStatus.REJECTED),
        groups=len({group_of[v] for v in accepted}),
        newly_published_videos=newly,
        merges=grouping.merges,
        withheld_video_ids=tuple(sorted(withheld)),
        stand_in_clips=len(stand_ins),
        stand_in_models=stand_in_models,
    )


def _accepted_clips(
    catalog: Catalog, decisions: dict[str, Decision], videos: dict[str, VideoRecord]
) -> tuple[list[ClipRecord], dict[str, list[ClipRecord]]]:
    """(the live decided clips of clipped videos, accepted or rejected; video id -> its clips
    decided `accepted`, in clip order)."""
    decided = [clip for clip in catalog.clips() if clip.video_id in videos and clip.clip_id in decisions]
    accepted: dict[str, list[ClipRecord]] = defaultdict(list)
    for clip in decided:  # retired clips have no decision
        if decisions[clip.clip_id].status is ClipStatus.ACCEPTED:
            accepted[clip.video_id].append(clip)
    return decided, dict(sorted(accepted.items()))


def video_models(video: VideoRecord) -> tuple[ModelStamp, ...]:
    """The models a video's stems came from: its `separation_models`, or for a video separated
    before they were recorded, its separator (SHA-256 unknown)."""
    if video.separation_models:
        return video.separation_models
    if video.separator_model_id is None:
        return ()
    return (ModelStamp(video.separator_model_id, None, video.separator_stand_in),)


def clip_is_stand_in(clip: ClipRecord, video: VideoRecord) -> bool:
    """True when a clip's music (or a score of it) was made by a stand-in (random-weight) model."""
    return clip.stand_in or any(stamp.stand_in for stamp in video.separation_models)


def _stand_in_models(clips: list[ClipRecord], videos: dict[str, VideoRecord]) -> tuple[str, ...]:
    """The ids of the stand-in models that made `clips` (the clips' separators where no stamp says)."""
    names: set[str] = set()
    for clip in clips:
        stamps = [stamp.model_id for stamp in video_models(videos[clip.video_id]) if stamp.stand_in]
        names.update(stamps or [clip.separator_model_id])
    return tuple(sorted(names))


def model_uses(
    accepted: dict[str, list[ClipRecord]], videos: dict[str, VideoRecord], split_of: dict[str, str]
) -> list[ModelUse]:
    """The models the `accepted` clips' stems came from, with the clips per split of each: the
    video's separator (`separator_model_id`) in the separator role, any other stamp (Silero VAD)
    as the speech detector."""
    clips: dict[tuple[str, ModelStamp], Counter[str]] = defaultdict(Counter)
    for video_id, video_clips in accepted.items():
        video, first = videos[video_id], video_clips[0]
        separators = {video.separator_model_id, first.separator_model_id}
        for stamp in video_models(video) or (ModelStamp(first.separator_model_id, None, first.stand_in),):
            role = SEPARATOR_ROLE if stamp.model_id in separators else SPEECH_ROLE
            clips[(role, stamp)][split_of[video_id]] += len(video_clips)
    return [ModelUse(role, stamp, dict(counts)) for (role, stamp), counts in clips.items()]


def _manifest_rows(
    data: DataRoot,
    accepted: dict[str, list[ClipRecord]],
    videos: dict[str, VideoRecord],
    decisions: dict[str, Decision],
    group_of: dict[str, str],
    split_of: dict[str, str],
) -> dict[Split, list[ManifestRow]]:
    """Side -> the manifest rows of the `accepted` clips of the videos on it (each video's music
    format read once, from its first clip's file; every clip's files measured by `_media_facts`)."""
    clips = [clip for video_clips in accepted.values() for clip in video_clips]
    facts = measure_clip_media(data, clips)
    rows: dict[Split, list[ManifestRow]] = {side: [] for side in Split}
    for video_id, video_clips in accepted.items():
        video, group_id, side = videos[video_id], group_of[video_id], Split(split_of[video_id])
        rate_hz, channels = _music_format(data, video_clips[0])
        rows[side] += [
            manifest_row(
                video,
                clip,
                decisions[clip.clip_id],
                group_id,
                side,
                rate_hz,
                channels=channels,
                video_facts=facts[clip.video_path],
                music_facts=facts[clip.music_path],
            )
            for clip in video_clips
        ]
    return rows


def _refuse_empty_sides(
    split_of: dict[str, str],
    group_of: dict[str, str],
    accepted: dict[str, list[ClipRecord]],
    videos: dict[str, VideoRecord],
    config: Config,
) -> None:
    """EmptySplitError when a side gets no group of videos with accepted clips."""
    groups = {side.value: {group_of[v] for v, s in split_of.items() if s == side.value} for side in Split}
    empty = [side for side, members in groups.items() if not members]
    if not empty:
        return
    per_query: dict[str, set[str]] = defaultdict(set)
    for video_id in accepted:
        per_query[_query(videos[video_id])].add(group_of[video_id])
    largest = max(
        ((query, len(members)) for query, members in per_query.items()),
        key=lambda qc: (qc[1], qc[0]),
        default=("none", 0),
    )
    counts = {side: len(members) for side, members in groups.items()}
    raise EmptySplitError(" and ".join(empty), counts, config.publish.min_groups_per_query, largest)


def _fingerprints(storage: Storage, videos: Iterable[VideoRecord], required: set[str]) -> dedup_groups.FingerprintIndex:
    """The index of the current fingerprints of `videos` (fetched from the store when there is one);
    PublishError if one of `required` has none."""
    videos = list(videos)
    paths = {
        video.video_id: storage.fetch(storage.data.stems_dir(video.video_id) / FINGERPRINT_FILE)
        for video in videos
        if video.fingerprint_version == dedup.FINGERPRINT_VERSION
    }
    prints, errors = dedup_groups.index_files(paths)
    for video_id, error in errors.items():
        log.warning("%s: %s", video_id, error)
    missing = [video.video_id for video in videos if video.video_id in required and video.video_id not in prints]
    if missing:
        raise PublishError(
            f"{len(missing)} videos with accepted clips have no current fingerprint ({', '.join(missing[:5])}); "
            "run `dvmset clip` (it fingerprints clipped videos) and publish again"
        )
    return prints


def _group_without_bridges(
    prints: dedup_groups.FingerprintIndex, stored: dict[str, str], side_of: dict[str, str]
) -> tuple[dedup_groups.Grouping, set[str]]:
    """`assign_groups` over `prints` without the new videos that would put videos published on
    both sides (`side_of`) into one group: (the grouping, those withheld video ids). A new video
    that bridges the sides on its own is withheld; where only several together do, all the new
    videos of that group are."""
    withheld: set[str] = set()
    while True:
        grouping = dedup_groups.assign_groups(prints.only(v for v in prints.video_ids if v not in withheld), stored)
        torn = _torn_groups(grouping.group_of, side_of)
        if not torn:
            return grouping, withheld
        members = defaultdict(list)
        for video_id, group_id in grouping.group_of.items():
            if group_id in torn:
                members[group_id].append(video_id)
        for group_id, ids in members.items():
            new = [v for v in ids if v not in stored]
            if not new:  # the stored groups themselves are torn: nothing here can mend them
                raise PublishError(
                    f"near-duplicate group {group_id!r} holds videos already published on both sides "
                    f"({', '.join(sorted(ids)[:5])}); the catalog's stored groups are inconsistent"
                )
            old = [v for v in ids if v in stored]
            alone = [
                v
                for v in new
                if _torn_groups(dedup_groups.assign_groups(prints.only([*old, v]), stored).group_of, side_of)
            ]
            withheld.update(alone or new)


def _torn_groups(group_of: dict[str, str], side_of: dict[str, str]) -> set[str]:
    """The groups of `group_of` that hold videos published on both sides."""
    sides: dict[str, set[str]] = defaultdict(set)
    for video_id, side in side_of.items():
        if video_id in group_of:
            sides[group_of[video_id]].add(side)
    return {group for group, found in sides.items() if len(found) > 1}


def _published_sides(side_of: dict[str, str], group_of: dict[str, str]) -> dict[str, str]:
    """Group id -> the side its published videos are on (no group has both: see
    `_group_without_bridges`; a published video always has a stored group, so `group_of` knows it)."""
    return {group_of[video_id]: side for video_id, side in side_of.items()}


def _video_durations(videos: dict[str, VideoRecord], accepted: dict[str, list[ClipRecord]]) -> dict[str, float]:
    """Video id -> the duration of each source video with accepted clips (probed, else as the
    platform gives it; left out when neither is known), for the card's duration picture."""
    durations = {}
    for video_id in accepted:
        video = videos[video_id]
        seconds = video.probe.duration_s if video.probe is not None else video.metadata.duration_s
        if seconds is not None:
            durations[video_id] = seconds
    return durations


def _query(video: VideoRecord) -> str:
    return video.queries[0] if video.queries else NO_QUERY


def _music_format(data: DataRoot, clip: ClipRecord) -> tuple[int, int]:
    """(sample rate in Hz, channels) of a clip's music file (all clips of a video share them)."""
    try:
        info = sf.info(str(data.resolve(clip.music_path)))
    except (RuntimeError, OSError, ValueError) as error:
        raise PublishError(f"clip {clip.clip_id}: cannot read its music file {clip.music_path}: {error}") from error
    return int(info.samplerate), int(info.channels)


def _write(
    folder: Path,
    rows: dict[Split, list[ManifestRow]],
    rejections: Counter[str],
    catalog: Catalog,
    config: Config,
    version: str,
    *,
    models: list[ModelUse],
    stand_in_rejected: int,
    media_root: str,
    video_durations_s: dict[str, float] | None = None,
    rejected_clips: int | None = None,
) -> None:
    """The two manifests and the card (with the rejected clips per reason, the models the clips'
    stems came from and the stand-in warning when there is stand-in output) into `folder`."""
    toml_text = config_toml(_shareable(config, catalog))
    code = code_version()
    metadata = {"manifest_version": version, "code_version": code, "config": toml_text, MEDIA_ROOT_KEY: media_root}
    tables = {side: read_manifest(write_manifest(rows[side], manifest_path(folder, side), metadata)) for side in Split}
    write_dataset_card(
        folder,
        tables[Split.TRAIN],
        tables[Split.TEST],
        rejections=rejections,
        config_toml=toml_text,
        code_version=code,
        models=models,
        stand_in_rejected=stand_in_rejected,
        video_durations_s=video_durations_s,
        rejected_clips=rejected_clips,
    )


def _shareable(config: Config, catalog: Catalog) -> Config:
    """The config without secrets: the catalog URL's password hidden, proxies left out."""
    return config.model_copy(
        update={
            "catalog_url": catalog.url if config.catalog_url else None,
            "search": config.search.model_copy(update={"proxy": None}),
            "download": config.download.model_copy(update={"proxy": None, "cookies_file": None}),
        }
    )
