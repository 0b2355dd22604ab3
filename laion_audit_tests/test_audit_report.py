"""The audit report's building blocks, without a browser: hostile dataset text stays text, counts print as
integers, label distributions hide small cells and their complements, missing analyses say so, and the CLI
prints the latest report's path."""

import re
import subprocess
import sys
from pathlib import Path

from laion_audit.report.composition import published_distribution
from laion_audit.report.html_page import Section, format_cell, markdown, page, table


def test_dataset_text_cannot_inject_markup():
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    html = table([{"example": hostile, "n": 3}]) + markdown(f"| example |\n|---|\n| {hostile} |\n\n{hostile}")
    assert "<script>" not in html and "<img src=x" not in html
    assert html.count("&lt;script&gt;") == 3


def test_counts_print_as_integers_and_rates_as_decimals():
    assert format_cell(2.0) == ("2", True)
    assert format_cell(12000) == ("12,000", True)
    assert format_cell(0.123456) == ("0.1235", True)
    assert format_cell(None) == ("—", False)
    html = table([{"group": "female", "n_samples": 2.0, "rate": 0.5}])
    assert re.search(r'<td class="num">2</td>', html) and "2.000" not in html


def test_label_distribution_hides_small_cells_and_the_complement_a_total_would_reveal():
    # k = 10. 3 is small; with the total of valid persons published, hiding 3 alone would reveal it, so the
    # smallest other cell (12) goes too. 40 and 25 stay.
    assert published_distribution({"a": 40, "b": 3, "c": 12, "d": 25}, 10) == [
        ("a", 40), ("d", 25), ("c", None), ("b", None)]
    assert published_distribution({"a": 40, "b": 30}, 10) == [("a", 40), ("b", 30)]
    assert published_distribution({}, 10) == []


def test_page_is_self_contained():
    html = page("t", "s", [Section("one", "One", "<p>x</p>", warnings=["careful"])], banner=["tiny"])
    assert "default-src 'none'" in html and "<script" not in html
    assert 'id="one"' in html and "careful" in html and "tiny" in html


def test_report_on_an_empty_store_says_every_analysis_is_missing(tmp_path):
    from laion_audit.report.audit_report import ANALYSES, build_audit_report
    from laion_audit.shards.store import ShardStore

    html, summary = build_audit_report(ShardStore(str(tmp_path / "store")), None)
    assert summary["missing"] == [a.name for a in ANALYSES]
    assert html.count('class="missing"') >= len(ANALYSES)


def test_report_command_prints_the_latest_path_or_says_how_to_make_one(tmp_path):
    cli = Path(sys.executable).with_name("laion-audit")
    store = tmp_path / "store"
    missing = subprocess.run([str(cli), "report", "--store", str(store)], capture_output=True, text=True)
    assert missing.returncode == 1 and "audit_reports_job" in missing.stderr
    (store / "reports").mkdir(parents=True)
    (store / "reports" / "audit_report.html").write_text("<html></html>")
    found = subprocess.run([str(cli), "report", "--store", str(store)], capture_output=True, text=True)
    assert found.returncode == 0 and found.stdout.strip() == str(store / "reports" / "audit_report.html")


def test_figures_linked_from_a_report_are_embedded_and_unknown_links_become_text(tmp_path):
    import io

    from PIL import Image

    from laion_audit.report.audit_report import inline_images
    from laion_audit.shards.store import ShardStore

    store = ShardStore(str(tmp_path / "store"))
    figures = tmp_path / "store" / "reports" / "analysis"
    figures.mkdir(parents=True)
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), "red").save(buffer, format="PNG")
    (figures / "plot.png").write_bytes(buffer.getvalue())
    text = inline_images(store, "![plot](analysis/plot.png) ![gone](analysis/gone.png) ![up](../secret.png)")
    assert text.startswith("![plot](data:image/png;base64,")
    assert "(gone: figure analysis/gone.png not found)" in text and "(up: figure ../secret.png not found)" in text
    html = markdown(text)
    assert html.count("<img") == 1


def test_manifests_are_found_where_each_analysis_nests_them():
    from laion_audit.report.audit_report import _input_assets, _manifest

    shard = {"00000": {"data_version": "v1"}}
    payload = {"inputs": {"clip": {"clip_tiny_s": "dv"}, "dataset": {"word_gender_counts": shard}}}
    assert _manifest(payload) == {"word_gender_counts": shard}
    grouped = {"by_version_set": {"a": {"inputs": ["clip_alt_text_similarity", "not_an_asset"]}}}
    assert _manifest(grouped) == {} and _input_assets(grouped) == ["clip_alt_text_similarity"]
    assert _manifest({"inputs": {"group_counts": shard}}) == {"group_counts": shard}
