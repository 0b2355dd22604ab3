"""YOLO person detection on batches the loader workers already decoded and letterboxed.

``model.predict`` on PIL images letterboxes each image in the calling process, one after the other, while the
GPU waits. Here the workers do it (`Letterbox`), and the model process only copies a uint8 batch to the device,
runs the network and ultralytics' own NMS, and maps the boxes back with ultralytics' ``scale_boxes`` — the same
steps ``predict`` takes, with the same predictor (weights, fusing, half precision, device).

Every image is padded to the square ``imgsz`` (``LetterBox(auto=False)``), which is what ``predict`` does for a
batch of images of different shapes. (For a batch whose images all share one shape, ``predict`` pads only to a
multiple of the stride instead, so its boxes there depend on which images share the batch; ours never do.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from laion_audit.annotation.detection import Detection
from laion_audit.shards.images import decode_image


@dataclass(frozen=True)
class Letterbox:
    """Picklable worker-side preprocessing: bytes -> (HWC uint8 RGB tensor at ``imgsz``, (width, height))."""

    imgsz: tuple[int, int]
    stride: int

    def __call__(self, data: bytes) -> tuple[torch.Tensor, tuple[int, int]]:
        from ultralytics.data.augment import LetterBox

        image = decode_image(data)
        pixels = LetterBox(self.imgsz, auto=False, stride=self.stride)(image=np.asarray(image))
        return torch.from_numpy(np.ascontiguousarray(pixels)), image.size


class YoloBatches:
    """The predictor of a `PersonDetector`'s ultralytics model, fed prepared uint8 batches."""

    def __init__(self, detector):
        self.detector = detector
        if detector.model.predictor is None:
            # ultralytics builds its predictor (device, fused weights, imgsz checked against the stride) on the
            # first predict; one tiny image does it with the detector's own settings.
            detector.detect([Image.new("RGB", (64, 64))])
        self.predictor = detector.model.predictor
        self.device = self.predictor.device

    @property
    def geometry(self) -> Letterbox:
        imgsz = self.predictor.imgsz
        imgsz = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
        return Letterbox(imgsz, int(torch.as_tensor(self.predictor.model.stride).max()))

    @property
    def on_cuda(self) -> bool:
        return self.device.type == "cuda"

    def detect(self, pixels: torch.Tensor, sizes: list[tuple[int, int]]) -> list[list[Detection]]:
        """Detections per image of a (B, H, W, 3) uint8 RGB batch, in the coordinates of each upright image."""
        from ultralytics.utils import nms, ops

        if not len(sizes):
            return []
        predictor, args = self.predictor, self.predictor.args
        model = predictor.model
        with torch.inference_mode():
            x = pixels.to(self.device, non_blocking=True).permute(0, 3, 1, 2).contiguous()
            x = (x.half() if model.fp16 else x.float()).div_(255)
            preds = model(x, augment=False, embed=None)
            kept = nms.non_max_suppression(
                preds, args.conf, args.iou, args.classes, args.agnostic_nms, max_det=args.max_det,
                nc=0 if args.task == "detect" else len(model.names), end2end=getattr(model, "end2end", False),
                rotated=args.task == "obb",
            )
            out = []
            for pred, (width, height) in zip(kept, sizes, strict=True):
                boxes = ops.scale_boxes(x.shape[2:], pred[:, :4].clone(), (height, width)).cpu().tolist()
                conf = pred[:, 4].cpu().tolist()
                out.append([Detection(*map(float, box), float(c)) for box, c in zip(boxes, conf, strict=True)])
        return out
