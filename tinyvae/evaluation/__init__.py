"""Evaluation and pictures: the negative ELBO, the importance-weighted NLL and its bounds L_K
(``evaluate``, with the fast paths of ``importance``), the latent space's statistics, and every
picture a run draws (``plots``). ``tinyvae evaluate``, ``tinyvae sample`` and ``tinyvae plot`` live here.
"""
