"""Remedies past the papers, as library functions on finished jobs: WiSE-FT, model soups, post-hoc corrections."""
