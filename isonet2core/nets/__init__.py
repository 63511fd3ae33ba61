"""The networks: one module per family, named and built by :mod:`isonet2core.nets.registry`."""
