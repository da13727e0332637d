"""How far each variant's fit lies from the reference variant's, on the shared subset."""

from __future__ import annotations

import numpy as np
import pandas as pd


def agreement_table(fits: dict[str, tuple], reference: str) -> pd.DataFrame:
    """Max |Δμ| and |Δπ| of each variant's fit against the reference variant's.

    ``fits`` maps variant → (π, μ, metadata) of fits made from the same start on the same
    data for the same number of iterations.
    """
    pi_ref, mu_ref, meta_ref = fits[reference]
    rows = []
    for variant, (pi, mu, meta) in fits.items():
        rows.append(
            {
                "variant": variant,
                "reference": reference,
                "max_abs_diff_mu": float(np.abs(mu - mu_ref).max()),
                "max_abs_diff_pi": float(np.abs(pi - pi_ref).max()),
                "lower_bound": meta["fit"]["lower_bound"],
                "diff_lower_bound": meta["fit"]["lower_bound"] - meta_ref["fit"]["lower_bound"],
                "n_iter": meta["fit"]["n_iter"],
                "K": meta["config"]["K"],
                "n_train": meta["config"]["n_train"],
            }
        )
    return pd.DataFrame(rows)
