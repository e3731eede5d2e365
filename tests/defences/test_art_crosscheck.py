"""Cross-check of the model-level detectors against IBM's Adversarial Robustness Toolbox (ART).

Both implementations get the same embeddings and the same class segmentation; we compare the sets
they flag. Where the definitions differ we make the comparison fair first:

* spectral signatures: ART scores |v . r| with v the top right singular vector of the CENTRED class
  matrix but r the UNCENTRED representation; ours is (v . (r - mean))^2, a monotone function of
  |v . (r - mean)|. Fed per-class centred embeddings, the two rank identically; on raw embeddings
  ART's ranking is shifted by v . mean. ART flags the top ``eps_multiplier * expected_pp_poison``
  share per class; ours is a ranking, so we flag our top stays in the same number per class.
* activation clustering: ART (``cluster_analysis="smaller"``, PCA to 10 dimensions, 2-means with
  k-means++ and one initialisation, unseeded -- seeded here through NumPy's global RNG) flags the
  smaller cluster of every class; ours scores silhouette * (1 - cluster share) (+ a tiny margin), so
  within a class the smaller cluster ranks first. We again flag our top stays in ART's number per
  class. On a class with a real poison cluster both find it; on a poison-free class the 2-means
  split of a unimodal cloud is arbitrary and the two only agree as far as their k-means optima do
  (reported, not asserted).
"""

from __future__ import annotations

import numpy as np
import pytest

art_poison = pytest.importorskip("art.defences.detector.poison")

from ehrbackdoor.data.cohort import Cohort  # noqa: E402
from ehrbackdoor.data.schema import physionet2012_schema  # noqa: E402
from ehrbackdoor.defences.activation_clustering import ActivationClusteringDetector  # noqa: E402
from ehrbackdoor.defences.spectral import SpectralSignatureDetector  # noqa: E402
from tests.attacks.conftest import random_cohort  # noqa: E402


class _ArtClassifier:
    """The part of an ART neural-network classifier the two defences call: activations of the
    last layer for the rows named in x (x holds row indices into the embeddings)."""

    def __init__(self, Z: np.ndarray) -> None:
        self.Z = Z
        self.layer_names = ["embedding"]
        self.nb_classes = 2

    def get_activations(self, x, layer=None, batch_size=128, framework=False):
        return self.Z[np.asarray(x, dtype=np.int64).reshape(-1)]


class _ArrayVictim:
    """A fitted 'victim' whose embeddings and predicted classes are given arrays."""

    threshold_ = 0.5

    def __init__(self, Z: np.ndarray, classes: np.ndarray) -> None:
        self.Z, self.classes = Z, classes

    def embed(self, cohort: Cohort) -> np.ndarray:
        return self.Z

    def predict_proba(self, cohort: Cohort) -> np.ndarray:
        return self.classes.astype(np.float64)


def _art_flags(defence_cls, Z: np.ndarray, classes: np.ndarray, **kw) -> np.ndarray:
    x = np.arange(len(Z))[:, None]
    defence = defence_cls(_ArtClassifier(Z), x, classes, **kw.pop("init", {}))
    state = np.random.get_state()  # noqa: NPY002 (ART's KMeans draws from the global RNG)
    np.random.seed(0)  # noqa: NPY002
    try:
        _, is_clean = defence.detect_poison(**kw)
    finally:
        np.random.set_state(state)  # noqa: NPY002
    return np.asarray(is_clean) == 0


def _ours_top(scores: np.ndarray, classes: np.ndarray, counts: dict[int, int]) -> np.ndarray:
    flag = np.zeros(len(scores), dtype=bool)
    for c, k in counts.items():
        idx = np.flatnonzero(classes == c)
        flag[idx[np.argsort(-scores[idx], kind="stable")[:k]]] = True
    return flag


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def _compare(Z, classes, cohort, detector, art_cls, **art_kw):
    art = _art_flags(art_cls, Z, classes, **art_kw)
    counts = {c: int(art[classes == c].sum()) for c in (0, 1)}
    ours = _ours_top(detector.score(cohort, _ArrayVictim(Z, classes)), classes, counts)
    return art, ours, {c: _jaccard(art[classes == c], ours[classes == c]) for c in (0, 1)}


def _planted(n: int = 600, d: int = 32, n_poison: int = 24, shift: float = 4.0, seed: int = 0):
    """Two classes of anisotropic Gaussian embeddings with different means; the first n_poison
    stays of class 1 are moved along one random direction (the learned trigger)."""
    rng = np.random.default_rng(seed)
    classes = (np.arange(n) >= n // 2).astype(np.int64)
    scale = np.linspace(1.0, 0.1, d)
    Z = rng.normal(size=(n, d)) * scale + np.where(classes[:, None] == 1, 0.7, -0.4)
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    poison = np.flatnonzero(classes == 1)[:n_poison]
    Z[poison] += shift * u
    is_poison = np.zeros(n, dtype=bool)
    is_poison[poison] = True
    return Z, classes, is_poison


@pytest.fixture(scope="module")
def cohort600():
    return random_cohort(physionet2012_schema(), n=600, per_stay=5, seed=0)


SPECTRAL_KW = {"init": {"expected_pp_poison": 0.06, "eps_multiplier": 1.5}}


def _centred(Z, classes):
    Zc = Z.copy()
    for c in (0, 1):
        Zc[classes == c] -= Zc[classes == c].mean(axis=0)
    return Zc


def test_spectral_same_flags_on_centred_embeddings(cohort600):
    Z, classes, is_poison = _planted()
    Zc = _centred(Z, classes)
    art, ours, jac = _compare(
        Zc,
        classes,
        cohort600,
        SpectralSignatureDetector(),
        art_poison.SpectralSignatureDefense,
        **SPECTRAL_KW,
    )
    assert jac == {0: 1.0, 1: 1.0}
    # Both find the planted poison (24 of 300 class-1 stays; 27 flagged there).
    assert art[is_poison].all() and ours[is_poison].all()


def test_spectral_on_raw_embeddings_differs_only_by_art_uncentred_projection(cohort600):
    Z, classes, is_poison = _planted()
    art, ours, jac = _compare(
        Z,
        classes,
        cohort600,
        SpectralSignatureDetector(),
        art_poison.SpectralSignatureDefense,
        **SPECTRAL_KW,
    )
    # Ours centres first, so it is unchanged by the class means...
    art_c, ours_c, _ = _compare(
        _centred(Z, classes),
        classes,
        cohort600,
        SpectralSignatureDetector(),
        art_poison.SpectralSignatureDefense,
        **SPECTRAL_KW,
    )
    np.testing.assert_array_equal(ours, ours_c)
    # ...while ART's uncentred projection still catches this strong poison in class 1.
    assert ours[is_poison].all() and art[is_poison].mean() >= 0.9
    assert jac[1] >= 0.8
    print(f"spectral on raw embeddings: Jaccard {jac}")


AC_KW = {"nb_clusters": 2, "nb_dims": 10, "reduce": "PCA", "cluster_analysis": "smaller"}


def _same_partition(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two 2-way splits (1 = the same split, whichever half is flagged)."""
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(a, b))


def test_activation_clustering_finds_the_same_poison_cluster(cohort600):
    Z, classes, is_poison = _planted(shift=6.0)
    art, ours, jac = _compare(
        Z,
        classes,
        cohort600,
        ActivationClusteringDetector(),
        art_poison.ActivationDefence,
        **AC_KW,
    )
    # Class 1: ART's smaller cluster is exactly the poison, and so are our top 24.
    assert int(art[classes == 1].sum()) == 24
    assert jac[1] == 1.0 and art[is_poison].all() and ours[is_poison].all()
    # Class 0 has no poison: its 2-means split is arbitrary (near-equal halves, so which half is
    # "smaller" is a coin flip); the overlap is only reported.
    c0 = classes == 0
    print(f"AC class 0: Jaccard {jac[0]:.3f}, ARI {_same_partition(art[c0], ours[c0]):.3f}")


def test_activation_clustering_single_init_difference(cohort600):
    """A weaker poison (shift 4): ART's one k-means++ initialisation may settle in the split of
    the clean cloud, our ten initialisations isolate the poison."""
    Z, classes, is_poison = _planted(shift=4.0)
    art, ours, jac = _compare(
        Z,
        classes,
        cohort600,
        ActivationClusteringDetector(),
        art_poison.ActivationDefence,
        **AC_KW,
    )
    assert ours[is_poison].all()
    print(
        f"AC shift 4: ART flags {int(art[classes == 1].sum())} of class 1, catches "
        f"{art[is_poison].mean():.2f} of the poison; Jaccard {jac[1]:.3f}"
    )


def test_on_a_trained_victim(blatant):
    """Real embeddings: an MLP trained on the blatant heart-rate poison, segmented by label."""
    from ehrbackdoor.victims import make_victim

    cohort = blatant.cohort
    victim = make_victim("mlp", max_epochs=5, seed=0).fit(cohort, cohort)
    Z = victim.embed(cohort).astype(np.float64)
    classes = np.asarray(cohort.label, dtype=np.int64)
    _, _, jac_s = _compare(
        _centred(Z, classes),
        classes,
        cohort,
        SpectralSignatureDetector(by="label"),
        art_poison.SpectralSignatureDefense,
        **SPECTRAL_KW,
    )
    assert jac_s == {0: 1.0, 1: 1.0}
    art, ours, jac_ac = _compare(
        Z,
        classes,
        cohort,
        ActivationClusteringDetector(by="label"),
        art_poison.ActivationDefence,
        **AC_KW,
    )
    ari = {c: _same_partition(art[classes == c], ours[classes == c]) for c in (0, 1)}
    poison = np.zeros(cohort.n_stays, dtype=bool)
    poison[blatant.indices] = True
    print(
        f"trained mlp: spectral Jaccard {jac_s}; activation clustering Jaccard {jac_ac}, "
        f"ARI {ari}; poison caught: ART {art[poison].mean():.2f}, ours {ours[poison].mean():.2f}"
    )
