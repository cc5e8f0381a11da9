"""dvae_core: the thin shared module behind the dvae book.

Layers (imports point downwards only): ``experiments`` → ``train``/``runs``/``metrics``/``plots``/
``claims`` → ``models`` → ``data``. Import submodules directly (``from dvae_core.models import
VAE``); this package import stays cheap on purpose.
"""

__version__ = "0.1.0"
