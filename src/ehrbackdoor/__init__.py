"""ehrbackdoor: backdoor attacks on machine-learning models of electronic health records.

Reproduce, measure and defend against poisoning attacks on ICU mortality models.
"""

__version__ = "0.1.0"
