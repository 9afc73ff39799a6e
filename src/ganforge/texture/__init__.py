"""Texture: synthesis from one exemplar (a spatial GAN, and Gram-matrix optimisation), and
texture analysis and recognition (co-occurrence, local binary patterns, CNN Gram statistics)."""
