"""How far each IG quadrature is from the exact path integral, xattr vs Captum (docs/peers.md).

    python benchmarks/oracle_ig_error.py        # needs the 'oracle' extra

Model and inputs: the conformance model ``gap_cnn`` (2 images, float64).  Exact IG: xattr's
``quadrature="exact"`` (the path's linear pieces).  Captum is run with torch's default dtype float64
so that its Riemann nodes are not float32-rounded (its weights still are).
"""
import warnings

import numpy as np


def main():
    import torch
    from captum import attr as ca

    import xattr
    from xattr.conformance.models import build_inputs, build_models

    warnings.simplefilter("ignore")
    torch.set_default_dtype(torch.float64)
    spec = build_models()["gap_cnn"]
    net, model = spec.to_torch(), spec.to_xattr()
    x, t = build_inputs(spec)
    ig = xattr.get_method("integrated_gradients")
    exact = ig(model, x, t, quadrature="exact")
    norm = np.linalg.norm(exact)
    print("| quadrature | n | xattr rel. L2 error | Captum rel. L2 error |")
    print("|---|---|---|---|")
    for q in ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre"):
        for n in (8, 16, 50):
            ours = ig(model, x, t, steps=n, quadrature=q)
            theirs = ca.IntegratedGradients(net).attribute(
                torch.from_numpy(x), target=torch.from_numpy(t), n_steps=n, method=q).detach().numpy()
            print(
                f"| {q} | {n} | {np.linalg.norm(ours - exact) / norm:.2e} | "
                f"{np.linalg.norm(theirs - exact) / norm:.2e} |"
            )


if __name__ == "__main__":
    main()
