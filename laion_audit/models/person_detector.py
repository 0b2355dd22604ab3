"""YOLO11 person detection through ultralytics, the same call for the tiny and the paper weights."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from laion_audit.annotation.detection import Detection


class PersonDetector:
    """Person class only (COCO class 0); predict defaults of the paper: conf 0.25, iou 0.7, imgsz 640."""

    def __init__(self, weights: str | Path, *, name: str, fingerprint: str, random_weights: bool = False,
                 conf: float = 0.25, iou: float = 0.7, imgsz: int = 640, max_det: int = 300,
                 device: str | None = None):
        from ultralytics import YOLO

        self.model = YOLO(str(weights))
        self.name, self.fingerprint, self.random_weights = name, fingerprint, random_weights
        self.conf, self.iou, self.imgsz, self.max_det, self.device = conf, iou, imgsz, max_det, device

    def detect(self, images: Sequence[Image.Image]) -> list[list[Detection]]:
        if not images:
            return []
        results = self.model.predict(list(images), classes=[0], conf=self.conf, iou=self.iou, imgsz=self.imgsz,
                                     max_det=self.max_det, device=self.device, verbose=False)
        out = []
        for result in results:
            boxes = result.boxes
            xyxy = boxes.xyxy.cpu().tolist()
            conf = boxes.conf.cpu().tolist()
            out.append([Detection(*map(float, box), float(c)) for box, c in zip(xyxy, conf, strict=True)])
        return out
