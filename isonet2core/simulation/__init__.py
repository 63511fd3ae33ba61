"""Synthetic tomograms with ground truth: blob phantoms (:mod:`.simulate`) and lamellae from atomic models (:mod:`.lamella`, :mod:`.structures`)."""
