"""Running: a training run's config (``config``), its loop (``loop``), its folder (``folder``: config,
metrics, checkpoint, resume), how it stops early (``stopping``: Ctrl-C, divergence), the entry points
``train`` and ``resume`` with ``tinyvae train`` (``train``), and the ``tinyvae`` command (``cli``).
"""
