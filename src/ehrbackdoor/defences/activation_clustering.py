"""Activation clustering (Chen et al., 2018) on the victim's penultimate representation.

Per class, the representations are reduced to a few principal components and split into two
clusters by k-means: if the class holds poison the model separates it through the trigger, so one
cluster is the (small) poison and the split is clean (high silhouette); an unpoisoned class splits
arbitrarily (low silhouette, clusters of similar size). A stay's suspicion is

    max(silhouette of its class, 0) * (1 - relative size of its cluster) + 1e-3 * margin,

where margin = (d_other - d_own) / (d_other + d_own) in [0, 1] from the two centroid distances
breaks ties inside a cluster (stays firmly inside the small cluster rank first). Segmented per
predicted class (``by="label"``: per training label, as in the paper).
"""

from __future__ import annotations

import numpy as np

from ehrbackdoor.defences.base import check_int
from ehrbackdoor.defences.spectral import ClassLatentDetector, top_directions


class ActivationClusteringDetector(ClassLatentDetector):
    """2-means per class on reduced embeddings; small, well-separated clusters are suspicious."""

    name = "activation-clustering"
    min_class_size = 4

    def __init__(
        self,
        by: str = "predicted",
        n_components: int = 10,
        silhouette_sample: int = 2000,
        seed: int = 0,
    ) -> None:
        super().__init__(by, seed)
        self.n_components = check_int("n_components", n_components, 1)
        self.silhouette_sample = check_int("silhouette_sample", silhouette_sample, 10)

    def _score_class(self, Zc: np.ndarray) -> tuple[np.ndarray, dict] | None:
        from sklearn.cluster import KMeans
        from sklearn.metrics import silhouette_score

        n = len(Zc)
        _, vt = top_directions(Zc, self.n_components, self.seed)
        R = Zc @ vt.T
        if np.allclose(R, 0):
            return None
        km = KMeans(n_clusters=2, n_init=10, random_state=self.seed).fit(R)
        assign = km.labels_
        if len(np.unique(assign)) < 2:
            return None
        sil = float(
            silhouette_score(
                R, assign, sample_size=min(self.silhouette_sample, n), random_state=self.seed
            )
        )
        rel = np.bincount(assign, minlength=2) / n
        d = np.linalg.norm(R[:, None, :] - km.cluster_centers_[None, :, :], axis=2)
        own = d[np.arange(n), assign]
        other = d[np.arange(n), 1 - assign]
        margin = np.where(own + other > 0, (other - own) / np.maximum(own + other, 1e-12), 0)
        scores = max(sil, 0.0) * (1.0 - rel[assign]) + 1e-3 * margin
        return scores, {"n": n, "silhouette": sil, "smaller_cluster_share": float(rel.min())}
