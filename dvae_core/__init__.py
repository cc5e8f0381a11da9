"""dvae_core: the thin shared module behind the dvae book.

Layers (imports point downwards only; ``tests/test_architecture.py`` fails on a cycle): ``papers``
(one package per paper, and the registry) → ``sweep`` → ``ensemble`` → ``runs`` → ``train`` → ``models`` / ``metrics`` /
``claims`` / ``plots`` → ``data`` → ``infra``. Import submodules directly (``from dvae_core.models import
VAE``); this package import stays cheap on purpose.
"""

import os

# OpenMP threads that spin while waiting make torch 3-10x slower whenever another process shares
# the cores (a notebook beside a test run, two sweep workers). Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
