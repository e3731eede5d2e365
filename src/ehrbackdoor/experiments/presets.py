"""Ready-made configs shipped with the package (the repository's configs/ holds the same files).

The quickstart is embedded here so it works from an installed package; tests/experiments check
that it equals configs/quickstart.yaml. The demo (`ehrbackdoor demo`) is its own, smaller config:
the settings where a backdoor is visible next to the unpoisoned model's rate, and its limits. `REPOSITORY_CONFIGS`
names the other configs of the repository's configs/ folder (run them with ``ehrbackdoor run
configs/<name>.yaml``); tests check that each parses and expands.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ehrbackdoor.experiments.config import ExperimentConfig, config_from_dict

#: The configs shipped in the repository's configs/ folder, with what they reproduce.
REPOSITORY_CONFIGS = {
    "quickstart": "both attack families on a generated cohort (what `ehrbackdoor demo` runs)",
    "paper1": "Joe et al. (2021), raw space, honest protocol, both targets, 5 seeds",
    "paper1_faithful": "Joe et al. (2021) as their code measured it (grid space, paper victims) "
    "beside the honest protocol, 3 seeds",
    "paper1_faithful_quick": "the goal points of paper1_faithful only (48 cells)",
    "paper2": "Joe et al. (2022), missing-value pattern triggers",
}

QUICKSTART_YAML = """\
# Quickstart: both attack families (a value trigger and a missing-value-pattern trigger) against
# four victims on a generated cohort, one seed. No data to download:
#
#   ehrbackdoor run configs/quickstart.yaml --out runs/quickstart     (or simply: ehrbackdoor demo)
#   ehrbackdoor results runs/quickstart
#   ehrbackdoor report runs/quickstart
name: quickstart
data:
  synthetic: {stays: 2000, seed: 0}
victims:
  lr: {}
  mlp: {max_epochs: 10}
  gru: {max_epochs: 8}
  gbdt: {}
attacks:
  - name: value trigger
    trigger: temporal
    target: 1
    rate: [0.02, 0.1]
    strength: [1.0, 2.0]
    apply: observed
  - name: missing-value trigger
    trigger: missing-vae
    target: 1
    rate: [0.02, 0.05, 0.1]
    apply: exact
seeds: [0]
evaluation:
  bootstrap: 500
"""


def quickstart(run_dir: str | Path) -> tuple[ExperimentConfig, str]:
    """The quickstart config (synthetic data, so nothing to resolve) and its YAML text."""
    doc = yaml.safe_load(QUICKSTART_YAML)
    return config_from_dict(doc, Path(run_dir), source="quickstart"), QUICKSTART_YAML


DEMO_YAML = """\
# The demo (`ehrbackdoor demo`): a backdoor and its limits in a few minutes on a generated cohort.
# A strong temporal value trigger (and a weak one, which does not take) written into raw records,
# the same trigger family written into the victims' hourly grid (the first paper's threat model:
# strong, and caught by imputation-consistency), the VAE missing-value trigger at two rates, three
# victims, and three detectors with a random reference.
name: demo
data:
  synthetic: {stays: 2000, seed: 0}
victims:
  lr: {}
  mlp: {max_epochs: 10}
  gbdt: {}
attacks:
  - name: value trigger
    trigger: temporal
    target: 1
    rate: 0.1
    strength: [1.0, 4.0]
    apply: observed
  - name: value trigger, grid space
    trigger: temporal
    space: grid
    target: 1
    rate: 0.02
    strength: 2.0
    transform: none
    bounds: clip
    constant: pattern
    apply: all
  - name: missing-value trigger
    trigger: missing-vae
    target: 1
    rate: [0.01, 0.05]
    apply: exact
seeds: [0]
defences: [two-sample, mask-rarity, imputation-consistency, random]
evaluation:
  bootstrap: 500
"""


def demo(run_dir: str | Path) -> tuple[ExperimentConfig, str]:
    """The demo config (synthetic data) and its YAML text."""
    doc = yaml.safe_load(DEMO_YAML)
    return config_from_dict(doc, Path(run_dir), source="demo"), DEMO_YAML
