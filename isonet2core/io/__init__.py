"""Files: MRC maps, STAR tables, model files, IMOD models, the names of everything the core writes, and safe writing (atomic replacement, locks, the output guard)."""
