"""`laion-audit models fetch --profile paper DIR`: stage the paper profile's weights on a connected machine.

Each model is fetched through its own library's mechanism (ultralytics' release assets for YOLO, the Hugging
Face hub for open_clip and transformers folders), into the layout the registry expects, and the fingerprints
are written to DIR/manifest.json. Copy DIR to the cluster's weights volume afterwards; pods never download.
Offline, the first download fails and the command says which model and why.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from laion_audit.models.registry import MANIFEST, PROFILES, ModelEntry, manifest_entry

# The hub repository holding an open_clip model as a `local-dir:`-loadable folder.
OPEN_CLIP_HUB_REPOS = {"ViT-B-16-SigLIP/webli": "timm/ViT-B-16-SigLIP"}
# Its pinned commit (a snapshot seen in public caches); the entry's own revision is open_clip's pretrained tag.
OPEN_CLIP_HUB_REVISIONS = {"ViT-B-16-SigLIP/webli": "41f575766f40e752fdd1383e9565b7f02388c1c4"}


class FetchError(RuntimeError):
    """A model could not be downloaded; the message names it and the cause."""


def _fetch_yolo(entry: ModelEntry, target: Path) -> None:
    from ultralytics.utils.downloads import attempt_download_asset

    target.parent.mkdir(parents=True, exist_ok=True)
    attempt_download_asset(str(target))
    if not target.is_file():
        raise FileNotFoundError(f"ultralytics did not produce {target}")


def _fetch_hub_folder(repo: str, target: Path, revision: str | None = None) -> None:
    from huggingface_hub import snapshot_download

    snapshot_download(repo_id=repo, local_dir=str(target), revision=revision)


def hub_revision(entry: ModelEntry) -> str | None:
    """The commit to download: a pinned 40-hex revision is passed to the hub; anything else (a tag such as
    open_clip's "webli" pretrained name, or "main") is not a hub commit and leaves the hub's default."""
    return entry.revision if re.fullmatch(r"[0-9a-f]{40}", entry.revision or "") else None


def _fetch_open_clip(entry: ModelEntry, target: Path) -> None:
    """open_clip's own download of "<name>/<tag>" into ``target`` (its cache_dir), where the loader finds it."""
    import open_clip

    architecture, _, tag = entry.source.partition("/")
    partial = target.with_name(target.name + ".partial")  # a failed download never looks staged
    partial.mkdir(parents=True, exist_ok=True)
    open_clip.create_model_and_transforms(architecture, pretrained=tag, cache_dir=str(partial))
    partial.rename(target)


def _fetcher(entry: ModelEntry) -> Callable[[Path], None]:
    if entry.family == "yolo":
        return lambda target: _fetch_yolo(entry, target)
    if entry.family == "open_clip_clip":
        return lambda target: _fetch_open_clip(entry, target)
    if entry.family == "open_clip":
        return lambda target: _fetch_hub_folder(OPEN_CLIP_HUB_REPOS[entry.source], target,
                                                OPEN_CLIP_HUB_REVISIONS.get(entry.source))
    return lambda target: _fetch_hub_folder(entry.source, target, hub_revision(entry))


def fetch_profile(profile: str, out_dir: str | Path) -> dict[str, dict]:
    if profile != "paper":
        raise ValueError("only the paper profile is downloaded; build the tiny one with `laion-audit models init-tiny`")
    out_dir = Path(out_dir)
    manifest: dict[str, dict] = {}
    for entry in PROFILES[profile]:
        target = out_dir / entry.path
        if not target.exists():
            try:
                _fetcher(entry)(target)
            except Exception as exc:
                raise FetchError(
                    f"could not download {entry.role} ({entry.source}) into {target}: {type(exc).__name__}: {exc}. "
                    "This command needs network access to the model hosts; run it on a connected machine and "
                    "copy the folder."
                ) from exc
        manifest[entry.role] = manifest_entry(target, family=entry.family, path=entry.path, source=entry.source,
                                              revision=entry.revision, profile=profile, random_weights=False)
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest
