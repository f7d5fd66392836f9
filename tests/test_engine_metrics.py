"""tinlib.engine.metrics against hand-computed cases and a loop-by-loop reading of MMAction2's definitions
(stated in tinlib.engine.metrics)."""
import numpy as np
import pytest

from tinlib.engine.metrics import (
    confusion_matrix,
    evaluate_scores,
    mean_class_accuracy,
    per_class_accuracy,
    top_k_accuracy,
)


def test_top_k_hand_computed():
    scores = [[0.1, 0.5, 0.4],
              [0.3, 0.2, 0.5],
              [0.7, 0.2, 0.1]]
    labels = [1, 0, 2]
    # top1: hit, miss (2), miss (0); top2: hit, hit ({2, 0}), miss ({0, 1})
    assert top_k_accuracy(scores, labels, (1, 2)) == pytest.approx([1 / 3, 2 / 3])
    assert top_k_accuracy(scores, labels, 3) == [1.0]


def test_top_k_ties_take_the_higher_class_index_first():
    # classes 0 and 1 tie; MMAction2's argsort order puts class 1 first
    scores = [[0.4, 0.4, 0.2]]
    assert top_k_accuracy(scores, [1], (1,)) == [1.0]
    assert top_k_accuracy(scores, [0], (1,)) == [0.0]
    assert top_k_accuracy(scores, [0], (2,)) == [1.0]
    # three-way tie with top-2: classes 3 and 2 are taken, not 1
    assert top_k_accuracy([[0.0, 1.0, 1.0, 1.0]], [1], (2,)) == [0.0]


def test_mean_class_accuracy_argmax_ties_take_the_lowest_index():
    scores = [[0.5, 0.5]]
    # top-1 picks class 1 (tie order above), mean class accuracy picks class 0
    assert top_k_accuracy(scores, [0], (1,)) == [0.0]
    assert mean_class_accuracy(scores, [0]) == 1.0


def test_mean_class_accuracy_counts_predicted_but_absent_classes_as_zero():
    # labels 0,0,1; predictions 0,2,1; class 2 never occurs as a label; class 3 occurs nowhere
    scores = np.full((3, 4), 0.0)
    scores[0, 0] = scores[1, 2] = scores[2, 1] = 1.0
    labels = [0, 0, 1]
    # recalls over the union {0, 1, 2}: 1/2, 1/1, 0 -> mean 0.5 (class 3 ignored)
    assert mean_class_accuracy(scores, labels) == pytest.approx(0.5)
    # plain top-1 is 2/3
    assert top_k_accuracy(scores, labels, (1,)) == [pytest.approx(2 / 3)]


def _reference(scores, labels, ks):
    """MMAction2's top-k and mean class accuracy spelled out with loops."""
    m, k = scores.shape
    tops = []
    for kk in ks:
        hits = 0
        for row, label in zip(scores, labels):
            # rank classes by score, ties broken towards the higher index
            ranked = sorted(range(k), key=lambda c: (row[c], c), reverse=True)
            hits += label in ranked[:kk]
        tops.append(hits / m)
    preds = []
    for row in scores:
        best = 0
        for c in range(k):
            if row[c] > row[best]:
                best = c
        preds.append(best)
    classes = sorted(set(labels.tolist()) | set(preds))
    recalls = []
    for c in classes:
        total = sum(1 for lab in labels if lab == c)
        hit = sum(1 for lab, p in zip(labels, preds) if lab == c and p == c)
        recalls.append(hit / total if total else 0.0)
    return tops, sum(recalls) / len(recalls)


@pytest.mark.parametrize("seed", range(5))
def test_matches_loop_reference_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, size=(40, 7)).astype(np.float32)  # small integers: lots of ties
    labels = rng.integers(0, 7, size=40)
    tops, mean_class = _reference(scores, labels, (1, 2, 5))
    assert top_k_accuracy(scores, labels, (1, 2, 5)) == pytest.approx(tops)
    assert mean_class_accuracy(scores, labels) == pytest.approx(mean_class)


def test_confusion_matrix_and_per_class_accuracy():
    scores = np.eye(3)[[0, 1, 1, 2]]  # predictions 0, 1, 1, 2
    labels = [0, 1, 2, 2]
    matrix = confusion_matrix([0, 1, 1, 2], labels, 4)
    assert matrix.tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    acc = per_class_accuracy(scores, labels, 4)
    assert acc[:3].tolist() == [1.0, 1.0, 0.5] and np.isnan(acc[3])


def test_evaluate_scores_keys_and_bad_input():
    out = evaluate_scores(np.eye(3), [0, 1, 2])
    assert out == {"top1_acc": 1.0, "top5_acc": 1.0, "mean_class_accuracy": 1.0}
    with pytest.raises(ValueError, match="labels"):
        top_k_accuracy(np.eye(3), [0, 1])
    with pytest.raises(ValueError, match="must lie in"):
        top_k_accuracy(np.eye(3), [0, 1, 3])
