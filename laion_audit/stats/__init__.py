"""Statistics for published tables: rates, intervals, small-cell suppression, charts."""
