"""Model-agnostic trigger design under a fixed budget, scored by a surrogate the attacker trains.

`design_trigger(attacker, threat, space)` searches a family's space (`TemporalSpace`,
`MissingSpace`) on the attacker's own stays (`attacker_split` cuts them from a pool the victim
never trains on) and returns the best candidate within the clean-cost and detector limits; see
`search` for the scoring and `spaces` for what each family may choose.
"""

from ehrbackdoor.attacks.design.search import OBJECTIVES, Design, attacker_split, design_trigger
from ehrbackdoor.attacks.design.spaces import MissingSpace, TemporalSpace, dense_variables

__all__ = [
    "OBJECTIVES",
    "Design",
    "MissingSpace",
    "TemporalSpace",
    "attacker_split",
    "dense_variables",
    "design_trigger",
]
