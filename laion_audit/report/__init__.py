"""The audit report: one self-contained HTML document assembled from the dataset-level reports (Dagster-free)."""
