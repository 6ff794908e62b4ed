"""Score-based generative models: noise levels, denoising score matching, Langevin sampling."""
