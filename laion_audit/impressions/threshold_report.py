"""The CLIP threshold audit as markdown (the JSON report holds the same numbers)."""

from __future__ import annotations


def render_threshold_audit(sections: dict, probes: list[dict], threshold: float) -> str:
    """Markdown: shares and crossings per version set, then the probes (both captions, cosine, kept or not)."""
    lines = [f"# CLIP similarity threshold audit (kept iff cosine ≥ {threshold})", ""]
    if len(sections) > 1:
        lines += [f"Inputs come from {len(sections)} version sets; each is reported on its own.", ""]
    for label, section in sections.items():
        if len(sections) > 1:
            lines += [f"## Version set {label}", ""]
        lines += ["| model | samples | scored | kept | below | share kept | share below | mean cosine |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in section["shares"]:
            share = "–" if row["share_kept"] is None else f"{row['share_kept']:.3f}"
            below = "–" if row["share_below"] is None else f"{row['share_below']:.3f}"
            mean = "–" if row["mean_similarity"] is None else f"{row['mean_similarity']:.4f}"
            lines.append(f"| {row['model']} | {row['samples']} | {row['scored']} | {row['kept']} | {row['below']} | "
                         f"{share} | {below} | {mean} |")
        lines += ["", "Samples crossing the threshold between models:", "",
                  "| model A | model B | both kept | kept by A only | kept by B only | both dropped |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['model_a']} | {r['model_b']} | {r['both_kept']} | {r['kept_by_a_only']} | "
                  f"{r['kept_by_b_only']} | {r['both_dropped']} |" for r in section["crossings"]]
        lines.append("")
    lines += ["## Counterfactual probes", "", "| model | probe | caption | cosine | kept |", "|---|---|---|---|---|"]
    for row in probes:
        for side in ("a", "b"):
            lines.append(f"| {row['model']} | {row['probe']} | {row[f'caption_{side}']} | "
                         f"{row[f'similarity_{side}']:.4f} | {'yes' if row[f'kept_{side}'] else 'no'} |")
    if any(row["random_weights"] for row in probes):
        lines += ["", "Random-weight models: the numbers exercise the pipeline; they say nothing about CLIP."]
    return "\n".join(lines) + "\n"
