"""Ready-made adapters: run a peer library on the conformance vectors.

``python -m xattr.conformance check xattr.conformance.adapters:captum_adapter -v`` runs Captum (needs
the ``captum`` extra) with, for each case, the Captum call whose definition matches xattr's (see
docs/peers.md).  Cases Captum has no counterpart for (CAM, RevealCancel, the z-rules of LRP, KernelSHAP's
exact enumeration, exact IG, xattr-specific randomness) are skipped with the reason.  What remains
fails only where Captum computes something else *by design*, e.g. its occlusion and Shapley values are
returned in float32 (pass ``--rtol 1e-5`` to see them agree to float32 rounding) and its trapezoid
rule's weights sum to (n-1)/n.

The adapter only uses the public conformance API (``ModelSpec.to_torch``) and Captum.
"""
from __future__ import annotations

import numpy as np


def _wrap_flatten(torch, net):
    """Captum's LRP has no rule for ``nn.Flatten``: flatten inside ``forward`` instead (Captum's examples)."""
    nn = torch.nn
    mods = list(net.named_children())
    k = next((i for i, (_, m) in enumerate(mods) if isinstance(m, nn.Flatten)), None)
    if k is None:
        return net

    class FlattenInForward(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*[m for _, m in mods[:k]])
            self.head = nn.Sequential(*[m for _, m in mods[k + 1 :]])

        def forward(self, x):
            return self.head(self.features(x).flatten(1))

    return FlattenInForward()


def _fold_bn(torch, net):
    """Conv2d -> BatchNorm2d pairs folded into one Conv2d (xattr's LRP canonicalisation)."""
    nn = torch.nn
    mods, items, k = [], list(net.named_children()), 0
    while k < len(items):
        name, m = items[k]
        if isinstance(m, nn.Conv2d) and k + 1 < len(items) and isinstance(items[k + 1][1], nn.BatchNorm2d):
            bn = items[k + 1][1]
            a = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation).double()
            bias = m.bias if m.bias is not None else torch.zeros(m.out_channels, dtype=torch.float64)
            with torch.no_grad():
                conv.weight.copy_(m.weight * a[:, None, None, None])
                conv.bias.copy_(a * (bias - bn.running_mean) + bn.bias)
            mods.append((name, conv))
            k += 2
        else:
            mods.append((name, m))
            k += 1
    from collections import OrderedDict

    return nn.Sequential(OrderedDict(mods)).eval()


def _last_spatial(model):
    first_flat = next(i for i, layer in enumerate(model.layers) if layer["type"] in ("Flatten", "GlobalAvgPool2d"))
    return model.layers[first_flat - 1]["name"]


def captum_adapter(method, model, x, target, options):
    """Captum 0.9 on a conformance case (see the module docstring).

    Parameters
    ----------
    method : str
    model : the case's model
        Its ``to_torch()`` gives the PyTorch module.
    x : ndarray ``(N, C, H, W)``
    target : int array ``(N,)``
    options : dict

    Returns
    -------
    ndarray, ``x.shape``
        ``NotImplementedError`` for a case Captum cannot compute.
    """
    import torch
    from captum import attr as ca
    from captum.attr._utils.lrp_rules import EpsilonRule

    net = model.to_torch()
    xt = torch.from_numpy(x).requires_grad_(True)
    tt = torch.from_numpy(target)
    opts = dict(options)
    skip = NotImplementedError

    def done(out):
        return out.detach().numpy()

    if method in ("gradient", "gradient_x_input", "guided_backprop", "deconvnet") and not opts:
        if method == "gradient":
            return done(ca.Saliency(net).attribute(xt, target=tt, abs=False))
        cls = {"gradient_x_input": ca.InputXGradient, "guided_backprop": ca.GuidedBackprop,
               "deconvnet": ca.Deconvolution}[method]
        return done(cls(net).attribute(xt, target=tt))
    if method == "grad_cam":
        layer = opts.get("layer") or _last_spatial(model)
        out = ca.LayerGradCam(net, getattr(net, layer)).attribute(
            xt, target=tt, relu_attributions=opts.get("relu", True)
        )
        if opts.get("upsample", True):
            out = ca.LayerAttribution.interpolate(out, tuple(x.shape[2:]), interpolate_mode="bilinear")
        return done(out)
    if method == "guided_grad_cam" and not opts.get("layer"):
        layer = _last_spatial(model)
        return done(ca.GuidedGradCam(net, getattr(net, layer)).attribute(xt, target=tt, interpolate_mode="bilinear"))
    if method == "deeplift":
        if opts.get("rule", "rescale") != "rescale":
            raise skip("Captum has no RevealCancel rule")
        if opts.get("maxpool", "gradient") != "gradient":
            raise skip("Captum's max-pool multipliers are xattr's maxpool='gradient'; it has no 'rescale' mode")
        ref = opts.get("reference")
        kw = (
            {}
            if ref is None or np.isscalar(ref) and ref == 0
            else {"baselines": torch.as_tensor(np.broadcast_to(ref, x.shape).copy())}
        )
        return done(ca.DeepLift(net).attribute(xt, target=tt, **kw))
    if method == "deepshap":
        return done(ca.DeepLiftShap(net).attribute(xt, target=tt, baselines=torch.as_tensor(opts["references"])))
    if method == "lrp":
        if opts.get("composite") != "epsilon":
            raise skip("only LRP-ε is mapped to Captum (its other rules differ in definition)")
        wrapped = _wrap_flatten(torch, _fold_bn(torch, net))
        eps = opts.get("epsilon", 1e-6)
        for m in wrapped.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.rule = EpsilonRule(epsilon=eps)
            elif isinstance(m, (torch.nn.MaxPool2d, torch.nn.AvgPool2d, torch.nn.AdaptiveAvgPool2d)):
                m.rule = EpsilonRule(epsilon=1e-300)  # xattr's pools are not stabilised: ε only guards 0/0
        # xattr's default output relevance is the target score, as Captum's
        return done(ca.LRP(wrapped).attribute(xt, target=tt))
    if method == "occlusion":
        if opts.get("aggregate", "mean") != "mean":
            raise skip("Captum averages overlapping windows; it has no 'sum'")
        C = x.shape[1]
        k, s = opts.get("window", 8), opts.get("stride", 4)
        out = ca.Occlusion(net).attribute(xt, sliding_window_shapes=(C, k, k), strides=(C, s, s),
                                          baselines=float(opts.get("baseline", 0.0)), target=tt)
        return done(out)[:, :1]
    if method == "shapley":
        seg = np.asarray(opts["segments"])
        mask = torch.from_numpy(np.broadcast_to(seg, (1,) + x.shape[1:]).copy())
        out = ca.ShapleyValues(net).attribute(xt, feature_mask=mask, baselines=float(opts.get("baseline", 0.0)),
                                              target=tt, perturbations_per_eval=16)
        return done(out)[:, :1]
    if method == "integrated_gradients":
        q = opts.get("quadrature", "gausslegendre")
        if q == "exact":
            raise skip("Captum has no exact integrated gradients")
        return done(ca.IntegratedGradients(net).attribute(xt, target=tt, n_steps=opts.get("steps", 50), method=q))
    if method in ("smoothgrad", "smoothgrad_squared", "vargrad"):
        return done(_noise_tunnel(torch, ca, net, xt, tt, x, method, opts))
    raise skip(f"no Captum counterpart mapped for {method} {opts}")


def _noise_tunnel(torch, ca, net, xt, tt, x, method, opts):
    """Captum's NoiseTunnel over Saliency with xattr's noise injected (the vectors' noise is xattr's:
    ``sigma_i * z``, ``z = default_rng(rng).standard_normal((N * n,) + x.shape[1:])``, image-major, which is
    also the order of Captum's ``repeat_interleave``).  Captum's own noise would be float32 draws."""
    n, sigma, seed = int(opts.get("n", 50)), float(opts.get("sigma", 0.15)), opts.get("rng", 0)
    if opts.get("sigma_is", "range") == "absolute":
        scale = np.full(len(x), sigma)
    else:
        flat = x.reshape(len(x), -1)
        scale = sigma * (flat.max(axis=1) - flat.min(axis=1))
    z = np.random.default_rng(seed).standard_normal((len(x) * n,) + x.shape[1:])
    noise = torch.from_numpy(np.repeat(scale, n).reshape((-1,) + (1,) * (x.ndim - 1)) * z)
    real = torch.normal
    torch.normal = lambda mean, std, *a, **k: noise  # noqa: E731 - one call, restored below
    try:
        nt_type = {"smoothgrad": "smoothgrad", "smoothgrad_squared": "smoothgrad_sq", "vargrad": "vargrad"}[method]
        # stdevs only shapes Captum's (replaced) draw; the injected noise carries the per-image scale
        return ca.NoiseTunnel(ca.Saliency(net)).attribute(xt, nt_type=nt_type, nt_samples=n, stdevs=1.0, target=tt,
                                                          abs=False)
    finally:
        torch.normal = real
