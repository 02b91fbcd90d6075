"""Pure math: loss terms, observation likelihoods and the RBM's energy, as small tested functions."""
