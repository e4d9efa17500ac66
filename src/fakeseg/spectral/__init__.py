"""Spectral analysis: generator fingerprints and fingerprint-removal attacks."""

from __future__ import annotations

from fakeseg.spectral.attacks import (
    DEFAULT_T,
    apply_fpa,
    apply_msa,
    defingerprint,
    fit_fpa,
    fit_msa,
)
from fakeseg.spectral.fingerprint import (
    EPS,
    Fingerprint,
    Peak,
    compute_fingerprint,
    radial_profile,
    save_fingerprint_outputs,
    spectral_peaks,
)

__all__ = [
    "DEFAULT_T",
    "EPS",
    "Fingerprint",
    "Peak",
    "apply_fpa",
    "apply_msa",
    "compute_fingerprint",
    "defingerprint",
    "fit_fpa",
    "fit_msa",
    "radial_profile",
    "save_fingerprint_outputs",
    "spectral_peaks",
]
