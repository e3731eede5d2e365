"""The published reference numbers (kept here for existing imports; they live in
`ehrbackdoor.reference`, a base-layer module the report reads without importing the attacks)."""

from __future__ import annotations

from ehrbackdoor.reference import JOE2021_ASR_FILE, JOE2021_CITATION, joe2021_asr_figure

__all__ = ["JOE2021_ASR_FILE", "JOE2021_CITATION", "joe2021_asr_figure"]
