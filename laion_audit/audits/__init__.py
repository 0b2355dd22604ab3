"""Alt-text audits and group tables: word lists, matching, scoring, keyword audit, attribution, reductions."""
