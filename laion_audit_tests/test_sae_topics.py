"""Sparse autoencoders, identity counts, topic clusters and PMI against planted and hand-computed expectations,
and the caption embedders through the real sentence-transformers loader."""

import math

import numpy as np
import pytest
import torch

from laion_audit.topics.identity_counts import IDENTITIES, TopActivations, identity_index
from laion_audit.topics.sae import SAEConfig, build_sae, evaluate, train
from laion_audit.topics.topic_pmi import greedy_complete_link, pmi

# Measured (this machine, seed 0, the test's settings): TopK 0.997, BatchTopK 0.973 mean max cosine; 64 random
# 16-d unit atoms score 0.54-0.57 (three draws). 0.9 leaves room for other platforms' float order while failing a model that learns nothing.
RECOVERY_THRESHOLD = 0.9


def planted_dictionary(n_atoms=32, dim=16, active=2, n=4096, seed=0):
    """x = sum of ``active`` random unit atoms with coefficients in [0.5, 2.5]: the true dictionary is known."""
    g = torch.Generator().manual_seed(seed)
    atoms = torch.randn(n_atoms, dim, generator=g)
    atoms /= atoms.norm(dim=1, keepdim=True)
    chosen = torch.stack([torch.randperm(n_atoms, generator=g)[:active] for _ in range(n)])
    coefficients = torch.rand(n, active, generator=g) * 2 + 0.5
    return atoms, (coefficients[..., None] * atoms[chosen]).sum(dim=1)


def batches(x, size, seed=1):
    g = torch.Generator().manual_seed(seed)
    while True:
        yield x[torch.randint(0, len(x), (size,), generator=g)]


@pytest.mark.parametrize("architecture", ["topk", "batch_topk"])
def test_sae_recovers_a_planted_sparse_dictionary(architecture):
    atoms, x = planted_dictionary()
    config = SAEConfig(expansion=4, k=2, steps=700, batch_size=128, lr=3e-3)
    sae = build_sae(architecture, 16, config, seed=0)
    train(sae, batches(x, 128), config)
    learned = sae.atoms.detach()
    learned = learned / learned.norm(dim=1, keepdim=True)
    recovery = (atoms @ learned.T).max(dim=1).values.mean().item()
    assert recovery > RECOVERY_THRESHOLD, recovery
    # Chance level for comparison: a random dictionary of the same size.
    random_atoms = torch.nn.functional.normalize(torch.randn_like(learned), dim=1)
    assert (atoms @ random_atoms.T).max(dim=1).values.mean().item() < 0.75
    report = evaluate(sae, [x])
    assert report.fraction_variance_explained > 0.8 and report.n == len(x)
    decoder_norms = sae.decoder.weight.norm(dim=0)
    assert torch.allclose(decoder_norms, torch.ones_like(decoder_norms), atol=1e-5)


def test_batch_topk_learns_an_inference_threshold_and_topk_keeps_k_per_input():
    atoms, x = planted_dictionary(n=1024)
    config = SAEConfig(expansion=2, k=3, steps=40, batch_size=64)
    batch_topk = build_sae("batch_topk", 16, config, seed=0)
    assert float(batch_topk.threshold) == -1.0
    train(batch_topk, batches(x, 64), config)
    assert float(batch_topk.threshold) > 0  # learned from step min(1000, 4) on
    codes = batch_topk.encode(x)
    assert torch.all((codes == 0) | (codes > batch_topk.threshold))
    topk = build_sae("topk", 16, config, seed=0)
    assert torch.all((topk.encode(x) > 0).sum(dim=1) <= 3)


def test_pmi_equals_a_hand_computed_example():
    # Two features, two identities, two topics. Decoder directions f0 = e1, f1 = e2; topics t0 = e1, t1 = (.6, .8):
    # cosines f0: (1, .6), f1: (0, .8), so p(t|f0) = (.625, .375), p(t|f1) = (0, 1) (up to the 1e-8 floor).
    # Counts c = [[3, 1], [0, 2]]: p(f) = (4/6, 2/6); p(i|f0) = (4, 2)/6, p(i|f1) = (1, 3)/4 (+1 smoothing).
    # p(i) = (19/36, 17/36); p(t) = (5/12, 7/12); p(i,t) = [[5/18, 1/4], [5/36, 1/3]].
    expected = np.log([[(5 / 18) / (19 / 36 * 5 / 12), (1 / 4) / (19 / 36 * 7 / 12)],
                       [(5 / 36) / (17 / 36 * 5 / 12), (1 / 3) / (17 / 36 * 7 / 12)]])
    assert np.allclose(expected, np.log([[24 / 19, 108 / 133], [12 / 17, 144 / 119]]))
    got = pmi(np.array([[3, 1], [0, 2]]), np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 0.0], [0.6, 0.8]]))
    assert np.allclose(got, expected, atol=1e-6)


def test_pmi_keeps_only_each_features_top_five_topics_and_maps_nan_to_minus_infinity():
    # One feature along e1; seven topics at decreasing cosine 1, .9, ..., .4: only the first five share p(t|f).
    angles = np.arccos([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    topics = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    got = pmi(np.array([[5, 5]]), np.array([[1.0, 0.0]]), topics)
    # With one feature p(i,t) = p(i)p(t), so PMI = log(1 + ε/(p(i)p(t)) ...) ≈ 0 where p(t) > 0; the two dropped
    # topics have p(t) = 1e-8 / 4.0 + ... > 0 as well (the floor), so every entry is finite and ≈ 0.
    assert np.all(np.abs(got) < 1e-3)
    empty = pmi(np.zeros((2, 2)), np.eye(2), np.eye(2))  # no counts: p(f) is 0/0
    assert np.all(np.isneginf(empty))


def test_greedy_complete_link_needs_every_member_above_tau():
    # Unit vectors at 0°, 25°, 50°: neighbours have cosine 0.906, the ends 0.643. At τ = 0.8 single link would chain
    # all three; complete link puts the third apart because it is not close to the first.
    angles = np.radians([0, 25, 50])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    assert greedy_complete_link(vectors, 0.8) == [[0, 1], [2]]
    assert greedy_complete_link(vectors, 0.6) == [[0, 1, 2]]
    assert greedy_complete_link(vectors, 0.95) == [[0], [1], [2]]


def test_identity_counts_take_each_features_top_n_positive_activations():
    top = TopActivations(features=2, n=2)
    # Shard 1: persons of identities 0, 1, 2; shard 2: identities 3, 0.
    top.update(torch.tensor([[0.9, 0.0], [0.5, 0.2], [0.1, 0.0]]), torch.tensor([0, 1, 2]))
    top.update(torch.tensor([[0.7, 0.0], [0.0, 0.3]]), torch.tensor([3, 0]))
    counts = top.counts()
    # Feature 0: top two are 0.9 (id 0) and 0.7 (id 3). Feature 1: 0.3 (id 0) and 0.2 (id 1); zeros never count.
    expected = np.zeros((2, len(IDENTITIES)), dtype=int)
    expected[0, [0, 3]] = 1
    expected[1, [0, 1]] = 1
    assert (counts == expected).all()
    assert identity_index("black", "female") == IDENTITIES.index("black_female")
    assert identity_index("unclear", "male") == -1 and identity_index("white", "mixed") == -1


def test_identities_below_k_min_are_suppressed(tiny_models):
    from laion_audit.models.sentence_embedder import SentenceEmbedder
    from laion_audit.topics.identity_topics import identity_topics, markdown

    embedder = SentenceEmbedder(tiny_models / "sentence_embedder_tiny", name="tiny", fingerprint="x")
    sae = build_sae("topk", 32, SAEConfig(expansion=1, k=2), seed=0)
    persons = np.zeros(len(IDENTITIES), dtype=int)
    persons[0], persons[1], persons[2] = 10, 9, 25  # k_min 10: the second is suppressed, the others published
    counts = np.random.default_rng(0).integers(0, 5, size=(32, len(IDENTITIES)))
    result = identity_topics({"counts": [counts], "persons": persons}, [sae], ["football", "cooking", "prayer"],
                             embedder, k_min=10, top_report=2, taus=[0.9])
    published = {row["identity"] for row in result["rows"]}
    assert published == {IDENTITIES[0], IDENTITIES[2]}
    assert IDENTITIES[1] in result["suppressed_identities"]
    assert "| 9 |" not in markdown(result) and all(row["persons"] >= 10 for row in result["rows"])


def test_minilm_from_the_offline_package_gives_real_sentence_embeddings(tiny_models):
    from laion_audit.defs.models import ModelsResource

    models = ModelsResource(profile="tiny", models_dir=str(tiny_models), trained_dir=str(tiny_models / "none"))
    embedder = models.caption_embedder("minilm")
    assert embedder.dim == 384 and not embedder.random_weights
    assert "substitute for ibm-granite/granite-embedding-english-r2" in embedder.name
    vectors = embedder.embed(["A man is playing football on a field.", "A person plays soccer on the grass.",
                              "The stock market fell sharply today."], 8, normalize=True)
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > unrelated + 0.3, (similar, unrelated)


def test_tiny_caption_embedder_loads_through_the_registry_like_the_paper_one(tiny_models):
    from laion_audit.defs.models import ModelsResource
    from laion_audit.models.registry import PAPER

    models = ModelsResource(profile="tiny", models_dir=str(tiny_models), trained_dir=str(tiny_models / "none"))
    embedder = models.caption_embedder()
    assert embedder.dim == 32 and embedder.random_weights and embedder.normalize_embeddings is False
    out = embedder.embed(["a person at the beach", "a person at the beach"], 4)
    assert out.shape == (2, 32) and np.allclose(out[0], out[1]) and not math.isclose(float(np.linalg.norm(out[0])), 1.0)
    paper = next(e for e in PAPER if e.role == "caption_embedder")
    assert paper.source == "ibm-granite/granite-embedding-english-r2"
    assert paper.encode_settings["normalize_embeddings"] is False and paper.encode_settings["batch_size"] == 1024


def test_embedding_stream_reads_shard_by_shard_and_cycles_every_embedding_equally(tmp_path):
    from laion_audit.shards.recipe import Recipe
    from laion_audit.shards.store import Provenance, ShardStore
    from laion_audit.topics.caption_embedding import CAPTION_EMBEDDINGS, CAPTION_EMBEDDINGS_SCHEMA, EmbeddingStore

    store = ShardStore(str(tmp_path / "store"))
    value = 0
    for shard, ok, failed in (("00000", 5, 1), ("00001", 0, 2), ("00002", 7, 0)):
        rows = []
        for i in range(ok + failed):
            good = i < ok
            rows.append({"shard": shard, "key": f"{shard}{i:04d}", "box_id": 0 if good else None,
                         "embedding": [float(value), 0.0] if good else None, "status": "ok" if good else "upstream_error",
                         "error": None if good else "no person", "model_name": "m", "model_fingerprint": "f",
                         "random_weights": True})
            value += good
        recipe = Recipe(CAPTION_EMBEDDINGS, "caption_embeddings-1", models={}, settings={}, upstream={})
        store.write_table(Provenance(recipe, shard, "run"), pa_table(rows, CAPTION_EMBEDDINGS_SCHEMA), restricted=True)
    source = EmbeddingStore(store, store.complete_shards(CAPTION_EMBEDDINGS, restricted=True))
    assert [shard for shard, _, _ in source.passes()] == ["00000", "00002"]  # the shard without embeddings is skipped
    assert source.dim() == 2
    stream = source.batches(4, seed=0)
    seen = np.concatenate([next(stream) for _ in range(6)])[:, 0]  # 24 rows = two cycles over 12 embeddings
    assert sorted(seen.tolist()) == sorted(list(range(12)) * 2)
    # The first batch holds shard 00000's five embeddings' first four; the second spans both shards.
    assert set(seen[:4]) <= set(range(5)) and {float(v) >= 5 for v in seen[4:8]} == {False, True}


def pa_table(rows, schema):
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=schema)
