"""Real-vs-synthetic detection scorers that should hold on generators they never saw.

Families (one module each, one interface: ``fit(train, val, options) -> Scorer``,
``Scorer.score(paths) -> P(synthetic)``, ``save(folder)`` / ``registry.load_scorer(folder)``,
safetensors + JSON, no pickle):

* ``probe`` — frozen ImageNet-trunk features + logistic regression (UnivFD-style);
* ``spectral`` — noise-residual log-spectrum profile and upsampling peaks + logistic regression;
* ``npr`` — small CNN on the down-up-sampling residual (NPR-style);
* ``cnn`` — the fine-tuned classifier of ``fakeseg.training.classification`` (``cnn_blurjpeg``: with
  CNNDetection's blur + JPEG augmentation, each with probability 0.5);
* ``ensemble`` — mean (or validation-fitted stacking) of member logits.

Evaluation is at native resolution (``detection.common``): never downscaled; large images are
tiled and the tile scores averaged. ``detection.benchmark`` runs leave-one-generator-out.
"""

from fakeseg.detection.registry import (
    DEFAULT_METHOD,
    METHODS,
    check_method,
    fit_method,
    is_detector_folder,
    load_scorer,
)

__all__ = ["DEFAULT_METHOD", "METHODS", "check_method", "fit_method", "is_detector_folder",
           "load_scorer"]
