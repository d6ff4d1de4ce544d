#!/usr/bin/env bash
# An EmbeddingBag text classifier (eager: text_model.py + a state dict) with the built-in text_classifier handler and
# a plain-dict vocabulary (source_vocab.pt): no torchtext needed. Needs torch for $MAR_PYTHON (default python3).
cd "$(dirname "$0")"
source ../common.sh
"$MAR_PYTHON" build_model.py "$OUT"
archive --model-name news --version 1.0 --model-file text_model.py --serialized-file "$OUT/text_classifier.pt" \
  --extra-files "$OUT/index_to_name.json,$OUT/source_vocab.pt" --handler text_classifier
predict news text_1.txt text_2.txt text_3.txt text_4.txt
serve news empty.txt text_1.txt text_2.txt text_3.txt text_4.txt
