"""The measurements of notebook 11 against hand-made cases, and every claim shown to fail."""
import numpy as np
import pytest

from xattr.evaluation import lessons_localisation as LL
from xattr.evaluation.lessons import LessonClaimFailed
from xattr.evaluation.localisation import box_iou


def test_centre_boxes_are_the_centre_half():
    boxes = LL.centre_boxes(2, (32, 16))
    np.testing.assert_array_equal(boxes, [[8, 4, 24, 12]] * 2)
    assert box_iou(boxes, np.array([[8.0, 4, 24, 12]] * 2)).tolist() == [1.0, 1.0]


def test_table_rows_are_top1_localisation_and_the_centre_box_is_scored_like_them():
    pytest.importorskip("maxflow")
    from xattr.data import make_shapes
    from xattr.evaluation.weak_localisation import top5_localisation
    from xattr.models import load

    model, data = load("shapes"), make_shapes(3, rng=1)
    table = LL.localisation_table(model, data.images, data.labels, data.masks, {"gradient": None}, rng=0)
    r = top5_localisation(model, data.images, data.labels, data.masks, k=1, rng=0)
    assert table["gradient"] == {"error": r.error, "iou": float(r.iou[:, 0].mean())}
    truth = []
    for m in data.masks:  # the objects' boxes, by hand: (top, left, bottom, right), bottom/right exclusive
        ys, xs = np.nonzero(m)
        truth.append([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1])
    iou = box_iou(LL.centre_boxes(3, (32, 32)), np.array(truth, float))
    assert table["centre box"] == {"error": float(np.mean(iou < 0.5)), "iou": pytest.approx(float(iou.mean()))}


def test_localisation_claim_fails_when_it_does_not_hold():
    good = {"gradient": {"error": 0.6, "iou": 0.4}, "Grad-CAM": {"error": 0.1, "iou": 0.7},
            "centre box": {"error": 0.9, "iou": 0.27}}
    LL.check_localisation(good)
    with pytest.raises(LessonClaimFailed, match="Grad-CAM's boxes have mean IoU 0.300"):
        LL.check_localisation({**good, "Grad-CAM": {"error": 0.1, "iou": 0.3}})
    with pytest.raises(LessonClaimFailed, match="localisation error 0.700 is not below gradient's 0.600"):
        LL.check_localisation({**good, "Grad-CAM": {"error": 0.7, "iou": 0.7}})


class _Fixed:
    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=float)

    def forward(self, x):
        return np.tile(self.scores, (len(x), 1))


def test_class_model_claim_fails_when_an_image_is_assigned_another_class():
    assert LL.check_class_models(_Fixed([0, 1.0]), np.zeros((1, 1, 2, 2)), [1]).tolist() == [1]
    with pytest.raises(LessonClaimFailed, match=r"assigned \[1, 1\], not \[0, 1\]"):
        LL.check_class_models(_Fixed([0, 1.0]), np.zeros((2, 1, 2, 2)), [0, 1])


def test_softmax_claim_fails_when_the_class_score_rose_or_the_class_lost():
    won = {"start": np.array([15.1, 50.6]), "softmax": np.array([3.3, -1.0]), "log_p": -0.014}
    LL.check_softmax_lowers_the_others(won, 0)
    with pytest.raises(LessonClaimFailed, match="did not win by lowering the others"):
        LL.check_softmax_lowers_the_others({**won, "softmax": np.array([20.0, -1.0])}, 0)
    with pytest.raises(LessonClaimFailed, match="log P -2.000"):
        LL.check_softmax_lowers_the_others({**won, "log_p": -2.0}, 0)
