"""Which method × option combinations the vectors hold, and with what tolerance.

Options use xattr's keyword names; :data:`DEFINITIONS` says in words what each method computes, so
an adapter for another library can map the options.  An option value that is a list in the
manifest is given to the adapter as a float64 (or int, for ``segments``) ndarray.

A registered method missing here gets one case with its default options (``rng=0`` added if it
takes one), so regenerating after a method is added covers it at once.
"""
from __future__ import annotations

import numpy as np

#: tolerance: ``max |actual - expected| <= atol + rtol * max |expected|`` (float64 round-off is ~1e-15).
RTOL = 1e-10
ATOL = 1e-13


def _grid(h, w, gh, gw):
    """Segment labels of a ``gh x gw`` grid of equal cells over ``(h, w)`` (row-major labels)."""
    rows = (np.arange(h) * gh) // h
    cols = (np.arange(w) * gw) // w
    return (rows[:, None] * gw + cols[None, :]).tolist()


def method_options(method, spec):
    """The option sets for ``method`` on model ``spec`` (list of dicts): those its
    :class:`~xattr.methods.registry.MethodSpec` declares (``cases``: a list, or a callable of ``spec``), else the
    table below.

    Parameters
    ----------
    method : str
    spec : the model's spec

    Returns
    -------
    list of dict
    """
    from ..methods.registry import get_spec

    try:
        declared = get_spec(method).cases
    except ValueError:
        declared = None
    if declared is not None:
        return [dict(c) for c in (declared(spec) if callable(declared) else declared)]
    h, w = spec.input_shape[2:]
    first_relu = [layer["name"] for layer in spec.layers if layer["type"] == "ReLU"][0]  # not the default layer
    seg = _grid(h, w, 2, 2)  # 4 features: exact Shapley enumerates 16 coalitions
    ref = (0.1 * np.ones(spec.input_shape[1:])).tolist()
    table = {
        "gradient": [{}], "gradient_x_input": [{}], "deconvnet": [{}], "guided_backprop": [{}],
        "cam": [{"upsample": False}, {"upsample": True}],
        "grad_cam": [{"relu": True, "upsample": False}, {"relu": False, "upsample": False},
                     {"relu": True, "upsample": True}, {"layer": first_relu, "relu": False, "upsample": False}],
        "guided_grad_cam": [{}],
        # the CAM family (methods/cam_family.py): paper defaults and the options that reproduce the peers
        "grad_cam_plus_plus": [{"upsample": False}, {"score": "raw", "epsilon": 1e-6, "relu": False, "upsample": False},
                               {"normalize_alpha": True, "upsample": False}],
        "score_cam": [{"upsample": False}, {"score": "logit", "layer": first_relu, "relu": False, "upsample": False},
                      {"score": "channel_softmax", "mask_interpolation": "align_corners", "epsilon": 1e-8,
                       "upsample": False},
                      {"score": "channel_softmax", "mask_normalization": "coarse", "epsilon": 1e-8, "upsample": False}],
        "faster_score_cam": [{"k": 1, "upsample": False}],
        "layer_cam": [{"upsample": False}, {"layer": first_relu, "upsample": False}],
        "xgrad_cam": [{"upsample": False}, {"relu": False, "upsample": False}],
        "hires_cam": [{"relu": False, "upsample": False}, {"upsample": True}],
        "eigen_cam": [{"upsample": False}, {"center": True, "layer": first_relu, "upsample": False}],
        "ablation_cam": [{"upsample": False, "relu": False}, {"layer": first_relu, "upsample": False}],
        "deeplift": [{"rule": "rescale"}, {"rule": "rescale", "reference": ref},
                     {"rule": "rescale", "maxpool": "rescale", "reference": ref}, {"rule": "revealcancel"}],
        "deepshap": [{"references": (np.linspace(-0.5, 0.5, 3)[:, None, None, None]
                                     * np.ones((3,) + tuple(spec.input_shape[1:]))).tolist()}],
        "lrp": [{"composite": c} for c in ("epsilon", "epsilon_plus", "epsilon_plus_flat", "epsilon_alpha2_beta1")]
               + [{"composite": "0"}, {"composite": "epsilon", "epsilon": 0.25},
                  {"composite": "epsilon_gamma_box", "low": -3.0, "high": 3.0}],
        "occlusion": [{"window": 4, "stride": 2}, {"window": 4, "stride": 2, "aggregate": "sum"},
                      {"window": 3, "stride": 3, "baseline": 0.5}],
        "shapley": [{"segments": seg}, {"segments": seg, "baseline": 0.5}],
        "kernel_shap": [{"segments": seg, "rng": 0}],  # 4 features: every coalition enumerated, so exact
        "lime": [{"segments": seg, "rng": 0, "n_samples": 50}],
        "integrated_gradients": [{"quadrature": q, "steps": 16}
                                 for q in ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid",
                                           "gausslegendre")]
                                + [{"quadrature": "exact"}],
        "expected_gradients": [{"references": (np.linspace(-0.5, 0.5, 3)[:, None, None, None]
                                               * np.ones((3,) + tuple(spec.input_shape[1:]))).tolist(),
                                "n_samples": 8, "rng": 0}],
        "prediction_difference": [{"window": 3, "padding": 1, "n_samples": 4, "rng": 0},
                                  {"window": 3, "sampling": "marginal", "n_samples": 4, "rng": 0, "stride": 2,
                                   "references": (np.linspace(-0.5, 0.5, 3)[:, None, None, None]
                                                  * np.ones((3,) + tuple(spec.input_shape[1:]))).tolist()}],
        "smoothgrad": [{"n": 8, "sigma": 0.3, "sigma_is": "absolute", "rng": 0}, {"n": 8, "rng": 0}],
        "smoothgrad_squared": [{"n": 8, "sigma": 0.3, "sigma_is": "absolute", "rng": 0}],
        "vargrad": [{"n": 8, "sigma": 0.3, "sigma_is": "absolute", "rng": 0}],
    }
    return table.get(method)


#: methods whose numbers depend on xattr's random stream (numpy PCG64 from the seed): another
#: implementation can match them only by drawing the same noise; the runner reports them apart.
RANDOM_METHODS = ("lime", "smoothgrad", "smoothgrad_squared", "vargrad", "expected_gradients", "prediction_difference")

#: what each method computes, in words, for adapter writers (xattr's docstrings have the details).
DEFINITIONS = {
    "gradient": "dS_t/dx, signed (Simonyan et al. 2013); Captum Saliency(abs=False)",
    "gradient_x_input": "x * dS_t/dx (Shrikumar et al. 2016); Captum InputXGradient",
    "deconvnet": "ReLUs pass max(R, 0) (Zeiler & Fergus 2014); Captum Deconvolution",
    "guided_backprop": "ReLUs pass max(R, 0) * 1[X > 0] (Springenberg et al. 2015); Captum GuidedBackprop",
    "cam": "sum_k W[t, k] A_k at the GAP input, bias excluded (Zhou et al. 2016); (N,1,h,w) or bilinear (N,1,H,W)",
    "grad_cam": "alpha_k = spatial mean of dS_t/dA_k at the output of `layer` (default: last layer with a spatial "
                "output), map sum_k alpha_k A_k, ReLU if relu (Selvaraju et al. 2017); upsample: bilinear, "
                "align_corners=False; Captum LayerGradCam(relu_attributions=relu)",
    "guided_grad_cam": "guided_backprop * bilinear-upsampled ReLU Grad-CAM; "
                       "Captum GuidedGradCam(interpolate_mode='bilinear')",
    "grad_cam_plus_plus": "alpha = g^2/(2 g^2 + sum_ab A_ab g^3) (0 where g = 0; + epsilon), "
                          "w_k = sum_ij alpha ReLU(g) times exp(S_t) if score='exp', alpha / sum_ij alpha if "
                          "normalize_alpha; map ReLU(sum_k w_k A_k) (Chattopadhay et al. 2018); pytorch-grad-cam: "
                          "score='raw', epsilon=1e-6; tf-keras-vis: normalize_alpha=True",
    "score_cam": "masks H_k = minmax(bilinear(A_k)) (epsilon in the denominator; mask_interpolation half_pixel | "
                 "align_corners; mask_normalization 'coarse': minmax before upsampling); w_k = softmax(f(x H_k))_t "
                 "('softmax'), f_t(x H_k) - f_t(baseline) ('logit') or softmax over k of the logits "
                 "('channel_softmax'); map ReLU(sum_k w_k A_k) (Wang et al. 2020)",
    "faster_score_cam": "score_cam on the k channels of largest spatial std (population), ties to the lower index",
    "layer_cam": "ReLU(sum_k ReLU(dS_t/dA_k) A_k) (Jiang et al. 2021); several layers: tanh(2 M/max|M|), max-fused",
    "xgrad_cam": "w_k = sum_ij A_ij dS_t/dA_ij / sum_ij A_ij (0 where the sum is 0), ReLU(sum_k w_k A_k) "
                 "(Fu et al. 2020)",
    "hires_cam": "sum_k dS_t/dA_k * A_k, ReLU if relu (Draelos & Carin 2020)",
    "eigen_cam": "activations (hw x K) projected on their first right singular vector, sign: entries sum > 0; "
                 "center: channel means removed first (Muhammad & Yeasin 2020); target unused",
    "ablation_cam": "w_k = (y_t - y_t with channel k set to 0) / y_t, ReLU(sum_k w_k A_k) (Desai & Ramaswamy 2020)",
    "deeplift": "DeepLIFT multipliers times (x - reference) (Shrikumar et al. 2017); rule rescale|revealcancel; "
                "reference default 0; max-pool 'gradient' (the input pass's argmax) or 'rescale'",
    "deepshap": "mean of DeepLIFT-Rescale over the given references (Lundberg & Lee 2017)",
    "lrp": "layer-wise relevance propagation with a composite (rules per layer type; Montavon et al. 2019); "
           "output relevance = the target score; max-pool winner-take-all",
    "occlusion": "S_t(x) - S_t(x with a window set to baseline), averaged over the windows covering a pixel "
                 "(aggregate='mean', as Captum) or summed; windows clipped at the border; (N,1,H,W)",
    "shapley": "exact Shapley values of the segments (hidden = baseline), every 2^M coalition; (N,1,H,W)",
    "kernel_shap": "KernelSHAP (Lundberg & Lee 2017); with 4 segments every coalition is enumerated: exact Shapley",
    "lime": "LIME (Ribeiro et al. 2016) with xattr's random masks: xattr-specific",
    "smoothgrad": "mean over n noisy copies x + sigma_i z of the signed gradient (Smilkov et al. 2017); sigma_i = "
                  "sigma (sigma_is='absolute') or sigma * (max - min) of image i ('range'); z = numpy "
                  "default_rng(rng).standard_normal((N * n, C, H, W)), image-major (image i: rows i*n .. i*n+n-1)",
    "smoothgrad_squared": "as smoothgrad, mean of the squared gradients (Hooker et al. 2019)",
    "vargrad": "as smoothgrad, population variance (divisor n) of the gradients (Adebayo et al. 2018)",
    "expected_gradients": "expected gradients (Erion et al. 2021) with xattr's random references and alphas: "
                          "xattr-specific",
    "prediction_difference": "weight of evidence in bits, log2 odds p_c(x) - log2 odds E[p_c(x, window resampled)] "
                             "with the Laplace correction (pN+1)/(N+K), N = 100000, averaged over the windows covering "
                             "a pixel (Zintgraf et al. 2017); conditional Gaussian or marginal window draws from rng",
    "integrated_gradients": "(x - baseline) * integral of dS_t/dx along the straight path, by the named quadrature "
                            "(weights sum to 1) or exactly ('exact', piecewise-linear nets)",
}
