"""The parts a model is assembled from, each with a forward and a backward that the others call.

* ``encoders``: q(z|x) as a network giving (μ, log σ²) (``GaussianEncoder``), the reparameterization
  z = μ + σ ⊙ ε (``Reparameterize``), and the autoencoder's deterministic code (``CodeEncoder``);
* ``priors``: p(z) = N(0, I), its log density and, against a Gaussian q(z|x), its closed-form KL;
* ``likelihoods``: the decoder's p(x|z), Bernoulli, continuous Bernoulli or Gaussian with a fixed,
  learned or optimal σ_x², each scoring a decoder output against the data and giving back its gradient;
* ``objectives``: the ELBO with β and free bits, and the autoencoder's reconstruction error;
* ``iwae``: the importance-weighted bound L_K of Burda et al.;
* ``conditions``: the condition of a conditional model, a one-hot label or the seen pixels and their
  mask, as the vector c its networks read beside x and z, and the likelihood of the unseen pixels
  (``ScoredBernoulli``) that scores an image completion;
* ``flows``: normalizing flows after the encoder, T steps z_0 -> z_T with their summed log-determinant,
  and the planar step (Rezende & Mohamed 2015); ``iaf``: the inverse autoregressive step with its MADE
  masks (Kingma et al. 2016); ``flow_bound``: the encoder with a context and the objective of a flow
  posterior q_T, the ELBO or the IWAE bound with every term sampled (``models/flow_vae.py`` assembles them);
* ``classifier``: q(y|x) of the semi-supervised M2, an MLP and a softmax, and the labels it reads;
  ``semi_supervised``: M2's rows (each labelled example once, each unlabelled one under every label), their
  bounds, and the objective with its gradients through q(y|x); ``labelled_rows``: the encoder's first layer
  on those rows, x's product once per example (``models/m2.py`` assembles them);
* ``gaussian_layer``: a Gaussian layer of a hierarchy, an MLP giving (μ, log σ²) from the layer below
  (q(z2|z1), p(z1|z2) and q(z1|x) of ``models/two_layer.py``), and ``Networks``, several of them as one
  parameter container.

An objective scores what the other parts computed: a likelihood term log p(x|z), a prior term
log p(z) and a posterior term log q(z|x), or the closed-form KL where one exists; its backward gives
the gradient of the loss with respect to each, and the parts carry them on to their parameters.
A new model family adds or swaps a part here; the model's forward and backward stay as they are.
"""
