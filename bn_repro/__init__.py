"""bn_repro: a JAX/Flax reproduction of Ioffe & Szegedy (2015), Batch Normalization."""
