"""The models, each assembled from parts (``parts/``): what a model is (``config``), what every model
shares (``base``: networks, one parameter buffer, device, checkpoint file), the VAE and the autoencoder
(``vae``), the VAE with a flow posterior (``flow_vae``; its config fields in ``flow_sizes``), and the
linear VAE beside probabilistic PCA (``ppca``).
"""
