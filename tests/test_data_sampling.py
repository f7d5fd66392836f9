"""SampleFrames semantics (MMAction2's SampleFrames): worked examples, every branch, views for multi-clip testing."""
import numpy as np
import pytest

from tinlib.data import sample_frames, sample_views


def one_based(inds):
    return (np.asarray(inds) + 1).tolist()


@pytest.mark.parametrize("n, expected", [
    (5, [1, 2, 2, 3, 3, 4, 5, 5]),
    (7, [1, 2, 3, 4, 5, 5, 6, 7]),
    (3, [1, 1, 2, 2, 3, 3, 3, 1]),  # index 3 wraps to frame 1
])
def test_train_short_videos_spread_with_round_half_even(n, expected):
    # deterministic branch: whatever the generator, the same indices
    for seed in range(3):
        assert one_based(sample_frames(n, 8, rng=np.random.default_rng(seed))) == expected


@pytest.mark.parametrize("n, expected", [
    (37, [3, 7, 12, 17, 21, 26, 31, 35]),
    (48, [4, 10, 16, 22, 28, 34, 40, 46]),
    (5, [1, 1, 2, 3, 3, 4, 5, 5]),
    (1, [1] * 8),
])
def test_test_mode_worked_examples(n, expected):
    assert one_based(sample_frames(n, 8, test_mode=True)) == expected


def test_twice_sample_appends_segment_starts():
    inds = one_based(sample_frames(37, 8, test_mode=True, twice_sample=True))
    assert inds == [3, 7, 12, 17, 21, 26, 31, 35] + [1, 5, 10, 14, 19, 24, 28, 33]
    # twice_sample is a test-time option only (as upstream)
    assert len(sample_frames(37, 8, twice_sample=True, rng=np.random.default_rng(0))) == 8


def test_train_one_random_frame_per_segment_covering_each_segment():
    n, avg = 50, 50 // 8
    seen = np.zeros((8, avg), bool)
    rng = np.random.default_rng(0)
    for _ in range(400):
        inds = sample_frames(n, 8, rng=rng)
        assert inds.dtype == np.int64 and inds.shape == (8,)
        seg, off = np.divmod(inds, avg)
        assert (seg == np.arange(8)).all()  # the remainder frames 48, 49 are never drawn
        seen[seg, off] = True
    assert seen.all()


def test_train_is_reproducible_from_the_generator():
    a = sample_frames(300, 8, rng=np.random.default_rng(5))
    b = sample_frames(300, 8, rng=np.random.default_rng(5))
    c = sample_frames(300, 8, rng=np.random.default_rng(6))
    assert (a == b).all() and not (a == c).all()


def test_clip_len_and_interval_branches():
    rng = np.random.default_rng(0)
    # avg > 0: clips of 4 frames, stride 2, start in their segment of (20 - 8 + 1) // 2 = 6 starts
    inds = sample_frames(20, 2, clip_len=4, frame_interval=2, rng=rng).reshape(2, 4)
    assert (np.diff(inds, axis=1) == 2).all() and 0 <= inds[0, 0] < 6 and 6 <= inds[1, 0] < 12
    # avg == 0 but the video is longer than the clip: sorted random starts in [0, n - span]
    for _ in range(20):
        starts = sample_frames(10, 4, clip_len=8, rng=rng).reshape(4, 8)[:, 0]
        assert (np.diff(starts) >= 0).all() and starts.max() <= 2
    # avg == 0, no room: evenly spread (1 start position over 4 clips: 0, 0.25, 0.5, 0.75 -> 0, 0, 0, 1)
    starts = sample_frames(8, 4, clip_len=8, rng=rng).reshape(4, 8)[:, 0]
    assert starts.tolist() == [0, 0, 0, 1]
    # clip longer than the video: zeros, then loop
    assert sample_frames(5, 2, clip_len=8, rng=rng).tolist() == [0, 1, 2, 3, 4, 0, 1, 2] * 2
    # test mode: avg = (20 - 8 + 1) / 2 = 6.5 -> starts int(3.25) = 3 and int(9.75) = 9
    assert sample_frames(20, 2, clip_len=4, frame_interval=2, test_mode=True).tolist() == \
        [3, 5, 7, 9, 9, 11, 13, 15]


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_rejects_videos_without_frames(bad):
    with pytest.raises(ValueError, match="total_frames"):
        sample_frames(bad, 8)


def test_views_single_clip_is_mmaction_test_sampling():
    assert (sample_views(37, 8, test_mode=True)[0] == sample_frames(37, 8, test_mode=True)).all()
    train = sample_views(37, 8, rng=np.random.default_rng(1))
    assert train.shape == (1, 8)


def test_views_several_clips_each_span_the_whole_video():
    views = sample_views(64, 8, num_clips=2, test_mode=True)  # avg = 8: offsets 8i + 2 and 8i + 6
    assert views.tolist() == [[8 * i + 2 for i in range(8)], [8 * i + 6 for i in range(8)]]
    twice = sample_views(64, 8, num_clips=2, test_mode=True, twice_sample=True)
    assert twice.shape == (4, 8)
    assert twice[2:].tolist() == [[8 * i for i in range(8)], [8 * i + 4 for i in range(8)]]
    for v in twice:  # every view in temporal order
        assert (np.diff(v) > 0).all()
