"""The comparison methods (ManTraNet, MAG, CAT-Net, an RGB U-Net), each a
:class:`~fakeseg.models.base.Segmenter` registered in :mod:`fakeseg.models.registry`."""
