#!/usr/bin/env bash
# The main job: raw multilingual text from ../shared/data -> joint sentencepiece ->
# data-bin -> MLM pretraining of xsl_roberta_tiny with TensorBoard logs -> zero-shot
# XNLI (fine-tune on English dev, accuracy on the other dev languages).
# Later objectives plug in as extra stages reading the same data-bin/.
#
#   DATA=../shared/data OUT=work/demo UPDATES=400 bash examples/demo/run.sh
set -euo pipefail

DATA=${DATA:-../shared/data}
OUT=${OUT:-work/demo}
UPDATES=${UPDATES:-600}
VOCAB=${VOCAB:-12000}
SEED=${SEED:-1}
BIN=$OUT/data-bin
start=$(date +%s)

if [ ! -d "$DATA/ntrex" ]; then
  echo "demo: $DATA/ntrex not found; set DATA to the shared data folder" >&2
  exit 2
fi

# Non-English sides of wmt_newstest / ntrex / tico19, plus their English sides.
mapfile -t TEXT < <(
  ls "$DATA"/ntrex/newstest2019-*.txt
  ls "$DATA"/tico19/eng-*/tico19-test.*
  ls "$DATA"/wmt_newstest/*-*/newstest*
)

stage_sentencepiece() {
  xsl-prep spm-train --input "${TEXT[@]}" --model-prefix "$BIN/spm" \
    --vocab-size "$VOCAB" --max-lines-per-file 2000 --seed "$SEED"
}

stage_binarize() {
  # --dedupe: tico19's English side repeats for every language pair.
  xsl-prep binarize-mono --input "${TEXT[@]}" --spm "$BIN/spm.model" --dict "$BIN/dict.txt" \
    --destdir "$BIN/mono" --dedupe --valid-lines 1000 --workers 2 --seed "$SEED"
  # One parallel pair, for the cross-lingual objectives that later stages add.
  xsl-prep binarize-para --src en --tgt de --spm "$BIN/spm.model" --dict "$BIN/dict.txt" \
    --destdir "$BIN/para/en-de" --valid-lines 200 --max-tokens-per-side 126 \
    --train "$DATA/ntrex/newstest2019-src.eng.txt" "$DATA/ntrex/newstest2019-ref.deu.txt" \
    --train "$DATA/wmt_newstest/deu-eng/newstest2018.eng" "$DATA/wmt_newstest/deu-eng/newstest2018.deu"
}

stage_pretrain_mlm() {
  fairseq-train "$BIN/mono" --user-dir xsl_fairseq \
    --task xsl_masked_lm --criterion xsl_masked_lm --arch xsl_roberta_tiny \
    --sample-break-mode complete --tokens-per-sample 128 --skip-invalid-size-inputs-valid-test \
    --optimizer adam --adam-betas '(0.9,0.98)' --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0 \
    --lr 1e-3 --lr-scheduler polynomial_decay --warmup-updates 40 --total-num-update "$UPDATES" \
    --max-update "$UPDATES" --batch-size 32 --dropout 0.1 --attention-dropout 0.1 \
    --cpu --num-workers 0 --seed "$SEED" \
    --log-format simple --log-interval 25 --validate-interval-updates 300 \
    --save-interval-updates 300 --keep-interval-updates 1 --no-epoch-checkpoints \
    --save-dir "$OUT/checkpoints/mlm" --tensorboard-logdir "$OUT/tensorboard/mlm"
}

stage_zero_shot_xnli() {
  # English XNLI dev is the training set here, so English is not evaluated.
  # CPU-sized overrides for a tiny model trained from scratch: a higher learning rate
  # and 3 epochs instead of XTREME's 2e-5 x 5 (recorded in results.json).
  local others
  others=$(ls "$DATA"/xnli/dev-*.tsv | sed -E 's/.*dev-(.*)\.tsv/\1/' | grep -vx en | paste -sd, -)
  xsl-eval sentence-pair --checkpoint "$OUT/checkpoints/mlm/checkpoint_last.pt" \
    --train "$DATA/xnli/dev-en.tsv" --eval-dir "$DATA/xnli" --split dev --languages "$others" \
    --lr 1e-4 --epochs 3 --batch-size 32 --seeds "$SEED" --out "$OUT/eval/xnli"
}

mkdir -p "$BIN"
stage_sentencepiece
stage_binarize
stage_pretrain_mlm
stage_zero_shot_xnli

echo
echo "demo finished in $(( $(date +%s) - start )) s"
echo "checkpoint:  $OUT/checkpoints/mlm/checkpoint_last.pt"
echo "tensorboard: tensorboard --logdir $OUT/tensorboard   (fine-tuning: $OUT/eval/xnli/tensorboard)"
echo "zero-shot XNLI: $OUT/eval/xnli/results.md"
