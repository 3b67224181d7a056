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
class Moments:
    """Count, per-feature sum and sum of squares: additive, so they can be summed securely across parties."""

    count: int
    sums: Array
    squares: Array

    @classmethod
    def of(cls, x: Array) -> "Moments":
        return cls(int(x.shape[0]), x.sum(axis=0), (x * x).sum(axis=0))

    def __add__(self, other: "Moments") -> "Moments":
        return Moments(self.count + other.count, self.sums + other.sums, self.squares + other.squares)


@dataclass(frozen=True)
class Standardizer:
    """Per-feature centring and scaling shared by every party, so all sites train in one feature space.

    Fitted from pooled `Moments` (in a deployment: an MPC sum of each site's moments, see
    `enclave_runtime.ml.mpc`), never from one site's data, whose case mix differs (non-IID).
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
    def identity(cls, features: int) -> "Standardizer":
        """No standardization (center 0, scale 1): what a released model uses, since a pooled center/scale
        is computed from the parties' rows and would be released uncharged with the model."""
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
