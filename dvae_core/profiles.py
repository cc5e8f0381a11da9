"""The three profiles every notebook runs under.

- ``smoke``: seconds per notebook; exercises every code path for CI, numbers meaningless.
- ``preview``: documented reductions that run on 2 CPU cores in minutes; the committed book.
- ``paper``: the paper's own hyperparameters, for a GPU.
"""

from __future__ import annotations

from typing import Literal, Mapping, TypeVar, get_args

ProfileName = Literal["smoke", "preview", "paper"]
PROFILES = get_args(ProfileName)

T = TypeVar("T")


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    return profile


def select(table: Mapping[str, T], profile: str) -> T:
    """``table[profile]`` with a clear error for an unknown profile."""
    return table[check_profile(profile)]
