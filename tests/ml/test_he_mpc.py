"""HE inference (TenSEAL CKKS) matches plaintext scores and the enclave never holds the secret key; the
MPC cohort statistic (MPyC, one process per party) equals the plaintext computation exactly."""

from __future__ import annotations

import numpy as np
import pytest

from enclave_runtime.ml import data, fl, he, mpc
from enclave_runtime.ml.config import FederatedJob
from tests.ml.conftest import PARTIES


@pytest.fixture(scope="module")
def model(dataset: data.Dataset, standardize: data.Standardizer) -> list[np.ndarray]:
    return fl.train_centralized(dataset.parties.values(), standardize, FederatedJob(rounds=3))


def test_encrypted_scores_match_plaintext(dataset: data.Dataset, standardize: data.Standardizer, model: list[np.ndarray]) -> None:
    x = standardize(dataset.test.x)  # the recipient's rows (143 of them, one batch)
    client = he.HEClient()
    batch = client.encrypt(x)
    scorer = he.HEScorer(model[0], float(model[1][0]))
    encrypted_scores = scorer.score(batch)
    got = client.decrypt(encrypted_scores, batch.rows)
    want = fl.scores(model, x)
    assert got.shape == want.shape == (143,)
    assert np.max(np.abs(got - want)) < 1e-3
    assert np.array_equal(got > 0, want > 0)  # the same predicted classes
    assert np.abs(want).max() > 1  # non-trivial scores, so the tolerance means something


def test_the_enclave_never_holds_the_secret_key(dataset: data.Dataset, model: list[np.ndarray]) -> None:
    import tenseal as ts

    client = he.HEClient()
    batch = client.encrypt(dataset.test.x[:4])
    server_side = ts.context_from(batch.context)
    assert not server_side.is_private()
    with pytest.raises(ValueError, match="secret_key"):
        ts.ckks_vector_from(server_side, batch.columns[0]).decrypt()
    scores = he.HEScorer(model[0], 0.0).score(batch)
    with pytest.raises(ValueError, match="secret_key"):
        ts.ckks_vector_from(server_side, scores).decrypt()
    # A recipient that sends its secret key by mistake is refused rather than silently trusted with it.
    leaky = he.EncryptedBatch(bytes(client._context.serialize(save_secret_key=True)), batch.columns, batch.rows)
    with pytest.raises(he.HEError, match="secret key"):
        he.HEScorer(model[0], 0.0).score(leaky)
    with pytest.raises(he.HEError, match="3 encrypted features, the model takes 30"):
        he.HEScorer(model[0], 0.0).score(he.EncryptedBatch(batch.context, batch.columns[:3], batch.rows))


def test_mpc_cohort_statistic_equals_plaintext(dataset: data.Dataset) -> None:
    radius, scale = dataset.feature_names.index("mean radius"), 10_000
    inputs = {p: mpc.cohort_vector(dataset.parties[p].x, dataset.parties[p].y, radius, scale) for p in PARTIES}
    totals = mpc.secure_sum(inputs)
    joint_x = np.vstack([dataset.parties[p].x for p in PARTIES])
    joint_y = np.concatenate([dataset.parties[p].y for p in PARTIES])
    assert totals == mpc.cohort_vector(joint_x, joint_y, radius, scale)
    stats = mpc.cohort_statistics(totals, scale)
    assert stats["rows"] == 426 and stats["malignant"] == int((joint_y == 0).sum())
    assert stats["mean"] == pytest.approx(joint_x[:, radius].mean(), abs=1e-4)
    assert all(totals != vector for vector in inputs.values())


def test_mpc_refuses_what_would_not_be_private_or_well_formed() -> None:
    with pytest.raises(mpc.MPCError, match="2 parties: MPC needs at least 3"):
        mpc.secure_sum({"a": [1], "b": [2]})
    with pytest.raises(mpc.MPCError, match="same non-zero length"):
        mpc.secure_sum({"a": [1], "b": [2, 3], "c": [4]})
    with pytest.raises(mpc.MPCError, match="party 'b': value 0.5 is not an integer"):
        mpc.secure_sum({"a": [1], "b": [0.5], "c": [4]})  # type: ignore[list-item]
