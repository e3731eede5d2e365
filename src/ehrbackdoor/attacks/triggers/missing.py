"""Former home of the missingness triggers, kept so existing imports keep working.

Each trigger now has its own module (`missing_vae`, `missing_random`, `missing_block`,
`missing_real`), their base is `missing_base`, mask utilities are `ehrbackdoor.attacks.masks` and
the VAE choice rule is `ehrbackdoor.attacks.vae_selection`. Import from those.
"""

from ehrbackdoor.attacks.masks import hamming_to_masks, observation_masks, pattern_diagnostics
from ehrbackdoor.attacks.triggers.missing_base import (
    MISSING_APPLY_MODES,
    MODE_ALIASES,
    MissingTrigger,
    apply_missing_pattern,
    resolve_mode,
)
from ehrbackdoor.attacks.triggers.missing_block import BlockMissingTrigger, default_block_variables
from ehrbackdoor.attacks.triggers.missing_random import RandomMissingTrigger
from ehrbackdoor.attacks.triggers.missing_real import RealMaskTrigger
from ehrbackdoor.attacks.triggers.missing_vae import VAEMissingTrigger

__all__ = [
    "MISSING_APPLY_MODES",
    "MODE_ALIASES",
    "BlockMissingTrigger",
    "MissingTrigger",
    "RandomMissingTrigger",
    "RealMaskTrigger",
    "VAEMissingTrigger",
    "apply_missing_pattern",
    "default_block_variables",
    "hamming_to_masks",
    "observation_masks",
    "pattern_diagnostics",
    "resolve_mode",
]
