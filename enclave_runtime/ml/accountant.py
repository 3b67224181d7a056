"""Privacy accounting for DP-FedAvg: the Gaussian mechanism, every client in every round (sampling rate 1).

One round of DP-FedAvg releases mean(clipped updates) + N(0, (z C / m)^2 I): a Gaussian mechanism with
L2 sensitivity C / m (add/remove one client's whole update, the client-level unit of McMahan et al. 2018,
"Learning Differentially Private Recurrent Language Models", which implies row-level DP for every row of
that client) and noise multiplier z. Its Renyi DP at order alpha is alpha / (2 z^2) (Mironov 2017, "Renyi
Differential Privacy", Prop. 7); T rounds compose additively (ibid., Prop. 1): T alpha / (2 z^2). Converted to
(epsilon, delta) with the bound of Canonne, Kamath & Steinke 2020 ("The Discrete Gaussian for Differential
Privacy", Prop. 12; also Balle et al. 2020, Thm. 21):

    epsilon = min over alpha > 1 of  rdp(alpha) + log((alpha - 1) / alpha) - (log delta + log alpha) / (alpha - 1)

Without subsampling there is no amplification to account for, so no approximation is involved beyond the
choice of orders (a fine grid; the minimum over the grid is still a valid upper bound). Tests check it
against OpenDP's zCDP -> approx-DP conversion and the exact analytic Gaussian (Balle & Wang 2018).
"""

from __future__ import annotations

import math

ORDERS = tuple(1.0 + k / 100 for k in range(1, 100)) + tuple(2.0 + k / 20 for k in range(0, 1960)) + tuple(float(a) for a in range(100, 4097))


def rdp(noise_multiplier: float, rounds: int, alpha: float) -> float:
    """Renyi DP of `rounds` Gaussian mechanisms with noise multiplier z at order alpha: T alpha / (2 z^2)."""
    return rounds * alpha / (2.0 * noise_multiplier**2)


def epsilon(noise_multiplier: float, rounds: int, delta: float) -> float:
    """(epsilon, delta)-DP of `rounds` full-participation DP-FedAvg rounds with noise multiplier z."""
    if noise_multiplier <= 0:
        return math.inf
    if not 0 < delta < 1 or rounds < 1:
        raise ValueError(f"need 0 < delta < 1 and rounds >= 1, got delta={delta}, rounds={rounds}")
    log_delta = math.log(delta)
    return max(0.0, min(
        rdp(noise_multiplier, rounds, a) + math.log((a - 1) / a) - (log_delta + math.log(a)) / (a - 1) for a in ORDERS
    ))


def noise_multiplier(target_epsilon: float, rounds: int, delta: float, *, tolerance: float = 1e-6) -> float:
    """The smallest noise multiplier (to `tolerance`) whose epsilon is at most `target_epsilon`."""
    if target_epsilon <= 0:
        raise ValueError(f"target epsilon must be above 0, got {target_epsilon}")
    low, high = 1e-3, 1.0
    while epsilon(high, rounds, delta) > target_epsilon:
        low, high = high, high * 2
        if high > 1e6:
            raise ValueError(f"no noise multiplier reaches epsilon {target_epsilon} at delta {delta} in {rounds} rounds")
    while high - low > tolerance * high:
        mid = (low + high) / 2
        if epsilon(mid, rounds, delta) > target_epsilon:
            low = mid
        else:
            high = mid
    return high  # epsilon(high) <= target: always the safe side
