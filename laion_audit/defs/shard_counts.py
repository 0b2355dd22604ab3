"""Per-shard counts the dataset tables are reduced from: `group_counts` (restricted) and `keyword_counts`.

A dataset table over 41,408 shards cannot read every shard's rows into one process; it sums these small
per-shard files instead (audits/group_tables.py, audits/keyword_counts.py). Each is an ordinary shard-partitioned
asset with a recipe, so a shard's counts are recomputed exactly when its labels, scores or samples change, and a
new shard costs one shard's work.

`group_counts` holds per-group counts of one shard, which are small demographic cells: it lives in restricted
storage, and only the reduced, suppressed tables are published.
"""

from dagster import AssetExecutionContext, AssetSelection, BackfillPolicy, asset, define_asset_job, in_process_executor

from laion_audit.audits.keyword_counts import keyword_counts as count_keywords
from laion_audit.audits.report_inputs import INPUT_VERSION_SETS, marker_version_set
from laion_audit.audits.word_lists import load_word_list
from laion_audit.defs.partitions import shard_partitions
from laion_audit.defs.resources import ShardStoreResource
from laion_audit.defs.run_config import CheckedConfig
from laion_audit.defs.shard_runs import UpstreamNotReadyError, materialize_shards, read_upstream, write_shard
from laion_audit.ops.code_identity import code_identity_tags
from laion_audit.ops.settings import Settings
from laion_audit.shards.lineage import code_version, is_restricted
from laion_audit.shards.recipe import Recipe, word_list_setting
from laion_audit.shards.store import ShardStore
from laion_audit.stats.group_sums import group_sums

GROUP_COUNTS = "group_counts"
KEYWORD_COUNTS = "keyword_counts"
GROUP_COUNT_INPUTS = ("gender_labels", "race_labels", "alt_text_scores")
LABEL_COLUMNS = ["shard", "key", "box_id", "label", "status"]
CRIME_REVIEW = "crime_review"
NSFW_LISTS = ["nsfw_keywords_birhane2021", "nsfw_keywords_birhane2021_uncensored"]


class GroupCountsConfig(CheckedConfig):
    force: bool = False


class KeywordCountsConfig(CheckedConfig):
    search_strings: str = "keyword_audit_search_strings"
    # Both lists of Birhane et al.: as printed ("f*ck") and uncensored ("fuck"); names or paths.
    nsfw_lists: list[str] = NSFW_LISTS
    example_seed: int = 0
    force: bool = False

    def problems(self) -> list[str]:
        return [] if self.nsfw_lists else ["nsfw_lists must name at least one list"]


def upstream_markers(store: ShardStore, assets: tuple[str, ...], shard: str) -> dict[str, dict]:
    """The completion marker of each upstream partition; UpstreamNotReadyError names the first one missing."""
    markers = {}
    for asset in assets:
        marker = store.read_marker(asset, shard, is_restricted(asset))
        if marker is None or "data_version" not in marker:
            raise UpstreamNotReadyError(f"{asset} is not complete for shard {shard}; materialize it first")
        markers[asset] = marker
    return markers


def counts_recipe(asset: str, markers: dict[str, dict], settings: dict | None = None) -> Recipe:
    """Code version, the models every input used, and each input's version set: two shards' counts share a
    version set only if their inputs do, so a dataset table summing counts never pools old and new classifiers
    (or samples read with different checks)."""
    models = {role: fingerprint for marker in markers.values()
              for role, fingerprint in ((marker.get("recipe") or {}).get("models") or {}).items()}
    inputs = {name: marker_version_set(marker) for name, marker in markers.items()}
    settings = {**(settings or {}), INPUT_VERSION_SETS: inputs}
    scores = ((markers.get("alt_text_scores") or {}).get("recipe") or {}).get("settings") or {}
    if scores.get(CRIME_REVIEW):
        # Carried so the crime table can show the per-word precision of the review that filtered the words.
        settings[CRIME_REVIEW] = scores[CRIME_REVIEW]
    return Recipe(asset, code_version(asset), models=models, settings=settings,
                  upstream={name: marker["data_version"] for name, marker in markers.items()})


def build_shard_counts(settings: Settings):
    backfill = BackfillPolicy.multi_run(max_partitions_per_run=settings.max_partitions_per_run)

    @asset(
        name=GROUP_COUNTS,
        deps=list(GROUP_COUNT_INPUTS),
        partitions_def=shard_partitions,
        backfill_policy=backfill,
        code_version=code_version(GROUP_COUNTS),
        group_name="shard_counts",
        kinds={"parquet"},
        description="Per shard, attribution rule, axis and perceived group: additive sums (samples, Σw, Σw², "
        "Σw·y, Σw·y²) for crime words overall and per word, negative sentiment, VADER compound and hate speech. "
        "The crime and sentiment tables are sums of these. Restricted: per-shard cells are small.",
    )
    def group_counts(context: AssetExecutionContext, config: GroupCountsConfig, shard_store: ShardStoreResource):
        config.check(GROUP_COUNTS)
        store = shard_store.store()

        def process(shard: str):
            markers = upstream_markers(store, GROUP_COUNT_INPUTS, shard)
            recipe = counts_recipe(GROUP_COUNTS, markers)

            def compute():
                import polars as pl

                tables = {asset: read_upstream(store, asset, shard, markers[asset]["data_version"],
                                               is_restricted(asset)) for asset in GROUP_COUNT_INPUTS}
                sums = group_sums(pl.from_arrow(tables["gender_labels"].select(LABEL_COLUMNS)),
                                  pl.from_arrow(tables["race_labels"].select(LABEL_COLUMNS)),
                                  pl.from_arrow(tables["alt_text_scores"]))
                return sums.to_arrow(), {}

            return write_shard(context, store, shard, recipe, compute, restricted=True, force=config.force)

        yield from materialize_shards(context, process, shard_errors=(UpstreamNotReadyError,), totals=("rows",))

    @asset(
        name=KEYWORD_COUNTS,
        deps=["samples"],
        partitions_def=shard_partitions,
        backfill_policy=backfill,
        code_version=code_version(KEYWORD_COUNTS),
        group_name="shard_counts",
        kinds={"parquet"},
        description="Per shard: Birhane et al. Table 1 counts (matches per search string, NSFW keyword hits in "
        "TEXT and URL, NSFW-flag values) in substring and word modes for each NSFW list, plus a seeded sample of "
        "substring-only example strings. The keyword audit is their sum. Text only.",
    )
    def keyword_counts(context: AssetExecutionContext, config: KeywordCountsConfig, shard_store: ShardStoreResource):
        config.check(KEYWORD_COUNTS)
        store = shard_store.store()
        search = load_word_list(config.search_strings)
        lists = {name: load_word_list(name) for name in config.nsfw_lists}
        settings_used = {"search_strings": word_list_setting(config.search_strings, search),
                         "nsfw_lists": {name: word_list_setting(name, terms) for name, terms in lists.items()},
                         "example_seed": config.example_seed}

        def process(shard: str):
            markers = upstream_markers(store, ("samples",), shard)
            samples = markers["samples"]
            recipe = counts_recipe(KEYWORD_COUNTS, markers, settings_used)

            def compute():
                table = read_upstream(store, "samples", shard, samples["data_version"])
                counts = count_keywords(table.select(["caption", "url", "nsfw"]), search, lists,
                                        seed=config.example_seed)
                return counts.to_arrow(), {}

            return write_shard(context, store, shard, recipe, compute, force=config.force)

        yield from materialize_shards(context, process, shard_errors=(UpstreamNotReadyError,), totals=("rows",))

    group_counts_job = define_asset_job(
        "group_counts_job",
        selection=AssetSelection.assets(group_counts).without_checks(),
        partitions_def=shard_partitions,
        # Small CPU work: all shards of a range run in the run's own process (one pod under Kubernetes).
        executor_def=in_process_executor,
        tags=code_identity_tags(),
        description="Per-shard group counts (the inputs of the crime and sentiment tables) once labels exist.",
    )
    return [group_counts, keyword_counts], group_counts_job
