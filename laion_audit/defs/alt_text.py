"""Alt-text audits: per-shard text scores and the Birhane et al. keyword audit (text only: runs on metadata
parquet shards without images)."""

from dataclasses import dataclass
from typing import Literal

from dagster import (
    AssetExecutionContext,
    Failure,
    BackfillPolicy,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)

from laion_audit.audits.keyword_counts import audit_from_counts, reduce_keyword_counts
from laion_audit.audits.report_inputs import (
    MixedVersionsError,
    complete_inputs,
    manifest_hash,
    marked_frames,
    version_set_groups,
    write_report,
)
from laion_audit.audits.alt_text_scoring import AltTextScorer, add_hate_probabilities
from laion_audit.audits.crime_review import precise_words, review_sha256, word_precision
from laion_audit.defs.models import ModelsResource, weights_key
from laion_audit.defs.partitions import shard_partitions
from laion_audit.defs.resources import ShardStoreResource
from laion_audit.defs.run_config import CheckedConfig, out_of_range
from laion_audit.defs.shard_counts import KEYWORD_COUNTS, NSFW_LISTS
from laion_audit.defs.shard_runs import (
    UpstreamNotReadyError,
    materialize_shards,
    read_upstream,
    upstream_version,
    write_shard,
)
from laion_audit.audits.keyword_audit import KEYWORD_TABLE_COLUMNS, keyword_table_rows, render_keyword_audit_markdown
from laion_audit.audits.report_display import report_version
from laion_audit.audits.shard_selection import ShardSelectionError, parse_shard_selection
from laion_audit.defs.report_metadata import table_metadata
from laion_audit.audits.word_lists import load_word_list
from laion_audit.ops.settings import Settings
from laion_audit.shards.lineage import code_version
from laion_audit.shards.recipe import Recipe, word_list_setting

ALT_TEXT_SCORES = "alt_text_scores"


class AltTextScoresConfig(CheckedConfig):
    crime_words: str = "crime_words"  # a shipped list name or a path to the user's list
    # Phrases inside which a crime word does not count (titles, products, species, ...); "" disables.
    crime_exclusions: str = "crime_exclusions"
    # A filled review (`laion-audit crime-review sample`); words reviewed below min_precision are not matched.
    # Words the review does not cover are kept.
    crime_review: str = ""
    min_precision: float = 0.0
    nsfw_keywords: str = "nsfw_keywords_birhane2021"
    negative_threshold: float = -0.05
    positive_threshold: float = 0.05
    processes: int = 1
    # Hate-speech probabilities from the profile's `hate_speech` text classifier (paper: pysentimiento BERTweet).
    hate_speech: bool = False
    force: bool = False

    def problems(self) -> list[str]:
        problems = (out_of_range("negative_threshold", self.negative_threshold, -1, 1)
                    + out_of_range("positive_threshold", self.positive_threshold, -1, 1)
                    + out_of_range("min_precision", self.min_precision, 0, 1)
                    + out_of_range("processes", self.processes, 1))
        if self.negative_threshold > self.positive_threshold:
            problems.append(f"negative_threshold ({self.negative_threshold}) must not exceed positive_threshold "
                            f"({self.positive_threshold})")
        if self.min_precision > 0 and not self.crime_review:
            problems.append("min_precision needs crime_review (a filled review file) to act on")
        return problems


@dataclass(frozen=True)
class CrimeLists:
    """The crime words as matched (after the review filter), the exclusions, and what made them."""

    words: list[str]
    dropped: list[str]
    exclusions: list[str]
    settings: dict


def crime_lists(config: AltTextScoresConfig) -> CrimeLists:
    """Load the crime words and exclusions and apply the review's ``min_precision`` filter."""
    words = load_word_list(config.crime_words)
    exclusions = load_word_list(config.crime_exclusions) if config.crime_exclusions else []
    review = None
    dropped: list[str] = []
    kept = words
    if config.crime_review:
        review = {"path": config.crime_review, "sha256": review_sha256(config.crime_review)}
        kept, dropped = precise_words(words, word_precision(config.crime_review), config.min_precision)
    settings = {
        "crime_words": word_list_setting(config.crime_words, words),
        "crime_exclusions": word_list_setting(config.crime_exclusions, exclusions) if config.crime_exclusions else None,
        "crime_review": review,
        "min_precision": config.min_precision,
        "crime_words_dropped": dropped,
    }
    return CrimeLists(kept, dropped, exclusions, settings)


def alt_text_recipe(config: AltTextScoresConfig, crime: CrimeLists, nsfw: list[str], models: dict[str, str],
                    samples_version: str) -> Recipe:
    return Recipe(
        ALT_TEXT_SCORES,
        code_version(ALT_TEXT_SCORES),
        models=models,
        settings={
            **crime.settings,
            "nsfw_keywords": word_list_setting(config.nsfw_keywords, nsfw),
            "negative_threshold": config.negative_threshold,
            "positive_threshold": config.positive_threshold,
            "hate_speech": config.hate_speech,
        },
        upstream={"samples": samples_version},
    )


def build_alt_text_scores(settings: Settings):
    @asset(
        name=ALT_TEXT_SCORES,
        deps=["samples", weights_key("hate_speech")],
        partitions_def=shard_partitions,
        # The same chunking as `samples`, so shard_ingest_job backfills several shards per run.
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=settings.max_partitions_per_run),
        code_version=code_version(ALT_TEXT_SCORES),
        group_name="alt_text",
        kinds={"parquet"},
        description="Per sample: VADER neg/neu/pos/compound and negative/positive flags (±0.05), crime-word "
        "matches (word boundary, multi-word, not inside an exclusion phrase such as a game title; words a review "
        "found below min_precision left out), NSFW keyword hits in TEXT and URL in substring and word modes. "
        "Text only.",
    )
    def alt_text_scores(
        context: AssetExecutionContext,
        config: AltTextScoresConfig,
        shard_store: ShardStoreResource,
        models: ModelsResource,
    ):
        config.check(ALT_TEXT_SCORES)
        store = shard_store.store()
        crime, nsfw = crime_lists(config), load_word_list(config.nsfw_keywords)
        if crime.dropped:
            context.log.info(f"crime words below min_precision {config.min_precision}, not matched: "
                             f"{', '.join(crime.dropped)}")
        hate = models.hate_speech() if config.hate_speech else None
        model_versions = {"hate_speech": hate.fingerprint} if hate else {}
        # One scorer, and with processes > 1 one worker pool, for every shard of the run.
        with AltTextScorer(crime_terms=crime.words, nsfw_terms=nsfw, crime_exclusions=crime.exclusions,
                           negative_threshold=config.negative_threshold,
                           positive_threshold=config.positive_threshold, processes=config.processes) as scorer:

            def process(shard: str):
                samples_version = upstream_version(store, "samples", shard)
                recipe = alt_text_recipe(config, crime, nsfw, model_versions, samples_version)

                def compute():
                    samples = read_upstream(store, "samples", shard, samples_version)
                    table = scorer.score(samples)
                    if hate is not None:
                        table = add_hate_probabilities(table, samples, hate)
                    return table, {}

                return write_shard(context, store, shard, recipe, compute, force=config.force)

            yield from materialize_shards(
                context, process, shard_errors=(UpstreamNotReadyError,),
                totals=("rows", "errors", "upstream_errors"), single_shard_metadata=("status_counts",),
            )

    return alt_text_scores


class KeywordAuditConfig(Config):
    # The lists the shards' keyword_counts were made with (checked against their recipes).
    search_strings: str = "keyword_audit_search_strings"
    nsfw_lists: list[str] = NSFW_LISTS
    # "refuse": fail when keyword_counts shards come from several version sets; "per_version_set": one audit each.
    mixed_versions: Literal["refuse", "per_version_set"] = "refuse"
    # Which shards to audit: "all" complete ones, or shard numbers and ranges ("00000-00031", "3, 7, 10-12"),
    # so two datasets in one store are audited apart. Recorded in the report with the shards read.
    shards: str = "all"


def _check_counted_lists(marker: dict, search: list[str], lists: dict[str, list[str]], config: KeywordAuditConfig):
    """The audit names its lists; the counts must have been made with exactly those (by content)."""
    counted = (marker.get("recipe") or {}).get("settings") or {}
    wanted = {"search_strings": word_list_setting(config.search_strings, search),
              "nsfw_lists": {name: word_list_setting(name, terms) for name, terms in lists.items()}}
    same = (counted.get("search_strings", {}).get("sha256") == wanted["search_strings"]["sha256"]
            and {n: v.get("sha256") for n, v in (counted.get("nsfw_lists") or {}).items()}
            == {n: v["sha256"] for n, v in wanted["nsfw_lists"].items()})
    if not same:
        raise Failure(description="keyword_counts were made with other word lists than this audit names "
                      f"(counted: {counted.get('search_strings')}, {counted.get('nsfw_lists')}); re-materialize "
                      "keyword_counts with the same search_strings and nsfw_lists, or configure the audit like them.",
                      allow_retries=False)


@asset(
    deps=[KEYWORD_COUNTS],
    code_version="keyword_audit-4",
    group_name="reports",
    kinds={"json"},
    description="Birhane et al. (2021) Table 1, summed from the keyword_counts of the shards its `shards` config "
    "selects (default all complete ones; selection and shards recorded in the report): N_match, N_nsfw "
    "(filter keyword in TEXT or URL), %, the dataset's NSFW-flag distribution, which keywords fired in TEXT vs URL "
    "— in substring mode (the paper's) and word mode side by side, for the NSFW list as printed (`f*ck`) and "
    "uncensored (`fuck`), with the inflation substring matching causes. Shards from different version sets are "
    "refused, or audited per version set with `mixed_versions`.",
)
def keyword_audit(
    context: AssetExecutionContext, config: KeywordAuditConfig, shard_store: ShardStoreResource
) -> MaterializeResult:
    """One audit per NSFW list over the selected shards; with several version sets and ``per_version_set``, the JSON is
    ``{"by_version_set": {label: {"result", "inputs"}}, "inputs"}`` and the markdown has a section per label."""
    store = shard_store.store()
    try:
        selection = parse_shard_selection(config.shards)
    except ShardSelectionError as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc
    manifest, markers = complete_inputs(store, [(KEYWORD_COUNTS, False)])
    unavailable = selection.unavailable(manifest[KEYWORD_COUNTS],
                                        context.instance.get_dynamic_partitions(shard_partitions.name))
    if unavailable:
        raise Failure(description=f"shards {selection.spec!r} asks for {len(unavailable)} shard(s) without complete "
                      f"keyword_counts: {', '.join(unavailable[:10])}{' …' if len(unavailable) > 10 else ''}; "
                      "materialize them (shard_ingest_job) or narrow the selection", allow_retries=False)
    manifest = {KEYWORD_COUNTS: {k: v for k, v in manifest[KEYWORD_COUNTS].items() if selection.includes(k)}}
    if not manifest[KEYWORD_COUNTS]:
        raise UpstreamNotReadyError(f"no complete keyword_counts shard to audit (selection {selection.spec!r})")
    chosen_shards = selection.record(manifest[KEYWORD_COUNTS])
    try:
        groups = version_set_groups(manifest, config.mixed_versions)
    except MixedVersionsError as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc
    search = load_word_list(config.search_strings)
    lists = {name: load_word_list(name) for name in config.nsfw_lists}
    audits, sections, rows = {}, [], 0
    for label, group in groups:
        shards = sorted(group[KEYWORD_COUNTS])
        chosen = {shard: markers[KEYWORD_COUNTS][shard] for shard in shards}
        _check_counted_lists(chosen[shards[0]], search, lists, config)
        reduced = reduce_keyword_counts(marked_frames(store, KEYWORD_COUNTS, False, chosen))
        results = {name: audit_from_counts(reduced, name, search, terms) for name, terms in lists.items()}
        audits[label] = {"result": results, "inputs": group}
        rows += next(iter(results.values()))["n_rows"]
        named = ", ".join(shards[:5]) + (f", … (+{len(shards) - 5} more)" if len(shards) > 5 else "")
        heading = f"## Version set {label}\n\n{len(shards)} shard(s): {named}\n\n" if len(groups) > 1 else ""
        sections.append(heading + "\n\n".join(render_keyword_audit_markdown(r) for r in results.values()))
    if len(groups) == 1:
        payload = {**next(iter(audits.values())), "selection": chosen_shards}
    else:
        payload = {"by_version_set": audits, "inputs": manifest, "selection": chosen_shards}
        sections.insert(0, f"`keyword_counts` shards come from {len(groups)} version sets (mixed_versions: "
                        "per_version_set); each is audited on its own, and sections must not be pooled.")
    shards = chosen_shards["shards"]
    sections.insert(0, f"Shards: selection `{selection.spec}`, {len(shards)} read: {', '.join(shards[:10])}"
                    f"{' …' if len(shards) > 10 else ''}")
    markdown = "\n\n".join(sections)
    json_path, md_path = write_report(store, "keyword_audit", payload, markdown)
    digest = manifest_hash(manifest)
    context.log.info(f"keyword audit over {len(manifest[KEYWORD_COUNTS])} shards in {len(groups)} version set(s), "
                     f"{rows} alt-texts")
    metadata = {"report": MetadataValue.md(markdown), "shards": len(manifest[KEYWORD_COUNTS]), "rows": rows,
                "shard_selection": selection.spec, "nsfw_lists": ", ".join(lists), "version_sets": len(groups),
                "json": MetadataValue.path(json_path), "markdown": MetadataValue.path(md_path),
                "inputs_sha256": digest[:16]}
    if len(groups) == 1:
        metadata["table"] = table_metadata(keyword_table_rows(payload["result"]), KEYWORD_TABLE_COLUMNS)
    return MaterializeResult(metadata=metadata,
                             data_version=DataVersion(report_version("keyword_audit", payload, manifest)))
