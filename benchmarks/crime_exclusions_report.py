"""Which crime-word matches the shipped exclusion phrases remove, on a LAION metadata parquet (TEXT column).

The evidence behind lexical_data/crime_exclusions.txt on real alt-texts: every caption the crime list matches,
with the words that count with and without the exclusions, so a reader can check each removal by eye.
Usage: python benchmarks/crime_exclusions_report.py [PARQUET]
(default: ../shared/data/laion_metadata_sample/laion400m_text_sample_1000.parquet beside the repository)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq

from laion_audit.audits.text_matching import TermMatcher
from laion_audit.audits.word_lists import load_word_list

DEFAULT_SAMPLE = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "laion_metadata_sample"
                  / "laion400m_text_sample_1000.parquet")


def exclusion_effects(captions: list[str | None], crime_words: list[str], exclusions: list[str]) -> list[dict]:
    """One entry per caption the crime list matches: the words without and with the exclusions."""
    plain = TermMatcher(crime_words, "word").match_column(captions)
    excluding = TermMatcher(crime_words, "word", exclusions=exclusions).match_column(captions)
    return [
        {"row": i, "caption": caption, "without": before, "with": after, "removed": [w for w in before if w not in after]}
        for i, (caption, before, after) in enumerate(zip(captions, plain, excluding))
        if before
    ]


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else DEFAULT_SAMPLE
    captions = pq.read_table(path, columns=["TEXT"]).column("TEXT").to_pylist()
    effects = exclusion_effects(captions, load_word_list("crime_words"), load_word_list("crime_exclusions"))
    removed = [e for e in effects if e["removed"]]
    print(f"{path}: {len(captions)} captions, {len(effects)} matched by the crime list, "
          f"{sum(bool(e['with']) for e in effects)} still matched with the exclusions")
    for effect in effects:
        mark = "REMOVED " + ",".join(effect["removed"]) if effect["removed"] else "kept"
        print(f"  row {effect['row']:>5}  {','.join(effect['without']):<20} {mark:<24} {effect['caption'][:100]!r}")
    print(f"{len(removed)} caption(s) lose a match to an exclusion phrase")
    return effects


if __name__ == "__main__":
    main()
