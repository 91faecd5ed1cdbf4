"""Shared library code for the pipeline's command-line scripts."""
