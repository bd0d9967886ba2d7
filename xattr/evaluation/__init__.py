"""xattr.evaluation: measuring explanations when no ground truth exists (and when some does).

* :mod:`~xattr.evaluation.similarity`: Spearman rank correlation (with/without abs), SSIM, top-k intersection.
* :mod:`~xattr.evaluation.sanity`: model-parameter (cascading, independent) and data randomisation tests
  (Adebayo et al. 2018) and the model-independent edge-detector control.
* :mod:`~xattr.evaluation.faithfulness`: deletion/insertion curves with AUC (Petsiuk et al. 2018),
  infidelity and max-sensitivity (Yeh et al. 2019).
* :mod:`~xattr.evaluation.localisation`: pointing game, relevance mass, weakly supervised localisation
  (Simonyan et al. 2013), multi-instance coverage.
* :mod:`~xattr.evaluation.robustness`: class sensitivity (mode collapse), fragility (Ghorbani et al. 2019:
  random search and the paper's iterative attack), input-shift sensitivity (Kindermans et al. 2019).
* :mod:`~xattr.evaluation.weak_localisation`: Simonyan et al.'s GraphCut localisation and the top-5 protocol
  (optional extra ``localisation``: PyMaxflow and scikit-learn, imported when called).
* :mod:`~xattr.evaluation.class_maps`: class-averaged maps and their spread, streamed from a batch store.
"""
from .class_maps import ClassMaps, class_maps
from .faithfulness import Curve, blurred, deletion_curve, infidelity, insertion_curve, max_sensitivity
from .localisation import (
    Coverage, Localisation, bounding_box, box_iou, largest_component, multi_instance_coverage, pointing_game,
    relevance_mass, threshold_map, weakly_supervised_localisation,
)
from .robustness import (
    Fragility, FragilityAttack, class_sensitivity, fragility, fragility_attack, input_shift_sensitivity,
)
from .weak_localisation import GraphCutLocalisation, TopKLocalisation, graphcut_localisation, top5_localisation
from .sanity import (
    RandomizationResult, cascading_randomization, data_randomization, edge_detector, independent_randomization,
    permuted_labels,
)
from .similarity import compare_maps, spearman, ssim, topk_intersection

__all__ = [
    "spearman", "ssim", "topk_intersection", "compare_maps",
    "edge_detector", "cascading_randomization", "independent_randomization", "data_randomization",
    "permuted_labels", "RandomizationResult",
    "deletion_curve", "insertion_curve", "Curve", "blurred", "infidelity", "max_sensitivity",
    "pointing_game", "relevance_mass", "threshold_map", "largest_component", "bounding_box", "box_iou",
    "weakly_supervised_localisation", "Localisation", "multi_instance_coverage", "Coverage",
    "class_sensitivity", "fragility", "Fragility", "input_shift_sensitivity", "fragility_attack", "FragilityAttack",
    "class_maps", "ClassMaps",
    "graphcut_localisation", "GraphCutLocalisation", "top5_localisation", "TopKLocalisation",
]
