"""Real clinical data for the workload, offline: scikit-learn's bundled Breast Cancer Wisconsin (Diagnostic).

569 fine-needle-aspirate samples, 30 nuclear features, label 1 = benign, 0 = malignant; it ships inside
the pinned scikit-learn wheel, so nothing is downloaded at run or test time.

Parties get a *non-IID* split, as sites do in practice: a stratified 25 % is held out as the common test
set, and the rest is cut by tertiles of one feature (default `mean texture`), so the sites differ in
case mix (89 %, 65 % and 35 % benign for three parties).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

SPLIT_FEATURE = "mean texture"
TEST_FRACTION = 0.25
SEED = 20261130

# The public range of each feature that the DP standardizer clamps to: declared with the job (part of the
# measured code), never computed from the parties' rows. Every feature is a non-negative size, shape or
# texture measure; the upper ends are the dataset's documented maxima (UCI's WDBC description) rounded up
# to a round figure. A value outside is clamped, which only costs accuracy.
_UPPER = {
    "radius": (30, 3, 40), "texture": (40, 5, 50), "perimeter": (200, 25, 300), "area": (3000, 600, 5000),
    "smoothness": (0.2, 0.04, 0.25), "compactness": (0.4, 0.15, 1.2), "concavity": (0.5, 0.4, 1.5),
    "concave points": (0.25, 0.06, 0.3), "symmetry": (0.4, 0.08, 0.7), "fractal dimension": (0.1, 0.03, 0.25),
}
FEATURE_RANGES: dict[str, tuple[float, float]] = {
    name: (0.0, float(upper))
    for group, template in enumerate(("mean {}", "{} error", "worst {}"))
    for feature, uppers in _UPPER.items()
    for name, upper in [(template.format(feature), uppers[group])]
}
# The smallest variance (in units of a feature's range squared) a noisy estimate may give: a noise-dominated
# estimate near 0 would otherwise blow that feature up by orders of magnitude.
VARIANCE_FLOOR = 1e-3

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Partition:
    """One party's rows: features `x` (n, 30), labels `y` (n,) in {0, 1}."""

    x: Array
    y: Array

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class Dataset:
    feature_names: tuple[str, ...]
    parties: dict[str, Partition]
    test: Partition


def load(parties: Sequence[str], *, feature: str = SPLIT_FEATURE, seed: int = SEED) -> Dataset:
    """The dataset split across `parties` (in the given order) by quantiles of `feature`."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    if len(parties) < 1 or len(set(parties)) != len(parties):
        raise ValueError(f"parties must be distinct names, got {list(parties)!r}")
    bunch = load_breast_cancer()
    names = tuple(str(n) for n in bunch.feature_names)
    if feature not in names:
        raise ValueError(f"split feature {feature!r} is not a column of the dataset: use one of {list(names)}")
    x_all = np.asarray(bunch.data, dtype=np.float64)
    y_all = np.asarray(bunch.target, dtype=np.float64)
    x_train, x_test, y_train, y_test = train_test_split(
        x_all, y_all, test_size=TEST_FRACTION, random_state=seed, stratify=y_all
    )
    column = x_train[:, names.index(feature)]
    edges = np.quantile(column, [k / len(parties) for k in range(1, len(parties))])
    group = np.digitize(column, edges)
    split = {party: Partition(x_train[group == k], y_train[group == k]) for k, party in enumerate(parties)}
    return Dataset(names, split, Partition(x_test, y_test))


@dataclass(frozen=True)
class Bounds:
    """Public per-feature ranges: clamping to them bounds what one row adds to a sum (the DP sensitivity)."""

    lower: Array
    upper: Array

    @classmethod
    def of(cls, features: Sequence[str]) -> "Bounds":
        ranges = [FEATURE_RANGES[name] for name in features]
        return cls(np.array([lo for lo, _ in ranges]), np.array([hi for _, hi in ranges]))

    def unit(self, x: Array) -> Array:
        """Each feature clamped to its range and mapped onto [0, 1]."""
        return (np.clip(x, self.lower, self.upper) - self.lower) / (self.upper - self.lower)


@dataclass(frozen=True)
class Moments:
    """Count, per-feature sum and sum of squares: additive, so they can be summed securely across parties
    (the count is a float once DP noise is on it)."""

    count: float
    sums: Array
    squares: Array

    @classmethod
    def of(cls, x: Array) -> "Moments":
        return cls(int(x.shape[0]), x.sum(axis=0), (x * x).sum(axis=0))

    def __add__(self, other: "Moments") -> "Moments":
        return Moments(self.count + other.count, self.sums + other.sums, self.squares + other.squares)

    def vector(self) -> Array:
        """[count, sums..., squares...]: the one vector SecAgg+ sums and the DP noise is added to."""
        return np.concatenate([[float(self.count)], self.sums, self.squares])

    @classmethod
    def from_vector(cls, vector: Array) -> "Moments":
        features = (len(vector) - 1) // 2
        return cls(float(vector[0]), vector[1:1 + features], vector[1 + features:])


@dataclass(frozen=True)
class Standardizer:
    """Per-feature centring and scaling shared by every party, so all sites train in one feature space.

    Fitted from moments summed across the parties, never from one site's data, whose case mix differs
    (non-IID): the released model's from DP moments in the public bounds' unit space (`from_noisy_moments`);
    the plaintext pooled one (`pooled`) is the baseline the tests compare it with, on public data only.
    """

    center: Array
    scale: Array

    @classmethod
    def from_moments(cls, moments: Moments) -> "Standardizer":
        if moments.count < 2:
            raise ValueError(f"need at least 2 rows to standardize, got {moments.count}")
        mean = moments.sums / moments.count
        variance = np.maximum(moments.squares / moments.count - mean * mean, 0.0)
        return cls(mean, np.where(variance > 0, np.sqrt(variance), 1.0))

    @classmethod
    def from_noisy_moments(cls, moments: Moments, bounds: Bounds) -> "Standardizer":
        """From DP moments of the features mapped onto [0, 1] by `bounds`: noise can push the count below 1,
        a mean outside [0, 1] and a variance outside [0, 1/4] (the most a [0, 1] value can have), so each is
        clamped to what is possible (the variance also to `VARIANCE_FLOOR`) before mapping back."""
        count = max(float(moments.count), 1.0)
        mean = np.clip(moments.sums / count, 0.0, 1.0)
        variance = np.clip(moments.squares / count - mean * mean, VARIANCE_FLOOR, 0.25)
        width = bounds.upper - bounds.lower
        return cls(bounds.lower + mean * width, np.sqrt(variance) * width)

    @classmethod
    def identity(cls, features: int) -> "Standardizer":
        """No standardization (center 0, scale 1): a model trained without a DP standardizer takes raw
        features, since a plaintext center/scale would be released uncharged with it."""
        return cls(np.zeros(features), np.ones(features))

    @classmethod
    def pooled(cls, partitions: Mapping[str, Partition]) -> "Standardizer":
        total = Moments(0, np.zeros(0), np.zeros(0))
        for part in partitions.values():
            m = Moments.of(part.x)
            total = m if total.count == 0 else total + m
        return cls.from_moments(total)

    def __call__(self, x: Array) -> Array:
        return (x - self.center) / self.scale
