"""The attribution methods; importing this package registers every one of them on the kit's registry."""

from cnnlab.explain.methods import cam, gradient, lrp, perturbation, superpixels  # noqa: F401  (they register themselves)
