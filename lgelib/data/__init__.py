"""Datasets: manifests, NIfTI readers, the canonical grid and the embedded synthetic LGE cohort."""
