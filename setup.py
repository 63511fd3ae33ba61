# pyproject.toml holds the metadata; this shim serves tools and users that call setup.py.
from setuptools import setup

setup()
