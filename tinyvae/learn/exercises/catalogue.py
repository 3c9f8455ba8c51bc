"""The exercises in order, by name: one file per exercise, each giving its ``EXERCISE``."""

from __future__ import annotations

from . import (a_dense, b1_relu, b2_tanh, c_bce, d_kl, e1_reparameterize, e2_reparameterize_backward, f_vae,
               g_iwae_loss, h_iwae_encoder, i_conv, j_planar, k_m2)

EXERCISES = {m.EXERCISE.name: m.EXERCISE for m in (
    a_dense, b1_relu, b2_tanh, c_bce, d_kl, e1_reparameterize, e2_reparameterize_backward, f_vae, g_iwae_loss,
    h_iwae_encoder, i_conv, j_planar, k_m2)}
