"""The two-moons data of the case study, shared by examples/moons.py (torch) and
examples/moons_keras.py (Keras), written with NumPy only."""

import numpy as np


def make_moons(n_samples: int = 100, noise: float = 0.2, seed: int = 1):
    """Two interleaving half circles with gaussian noise (the construction of scikit-learn's
    make_moons: outer arc over [0, pi], inner arc shifted by (1, -0.5), samples shuffled, then
    noise added; with the same seed it gives scikit-learn's samples, up to float32 rounding).
    Returns X (n, 2) float32 and labels y (n,) float32 in {0, 1}."""
    rng = np.random.RandomState(seed)
    n_outer = n_samples // 2
    n_inner = n_samples - n_outer
    t_outer = np.linspace(0, np.pi, n_outer)
    t_inner = np.linspace(0, np.pi, n_inner)
    outer = np.stack([np.cos(t_outer), np.sin(t_outer)], axis=1)
    inner = np.stack([1 - np.cos(t_inner), 1 - np.sin(t_inner) - 0.5], axis=1)
    X = np.concatenate([outer, inner])
    y = np.concatenate([np.zeros(n_outer), np.ones(n_inner)])
    order = rng.permutation(n_samples)
    X, y = X[order], y[order]
    X = X + rng.normal(scale=noise, size=X.shape)
    return X.astype(np.float32), y.astype(np.float32)


def load_split(n_train: int = 30):
    """The study's data: 100 samples, noise 0.2, seed 1; the first n_train for training, the rest
    for testing. Returns X_train, y_train, X_test, y_test as float32 NumPy arrays."""
    X, y = make_moons(100, noise=0.2, seed=1)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]
