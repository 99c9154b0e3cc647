"""Near-duplicate groups: which videos of a catalog are copies of one another (`dedup.compare`),
found through an index instead of by comparing every pair, and stable as the catalog grows.

In: a `FingerprintIndex` (each video's index keys, with its full fingerprint read only when a pair
needs comparing: `index_files`; or `FingerprintIndex.of` fingerprints in memory) and the groups
already stored. Out: `assign_groups` -> `Grouping`: video id -> group id, and the merges of
existing groups it had to make.

The index (`index_keys`, `candidate_pairs`) is locality-sensitive hashing by bit sampling: a key
is `LSH_BITS` fixed bits of a picture hash, in each of `LSH_TABLES` tables (other bits each). A
copy's hash, a few bits off the original's, keeps a table's key with fair odds (2 bits off: 0.28,
4: 0.07, 8: 0.004) over its many samples; an unrelated one, each bit a coin toss, with odds of
2^-30, so a key stays rare among the millions of a large catalog's videos.

Memory stays bounded: only a share of each video's distinct keys is indexed, chosen by a hash of
the key itself: `PREFIX_KEY_SHARE` of the keys of its first `PREFIX_S`, `INDEXED_KEY_SHARE` of
the later ones (consistent sampling: where two videos hold a key in the same part, both keep it or
neither does, so copies keep shared keys and `MAX_BUCKET_VIDEOS` still sees a title card's).
The start is denser because `compare` looks only at offsets up to `MAX_OFFSET_S` with an overlap
of half the shorter video, so two copies' first `PREFIX_S` hold the same content for at least
`PREFIX_S - MAX_OFFSET_S` (or all of a short copy); in long copies the later keys add up.

Two videos are a candidate pair when they share keys in `MIN_SHARED_TABLES` tables: a chance
collision of two pictures' hashes repeats in one table's keys of neighbouring samples (each
sample's few changed bits make other keys that collide alike), not in another table.

The crop-proof picture descriptors (`dedup_picture`) are indexed alike, in `PICTURE_TABLES` more
tables: keys of `LSH_BITS` of the 62 bits of each region's `picture_hashes` (all four regions,
so that a crop's full region meets its original's, mirror-proof), `PICTURE_PREFIX_KEY_SHARE` of
those of the first `PREFIX_S`, `PICTURE_KEY_SHARE` of the later ones. On the real-footage set
(`bench/dedup.py`) a copy's samples lie a median 0 to 5 of 62 bits from their original's nearest
(up to 18 for single samples of a copy cropped, mirrored and sped up at once), and unrelated
videos' nearest samples 10 or more apart; so these tables are twice as many, over four regions:
about 1,200 keys for 330 s of video, beside the frame hashes' 620.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curation.dedup import FRAME_RATE_HZ, MAX_OFFSET_S, Fingerprint, compare, load_fingerprint, load_index_hashes
from curation.dedup_picture import PICTURE_RATE_HZ, picture_hashes
from dvmset.errors import DedupError, ReasonCode

LSH_TABLES = 8
LSH_BITS = 30
PREFIX_S = 2 * MAX_OFFSET_S  # of each video, indexed more densely (see `index_keys`)
PREFIX_KEY_SHARE = 1 / 2  # of the keys of its first PREFIX_S, chosen by their hash...
INDEXED_KEY_SHARE = 1 / 32  # ...and of its later keys
MAX_BUCKET_VIDEOS = 200  # a key in more videos (a fade, a title card) says nothing
PICTURE_TABLES = 16
PICTURE_PREFIX_KEY_SHARE = 1 / 4
PICTURE_KEY_SHARE = 1 / 64
MIN_SHARED_TABLES = 2
LOADED_FINGERPRINTS = 64  # full fingerprints an index keeps read (the most recently used)

_TABLES = LSH_TABLES + PICTURE_TABLES  # frame-hash tables first
_TABLE_BITS = max(1, (_TABLES - 1).bit_length())
_OWNER_BITS = 64 - LSH_BITS - _TABLE_BITS  # candidate_pairs sorts (key, video number) as one uint64


def _rank_limit(share: float) -> np.uint64:
    return np.uint64(round(2**64 * share) - 1)


def _byte_keys(bits: int, first_table: int, tables: int) -> np.ndarray:
    """`[8 * 256, tables]` uint64: table ids and the bits of each table's key (`LSH_BITS` fixed
    positions among a hash's low `bits`) that byte b of a hash (bit 8b up), of value v, sets, at
    row 256 b + v; a key is the OR of its hash's 8 rows."""
    values = np.arange(256, dtype=np.uint64)
    rows = np.zeros((8, 256, tables), np.uint64)
    rows[0] |= np.arange(first_table, first_table + tables, dtype=np.uint64) << np.uint64(LSH_BITS)
    for table in range(tables):
        positions = np.random.default_rng(first_table + table).choice(bits, LSH_BITS, replace=False)
        for key_bit, position in enumerate(positions):
            byte, bit = divmod(int(position), 8)
            rows[byte, :, table] |= ((values >> np.uint64(bit)) & np.uint64(1)) << np.uint64(key_bit)
    return rows.reshape(8 * 256, tables)


_FRAME_KEYS = _byte_keys(64, 0, LSH_TABLES)
_PICTURE_KEYS = _byte_keys(62, LSH_TABLES, PICTURE_TABLES)


@dataclass(frozen=True)
class GroupMerge:
    """Existing groups that new videos joined together: all their videos now carry `kept`."""

    kept: str
    absorbed: tuple[str, ...]
    moved_video_ids: tuple[str, ...]  # videos whose group id changed from an absorbed one


@dataclass(frozen=True)
class Grouping:
    """`assign_groups`' answer: every video's group id, and the merges made. Callers warn about a
    merge: it may join videos that were already published on different sides of the split."""

    group_of: dict[str, str]
    merges: tuple[GroupMerge, ...]


class FingerprintIndex:
    """Video id -> its `index_keys` (held), and its full `Fingerprint` from `load` when asked
    (the last `LOADED_FINGERPRINTS` kept, so a video in several candidate pairs is read once)."""

    def __init__(self, keys_of: Mapping[str, np.ndarray], load: Callable[[str], Fingerprint]) -> None:
        self._keys_of = dict(keys_of)
        self._load = load
        self._loaded: OrderedDict[str, Fingerprint] = OrderedDict()

    @classmethod
    def of(cls, fingerprints: Mapping[str, Fingerprint]) -> FingerprintIndex:
        """The index of fingerprints in memory."""
        keys_of = {
            video_id: index_keys(fingerprint.frame_hashes, picture_hashes(fingerprint.picture_descriptors))
            for video_id, fingerprint in fingerprints.items()
        }
        return cls(keys_of, fingerprints.__getitem__)

    @property
    def video_ids(self) -> list[str]:
        return sorted(self._keys_of)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._keys_of

    def keys_of(self, video_id: str) -> np.ndarray:
        return self._keys_of[video_id]

    def fingerprint(self, video_id: str) -> Fingerprint:
        """The full fingerprint (`DedupError` from `load`, e.g. a file gone unreadable)."""
        if video_id in self._loaded:
            self._loaded.move_to_end(video_id)
        else:
            self._loaded[video_id] = self._load(video_id)
            if len(self._loaded) > LOADED_FINGERPRINTS:
                self._loaded.popitem(last=False)
        return self._loaded[video_id]

    def only(self, video_ids: Iterable[str]) -> FingerprintIndex:
        """This index without the videos not in `video_ids`."""
        wanted = set(video_ids)
        return FingerprintIndex({v: keys for v, keys in self._keys_of.items() if v in wanted}, self._load)


def index_files(paths: Mapping[str, Path]) -> tuple[FingerprintIndex, dict[str, DedupError]]:
    """Video id -> fingerprint file: the index of the readable files (only their hashes read now),
    and why each other one is not in it (`dedup.load_fingerprint`'s errors)."""
    keys_of, errors = {}, {}
    for video_id, path in paths.items():
        try:
            keys_of[video_id] = index_keys(*load_index_hashes(path))
        except DedupError as error:
            errors[video_id] = error
    return FingerprintIndex(keys_of, lambda video_id: load_fingerprint(paths[video_id])), errors


def index_keys(frame_hashes: np.ndarray, picture_hashes: np.ndarray | None = None) -> np.ndarray:
    """One video's frame hashes `[F]` (and picture hashes `[P, 4]`) -> its indexed keys `[K]`
    uint64, distinct and ascending: of the keys `t << LSH_BITS | (table t's LSH_BITS bits of h)`
    for every table t of the hash's kind and non-flat hash h, those whose `_rank` falls in the
    first `PREFIX_KEY_SHARE` of its range for a frame hash of the first `PREFIX_S`, in the first
    `INDEXED_KEY_SHARE` for a later one (picture hashes: `PICTURE_PREFIX_KEY_SHARE`, `PICTURE_KEY_SHARE`)."""
    prefix = round(PREFIX_S * FRAME_RATE_HZ)
    keys = _sampled_keys(frame_hashes, _FRAME_KEYS, prefix, PREFIX_KEY_SHARE, INDEXED_KEY_SHARE)
    if picture_hashes is not None and picture_hashes.size:
        prefix, shares = round(PREFIX_S * PICTURE_RATE_HZ), (PICTURE_PREFIX_KEY_SHARE, PICTURE_KEY_SHARE)
        per_sample = np.asarray(picture_hashes).reshape(len(picture_hashes), -1)
        sample_of = np.repeat(np.arange(len(per_sample)), per_sample.shape[1])
        keys = np.r_[keys, _sampled_keys(per_sample.ravel(), _PICTURE_KEYS, prefix, *shares, sample_of)]
    return _distinct(keys)


def _sampled_keys(
    hashes: np.ndarray,
    byte_keys: np.ndarray,
    prefix: int,
    prefix_share: float,
    share: float,
    sample_of: np.ndarray | None = None,
) -> np.ndarray:
    """The keys of every table of `byte_keys` for the non-flat `hashes` `[N]`, sampled by rank:
    `prefix_share` of those of hashes whose sample (`sample_of`, default their position) is under
    `prefix`, `share` of the others."""
    hashes = np.ascontiguousarray(hashes, dtype="<u8")
    rows = hashes.view(np.uint8).reshape(-1, 8).astype(np.intp) + np.arange(0, 8 * 256, 256)  # [N, 8]
    keys = byte_keys[rows[:, 0]].copy()  # [N, tables]
    for byte in range(1, 8):
        keys |= byte_keys[rows[:, byte]]
    samples = np.arange(len(hashes)) if sample_of is None else sample_of
    rank_limit = np.where(samples < prefix, _rank_limit(prefix_share), _rank_limit(share))[:, None]
    return keys[(_rank(keys) <= rank_limit) & (hashes != 0)[:, None]]


def _distinct(values: np.ndarray) -> np.ndarray:
    """`np.unique(values)` (a sort, and many times faster for this than numpy 2's)."""
    ordered = np.sort(values)
    first = np.ones(len(ordered), bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return ordered[first]


def _rank(keys: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random uint64 for each key (the SplitMix64 finaliser, a bijection)."""
    mixed = keys ^ (keys >> np.uint64(30))
    mixed *= np.uint64(0xBF58476D1CE4E5B9)
    mixed ^= mixed >> np.uint64(27)
    mixed *= np.uint64(0x94D049BB133111EB)
    return mixed ^ (mixed >> np.uint64(31))


def candidate_pairs(fingerprints: FingerprintIndex | Mapping[str, Fingerprint]) -> set[tuple[str, str]]:
    """Pairs `(a, b)`, `a < b`, worth a full `compare`: those sharing index keys of at least
    `MIN_SHARED_TABLES` tables, each key held by no more than `MAX_BUCKET_VIDEOS` videos; plus
    every pair of videos without a single non-flat picture (only their sound can match them).

    Cost: one sort of all indexed keys (tagged with their video's number) plus the pairs within
    each key's run: about linear in the catalog, where comparing every pair is quadratic.
    """
    index = _as_index(fingerprints)
    ids = index.video_ids
    if len(ids) >= 2**_OWNER_BITS:
        raise DedupError(ReasonCode.INTERNAL_ERROR, f"{len(ids)} videos are more than one index holds")
    entries = np.concatenate([np.zeros(0, np.uint64), *(index.keys_of(v) for v in ids)])
    entries <<= np.uint64(_OWNER_BITS)
    entries |= np.repeat(np.arange(len(ids), dtype=np.uint64), [len(index.keys_of(v)) for v in ids])
    entries.sort()
    keys = entries >> np.uint64(_OWNER_BITS)
    owners = (entries & np.uint64(2**_OWNER_BITS - 1)).astype(np.uint32)
    del entries
    run_starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    run_lengths = np.diff(np.r_[run_starts, len(keys)])
    codes = [np.zeros(0, np.int64)]  # (first video * videos + second video) * tables + table
    for length in np.unique(run_lengths[(run_lengths >= 2) & (run_lengths <= MAX_BUCKET_VIDEOS)]):
        starts = run_starts[run_lengths == length]
        members = owners[starts[:, None] + np.arange(length)].astype(np.int64)  # [runs, length], ascending
        tables = (keys[starts] >> np.uint64(LSH_BITS)).astype(np.int64)[:, None]
        first, second = np.triu_indices(length, 1)
        codes.append(((members[:, first] * len(ids) + members[:, second]) * _TABLES + tables).ravel())
    pair_codes, tables_shared = np.unique(np.unique(np.concatenate(codes)) // _TABLES, return_counts=True)
    found = pair_codes[tables_shared >= MIN_SHARED_TABLES]
    pairs = {(ids[code // len(ids)], ids[code % len(ids)]) for code in found.tolist()}
    keyless = [video_id for video_id in ids if len(index.keys_of(video_id)) == 0]
    pairs.update(itertools.combinations(keyless, 2))
    return pairs


def _as_index(fingerprints: FingerprintIndex | Mapping[str, Fingerprint]) -> FingerprintIndex:
    return fingerprints if isinstance(fingerprints, FingerprintIndex) else FingerprintIndex.of(fingerprints)


def assign_groups(fingerprints: FingerprintIndex | Mapping[str, Fingerprint], existing: Mapping[str, str]) -> Grouping:
    """Group ids for every video of `fingerprints` and `existing` (video id -> its group id).

    Only pairs with at least one video new to `existing` are compared (`candidate_pairs`, then
    `compare`, skipping pairs already joined); videos that share an existing group stay
    together. Each connected set of videos (union-find) then gets one id:

    - no existing group in it: the smallest of its video ids not yet naming a group (so a new
      singleton's group is its own video id), or `<smallest id>~2`, `~3`... if all of them do;
    - one existing group: that group's id (old videos keep theirs, new ones join);
    - several (new videos bridged them): the smallest of their ids, and a `GroupMerge` in the
      answer lists the absorbed ids and the videos that moved.
    """
    index = _as_index(fingerprints)
    parent = {video_id: video_id for video_id in (*index.video_ids, *existing)}

    def root(node: str) -> str:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(a: str, b: str) -> None:
        parent[max(root(a), root(b))] = min(root(a), root(b))

    first_member: dict[str, str] = {}
    for video_id, group_id in existing.items():
        union(first_member.setdefault(group_id, video_id), video_id)
    for a, b in sorted(candidate_pairs(index)):
        if (a in existing and b in existing) or root(a) == root(b):
            continue
        if compare(index.fingerprint(a), index.fingerprint(b)).is_match:
            union(a, b)

    components: dict[str, list[str]] = {}
    for video_id in sorted(parent):
        components.setdefault(root(video_id), []).append(video_id)
    used_ids = set(existing.values())
    group_of: dict[str, str] = {}
    merges: list[GroupMerge] = []
    for members in components.values():
        old_groups = sorted({existing[v] for v in members if v in existing})
        if old_groups:
            group_id = old_groups[0]
        else:
            fallbacks = (f"{members[0]}~{n}" for n in itertools.count(2))
            group_id = next(name for name in itertools.chain(members, fallbacks) if name not in used_ids)
            used_ids.add(group_id)
        if len(old_groups) > 1:
            moved = tuple(v for v in members if v in existing and existing[v] != group_id)
            merges.append(GroupMerge(group_id, tuple(old_groups[1:]), moved))
        group_of.update(dict.fromkeys(members, group_id))
    return Grouping(group_of, tuple(merges))
