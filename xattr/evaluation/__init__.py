"""xattr.evaluation: measuring explanations when no ground truth exists (and when some does).

* :mod:`~xattr.evaluation.similarity`: Spearman/Pearson correlation, SSIM, HOG correlation, top-k intersection.
* :mod:`~xattr.evaluation.sanity`: model-parameter (cascading, independent) and data randomisation tests
  (Adebayo et al. 2018), smooth and efficient MPRT (Hedström et al. 2023), the random logit test
  (Sixt et al. 2020) and the model-independent edge-detector control.
* :mod:`~xattr.evaluation.faithfulness`: deletion/insertion curves (Petsiuk et al. 2018), pixel flipping
  (Bach et al. 2015), region perturbation and AOPC (Samek et al. 2017), IROF (Rieger & Hansen 2020),
  sufficiency (Dasgupta et al. 2022), infidelity and max-sensitivity (Yeh et al. 2019).
* :mod:`~xattr.evaluation.correlation`: faithfulness correlation (Bhatt et al. 2020), faithfulness
  estimate (Alvarez-Melis & Jaakkola 2018), sensitivity-n (Ancona et al. 2018), monotonicity (Arya et al.
  2019) and monotonicity correlation (Nguyen & Martínez 2020).
* :mod:`~xattr.evaluation.road`: ROAD, remove-and-debias with noisy linear imputation (Rong et al. 2022).
* :mod:`~xattr.evaluation.pic`: PAIR's performance information curves, SIC and AIC (Kapishnikov et al. 2019).
* :mod:`~xattr.evaluation.stability`: local Lipschitz estimate (Alvarez-Melis & Jaakkola 2018),
  average sensitivity (Yeh et al. 2019).
* :mod:`~xattr.evaluation.sparsity`: sparseness (Gini), complexity (entropy), effective complexity.
* :mod:`~xattr.evaluation.localisation`: pointing game, relevance mass and rank accuracy, top-k
  intersection, attribution localisation, ROC AUC, Focus, weakly supervised localisation
  (Simonyan et al. 2013), multi-instance coverage.
* :mod:`~xattr.evaluation.robustness`: class sensitivity (mode collapse), fragility (Ghorbani et al. 2019:
  random search and the paper's iterative attack), input-shift sensitivity (Kindermans et al. 2019).
* :mod:`~xattr.evaluation.weak_localisation`: Simonyan et al.'s GraphCut localisation and the top-5 protocol
  (optional extra ``localisation``: PyMaxflow and scikit-learn, imported when called).
* :mod:`~xattr.evaluation.class_maps`: class-averaged maps and their spread, streamed from a batch store.
"""
from .class_maps import ClassMaps, class_maps
from .correlation import (
    faithfulness_correlation,
    faithfulness_estimate,
    monotonicity,
    monotonicity_correlation,
    sensitivity_n,
)
from .faithfulness import (
    Curve,
    Irof,
    Sufficiency,
    blurred,
    deletion_curve,
    infidelity,
    insertion_curve,
    irof,
    max_sensitivity,
    pixel_flipping,
    region_perturbation,
    sufficiency,
)
from .localisation import (
    Coverage,
    Localisation,
    attribution_localisation,
    bounding_box,
    box_iou,
    focus,
    largest_component,
    localisation_auc,
    mosaic,
    multi_instance_coverage,
    pointing_game,
    relevance_mass,
    relevance_rank_accuracy,
    threshold_map,
    topk_mask_intersection,
    weakly_supervised_localisation,
)
from .pic import Pic, image_entropy, interpolated_image, pic_curve, random_pixel_mask
from .road import noisy_linear_imputation, road_curve
from .robustness import (
    Fragility,
    FragilityAttack,
    class_sensitivity,
    fragility,
    fragility_attack,
    input_shift_sensitivity,
)
from .sanity import (
    EfficientMPRT,
    RandomizationResult,
    RandomLogit,
    cascading_randomization,
    data_randomization,
    edge_detector,
    efficient_mprt,
    independent_randomization,
    permuted_labels,
    random_logit,
    smooth_mprt,
    smoothed,
)
from .similarity import compare_maps, hog_pearson, pearson, spearman, ssim, topk_intersection
from .sparsity import complexity, discrete_entropy, effective_complexity, sparseness
from .stability import avg_sensitivity, local_lipschitz_estimate
from .weak_localisation import GraphCutLocalisation, TopKLocalisation, graphcut_localisation, top5_localisation

__all__ = [
    "spearman", "pearson", "ssim", "hog_pearson", "topk_intersection", "compare_maps",
    "edge_detector", "cascading_randomization", "independent_randomization", "data_randomization",
    "permuted_labels", "RandomizationResult", "smooth_mprt", "smoothed", "efficient_mprt", "EfficientMPRT",
    "random_logit", "RandomLogit",
    "deletion_curve", "insertion_curve", "Curve", "blurred", "pixel_flipping", "region_perturbation", "irof",
    "Irof", "sufficiency", "Sufficiency", "infidelity", "max_sensitivity",
    "faithfulness_correlation", "faithfulness_estimate", "sensitivity_n", "monotonicity", "monotonicity_correlation",
    "road_curve", "noisy_linear_imputation", "pic_curve", "Pic", "random_pixel_mask", "interpolated_image",
    "image_entropy",
    "local_lipschitz_estimate", "avg_sensitivity",
    "sparseness", "complexity", "effective_complexity", "discrete_entropy",
    "pointing_game", "relevance_mass", "relevance_rank_accuracy", "topk_mask_intersection",
    "attribution_localisation", "localisation_auc", "focus", "mosaic", "threshold_map", "largest_component",
    "bounding_box", "box_iou", "weakly_supervised_localisation", "Localisation", "multi_instance_coverage", "Coverage",
    "class_sensitivity", "fragility", "Fragility", "input_shift_sensitivity",
    "fragility_attack", "FragilityAttack", "class_maps", "ClassMaps",
    "graphcut_localisation", "GraphCutLocalisation", "top5_localisation", "TopKLocalisation",
]
