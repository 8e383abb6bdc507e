"""Reports built from a run folder."""
