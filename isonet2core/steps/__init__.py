"""The user-facing steps that work on tomograms of a STAR file: prepare-star, deconv, make-mask, predict (with its tiling), and the inputs each step reads from a STAR row."""
