"""Per-person annotations: YOLO boxes, crops, MLLM-ensemble votes, trained classifiers, labels and captions."""
