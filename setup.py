"""Thin shim: packaging lives in pyproject.toml."""

from setuptools import setup

setup()
