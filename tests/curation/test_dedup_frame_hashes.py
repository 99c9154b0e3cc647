"""`dedup.load_index_hashes`: the frame and picture hashes alone, read without `np.load` (publish reads every
video's)."""

import io

import numpy as np
import pytest

from curation import dedup
from curation.dedup_picture import picture_hashes
from dvmset.errors import DedupError, ReasonCode


def fingerprint(frames: int, seed: int = 0) -> dedup.Fingerprint:
    rng = np.random.default_rng(seed)
    return dedup.Fingerprint(
        rng.integers(0, 2**64, frames, dtype=np.uint64),
        rng.integers(0, 256, (frames, 32), dtype=np.uint8),
        rng.integers(-100, 0, (frames * 2, dedup.AUDIO_BANDS), dtype=np.int8),
        rng.integers(-127, 128, (frames // 2, 4, 63), dtype=np.int8),
        rng.integers(0, 256, (frames // 2, 4, 8), dtype=np.uint8),
    )


@pytest.mark.parametrize("frames", [0, 1, 1000])
def test_the_index_hashes_are_those_of_the_whole_fingerprint(tmp_path, frames):
    path = dedup.save_fingerprint(fingerprint(frames), tmp_path / "fingerprint.npz")
    frame_hashes, pictures = dedup.load_index_hashes(path)
    whole = dedup.load_fingerprint(path)
    np.testing.assert_array_equal(frame_hashes, whole.frame_hashes)
    np.testing.assert_array_equal(pictures, picture_hashes(whole.picture_descriptors))
    assert frame_hashes.dtype == pictures.dtype == np.uint64
    assert frame_hashes.shape == (frames,) and pictures.shape == (frames // 2, 4)
    frame_hashes[:1] = 0  # a writable copy, not a view of the file's bytes


@pytest.mark.parametrize(
    "array",
    [
        np.arange(5, dtype=">u8"),  # parsed directly, byte order kept
        np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)),  # left to numpy
        np.array("text"),
    ],
)
def test_an_npy_member_reads_back_as_numpy_wrote_it(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    read = dedup._npy_array(buffer.getvalue())
    np.testing.assert_array_equal(read, array)
    assert read.dtype == array.dtype and read.shape == array.shape


def test_an_old_or_broken_file_is_refused(tmp_path, monkeypatch):
    path = dedup.save_fingerprint(fingerprint(10), tmp_path / "fingerprint.npz")
    monkeypatch.setattr(dedup, "FINGERPRINT_VERSION", dedup.FINGERPRINT_VERSION + 1)
    with pytest.raises(DedupError, match="version"):
        dedup.load_index_hashes(path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DedupError) as caught:
        dedup.load_index_hashes(path)
    assert caught.value.reason is ReasonCode.INTERNAL_ERROR
