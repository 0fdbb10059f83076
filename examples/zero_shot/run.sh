#!/usr/bin/env bash
# Zero-shot cross-lingual evaluation of one pretrained checkpoint on every task of
# ../shared/data: fine-tune on English, evaluate the other languages.
#
#   CKPT=work/demo/checkpoints/mlm/checkpoint_last.pt OUT=work/zero_shot bash examples/zero_shot/run.sh
#
# FAST=1 (default) caps data and epochs so that the whole run fits a 2-core CPU in
# minutes with a tiny model; FAST=0 uses XTREME's settings and the full dev sets.
set -euo pipefail

DATA=${DATA:-../shared/data}
CKPT=${CKPT:?set CKPT to a pretrained fairseq checkpoint}
OUT=${OUT:-work/zero_shot}
SEED=${SEEDS:-1}
FAST=${FAST:-1}

if [ "$FAST" = 1 ]; then
  CAPS=(--max-train-examples 2000 --max-eval-examples 500 --epochs 3 --lr 1e-4)
  QA_CAPS=(--max-train-examples 1148 --max-eval-examples 300 --epochs 3 --lr 1e-4)
else
  CAPS=()
  QA_CAPS=()
fi

timed() {  # name, command...
  local name=$1; shift
  local start=$(date +%s)
  "$@"
  echo "$name: $(( $(date +%s) - start )) s" | tee -a "$OUT/wall_times.txt"
}

mkdir -p "$OUT"
: > "$OUT/wall_times.txt"
timed xnli xsl-eval sentence-pair --checkpoint "$CKPT" --train "$DATA/xnli/dev-en.tsv" \
  --eval-dir "$DATA/xnli" --split dev --seeds "$SEED" --out "$OUT/xnli" "${CAPS[@]}"
timed pawsx xsl-eval sentence-pair --checkpoint "$CKPT" --train "$DATA/pawsx/dev-en.tsv" \
  --eval-dir "$DATA/pawsx" --split dev --seeds "$SEED" --out "$OUT/pawsx" "${CAPS[@]}"
timed mlqa xsl-eval qa --checkpoint "$CKPT" --train "$DATA/mlqa/dev/dev-context-en-question-en.json" \
  --eval-dir "$DATA/mlqa/dev" --split dev --seeds "$SEED" --out "$OUT/mlqa" "${QA_CAPS[@]}"
timed ner xsl-eval ner --checkpoint "$CKPT" --train "$DATA/uner/en_ewt/en_ewt-ud-dev.iob2" \
  --eval-dir "$DATA/masakhaner/v1" --split dev --seeds "$SEED" --out "$OUT/ner" "${CAPS[@]}"
timed pos xsl-eval pos --checkpoint "$CKPT" --train "$DATA/ud/en_ewt/en_ewt-ud-train.conllu" \
  --eval-dir "$DATA/ud" --split test --seeds "$SEED" --out "$OUT/pos" "${CAPS[@]}"
timed flores xsl-eval retrieval --checkpoint "$CKPT" --eval-dir "$DATA/flores101" --split devtest \
  --out "$OUT/flores"

for task in xnli pawsx mlqa ner pos flores; do
  echo; cat "$OUT/$task/results.md"
done
echo; cat "$OUT/wall_times.txt"
