"""Targets and scores of readouts: one-vs-rest targets, argmax labels, accuracy, NRMSE.

Classification readouts regress one-vs-rest targets (one column per class) and predict the argmax,
as the reservoir paper's ridge classifiers do; regression is scored by the normalised RMSE.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float, Int


def one_vs_rest(
    labels: Int[Array, " n"], n_classes: int, *, negative: float = -1.0, dtype=None
) -> Float[Array, "n n_classes"]:
    """Targets of shape (n, n_classes): 1 in the column of the label, `negative` elsewhere.

    `negative=-1` gives scikit-learn's `RidgeClassifier` coding; `negative=0` gives one-hot vectors
    (the form the cross-entropy loss expects).
    """
    dtype = jnp.result_type(float) if dtype is None else dtype
    hit = jnp.asarray(labels)[:, None] == jnp.arange(n_classes)[None, :]
    return jnp.where(hit, jnp.ones((), dtype), jnp.asarray(negative, dtype))


def predict_labels(scores: Float[Array, "n n_classes"]) -> Int[Array, " n"]:
    """The class with the largest score (the first one on ties)."""
    return jnp.argmax(scores, axis=-1)


def accuracy(labels: Int[Array, " n"], scores: Float[Array, "n n_classes"]) -> Float[Array, ""]:
    """Fraction of rows whose argmax score is the label."""
    labels = jnp.asarray(labels)
    return jnp.mean((predict_labels(scores) == labels).astype(jnp.result_type(float)))


def nrmse(y_true: Float[Array, "n ..."], y_pred: Float[Array, "n ..."]) -> Float[Array, ""]:
    """Normalised root-mean-square error sqrt(sum (y - yhat)^2 / sum (y - mean y)^2).

    The mean is taken per output column (axis 0) and the sums are pooled over all entries, so the
    value is 1 for predicting the column means and 0 for a perfect fit.
    """
    y_true = jnp.asarray(y_true)
    y_pred = jnp.asarray(y_pred)
    err = jnp.sum((y_true - y_pred) ** 2)
    dev = jnp.sum((y_true - jnp.mean(y_true, axis=0, keepdims=True)) ** 2)
    return jnp.sqrt(err / dev)
