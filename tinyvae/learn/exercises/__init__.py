"""Graded exercises: write the VAE's backward passes yourself and be told exactly what is wrong.

Thirteen functions, from one dense layer to the whole VAE, the importance-weighted (IWAE) bound, a
convolution layer's backward pass, a planar flow step and the semi-supervised M2's loss through q(y|x), one
file each (``a_dense.py`` ... ``k_m2.py``). Each stub states its shapes (N batch, D input, H hidden, Z latent,
K importance samples, C classes), its reduction (losses sum over D and Z and average over N,
in nats per example [eq:loss-reduction]) and the derivation to read first. Write your version
with the same signature, then::

    from tinyvae import exercises
    exercises.check("dense_backward", my_dense_backward)   # -> Feedback: PASS, or what is wrong
    exercises.check_all(my_module)                          # every exercise found in a module or dict

or, from a shell, ``python -m tinyvae.exercises my_answers.py``.

``check`` draws seeded float64 inputs of awkward shapes (N=4, D=7, H=5, Z=3: nothing square, so a
missing transpose shows; N > 1, so a sum-for-mean mix-up shows), calls your function, and compares
its gradients with central differences of the true loss (``tinyvae.learn.gradcheck``). When something
is off it compares your output with the reference (``tinyvae.learn.solutions``) on the same inputs to
name the usual causes: a missing transpose, a missing ½, a sum where the batch mean is meant, the
wrong sign, a fresh ε, σ² in place of σ, a derivative taken w.r.t. σ or σ² instead of log σ², outputs
returned in each other's places, a forgotten bias gradient, a wrong shape, an exception.

The checker is ``checker.py`` (calling the learner: ``calling.py``; naming the mistake:
``diagnosis.py``); what an exercise is, and the sizes its cases use, is ``spec.py``.
"""

from .a_dense import dense_backward
from .b1_relu import relu_backward
from .b2_tanh import tanh_backward
from .c_bce import bce_with_logits
from .catalogue import EXERCISES
from .checker import Feedback, Summary, check, check_all
from .d_kl import gaussian_kl
from .e1_reparameterize import reparameterize
from .e2_reparameterize_backward import reparameterize_backward
from .f_vae import init_vae_params, vae_backward, vae_forward
from .g_iwae_loss import iwae_loss
from .h_iwae_encoder import iwae_encoder_backward
from .i_conv import conv_backward, conv_forward
from .j_planar import planar_step
from .k_m2 import m2_batch_loss

__all__ = [
    "EXERCISES", "Feedback", "Summary", "bce_with_logits", "check", "check_all", "dense_backward",
    "gaussian_kl", "init_vae_params", "relu_backward", "reparameterize", "reparameterize_backward",
    "tanh_backward", "vae_backward", "vae_forward", "iwae_loss", "iwae_encoder_backward", "conv_backward",
    "conv_forward", "planar_step", "m2_batch_loss",
]
