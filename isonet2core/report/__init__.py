"""What a run shows its user: figures, the HTML/Markdown report and the training's progress line (no torch in :mod:`.progress`)."""
