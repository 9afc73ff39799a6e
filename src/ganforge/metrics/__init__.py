"""Sample-quality metrics as pure functions: feature or probability arrays in, Python floats out.

Nothing here touches images, models or files; feature extraction happens elsewhere, so the
math can be checked against closed forms and reused with any feature extractor.
"""
from .classifier import class_histogram, inception_score
from .distances import density_coverage, mean_pairwise_distance, nearest_neighbours, precision_recall
from .distributions import fid, kid

__all__ = ["class_histogram", "density_coverage", "fid", "inception_score", "kid",
           "mean_pairwise_distance", "nearest_neighbours", "precision_recall"]
