"""Scipion plugin for IsoNet2 (filled in by the plugin work)."""
