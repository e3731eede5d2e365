"""Former name of `ehrbackdoor.defences.features`, kept so existing imports keep working."""

from ehrbackdoor.defences.features import (  # noqa: F401
    clear_cache,
    feature_matrix,
    fold_ids,
    mask_matrix,
    reduce_dims,
)
