"""Facial impression bias of CLIP models (Wolfe et al. 2024) and the 0.3 image–text similarity filter of LAION
(Birhane et al. 2021, §3.3.3), Dagster-free.

* `lexicon`: the 34 prompt pairs and the human inter-rater reliability (lexical_data/facial_impression_*.csv);
* `ratings`: a ratings dataset in the One Million Impressions layout, validated;
* `associations`: m = cos(image, positive prompt) − cos(image, negative prompt) per image and attribute;
* `bias`: model–human similarity, IRR correlation, the scale regression, correlation-matrix structure;
* `plots`: PNG figures of the above;
* `threshold`: per-sample CLIP similarity of a shard, the shares each side of a threshold, counterfactual probes.
"""
