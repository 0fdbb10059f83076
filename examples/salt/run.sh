#!/usr/bin/env bash
# SALT recipe (self-augmented fine-tuning; following the paper's description, details not
# published): multilingual-e5-small imported and vocabulary-trimmed, its fresh MLM head
# warmed up alone (--trainable-parameters), then plain fine-tuning vs SALT variants on
# English XNLI / PAWS-X dev, zero-shot accuracy per language. See examples/salt/README.md.
#
#   OUT=work/salt bash examples/salt/run.sh                         # everything (days on 2 CPU cores)
#   STAGES="encoder warmup" OUT=work/salt bash examples/salt/run.sh # head warm-up + accuracy only
#   TASKS=xnli VARIANTS="plain salt" SEEDS=1 TRAIN_EXAMPLES=256 EPOCHS=1 \
#     EVAL_LANGUAGES=en,de,ru,sw,zh OUT=work/salt bash examples/salt/run.sh   # a small slice
#
# Every variant of one task runs the same xsl-eval command (same model, data, updates,
# batches, seeds); only --salt / --fairseq-args differ.
set -euo pipefail

DATA=${DATA:-../shared/data}
OUT=${OUT:-work/salt}
STAGES=${STAGES:-encoder warmup compare}
SEED=${SEED:-1}
# Head warm-up: MLM on NTREX text of the XNLI / PAWS-X languages, LM head only.
WARMUP_UPDATES=${WARMUP_UPDATES:-400}
WARMUP_BATCH=${WARMUP_BATCH:-16}          # sequences per update
WARMUP_TOKENS=${WARMUP_TOKENS:-64}        # tokens per sequence (--tokens-per-sample)
WARMUP_LR=${WARMUP_LR:-2e-3}              # a fresh head: higher than encoder fine-tuning rates
HELD_OUT_LINES=${HELD_OUT_LINES:-1000}    # NTREX lines held out to score the head (valid split)
ACCURACY_BATCHES=${ACCURACY_BATCHES:-30}  # valid batches scored before / after (of WARMUP_BATCH)
# Comparison.
TASKS=${TASKS:-xnli pawsx}                # also: pos (UD en_ewt train -> UD test, xsl_salt_token_labeling)
VARIANTS=${VARIANTS:-plain salt cs mixup random}
SEEDS=${SEEDS:-1,2,3}
HELD_OUT_ITEMS=${HELD_OUT_ITEMS:-500}     # evaluated items of every language, never trained on
TRAIN_EXAMPLES=${TRAIN_EXAMPLES:-}        # cap on English training pairs (empty = all after the held-out ones)
EPOCHS=${EPOCHS:-2}
LR=${LR:-3e-5}
BATCH=${BATCH:-32}
MAX_SEQ_LENGTH=${MAX_SEQ_LENGTH:-128}
EVAL_LANGUAGES=${EVAL_LANGUAGES:-}        # comma-separated; empty = every language of the task
# (EVAL_LANGUAGES_XNLI / EVAL_LANGUAGES_PAWSX override it for one task)
EVAL_EXAMPLES=${EVAL_EXAMPLES:-}          # score only the first N held-out items per language (CPU budget)
SALT_ARGS=${SALT_ARGS:-}                  # extra xsl_salt options for every SALT variant
FINETUNE_ARGS=${FINETUNE_ARGS:---freeze-embeddings}   # CPU budget: frozen word embeddings (recorded)

E5=$OUT/e5
BIN=$OUT/data-bin
WARM=$OUT/checkpoints/warmup/checkpoint_last.pt
start=$(date +%s)

if [ ! -d "$DATA/xnli" ] || [ ! -d "$DATA/ntrex" ]; then
  echo "salt: $DATA/xnli or $DATA/ntrex not found; set DATA to the shared data folder" >&2
  exit 2
fi
mkdir -p "$OUT"
NTREX_LANGS="eng arb bul deu ell fra hin jpn kor rus spa swa tha tur urd vie zho-CN"
TEXT=()
for lang in $NTREX_LANGS; do
  if [ "$lang" = eng ]; then TEXT+=("$DATA/ntrex/newstest2019-src.eng.txt")
  else TEXT+=("$DATA/ntrex/newstest2019-ref.$lang.txt"); fi
done

stage_encoder() {
  xsl-prep import-encoder --from-e5 --destdir "$OUT/e5-full"
  # Keep the pieces of the warm-up text and of every XNLI / PAWS-X dev file.
  xsl-prep trim-vocab --model-dir "$OUT/e5-full" --input "${TEXT[@]}" "$DATA"/xnli/dev-*.tsv \
    "$DATA"/pawsx/dev-*.tsv --destdir "$E5"
  rm -rf "$OUT/e5-full"
  xsl-prep binarize-mono --input "${TEXT[@]}" --spm "$E5/sentencepiece.bpe.model" --dict "$E5/dict.txt" \
    --destdir "$BIN/mono" --dedupe --valid-lines "$HELD_OUT_LINES" --workers 1 --seed "$SEED"
}

head_accuracy() {  # $1 checkpoint, $2 label: masked-token accuracy of the LM head on the held-out lines
  fairseq-validate "$BIN/mono" --user-dir xsl_fairseq --path "$1" --task xsl_masked_lm \
    --criterion xsl_masked_lm --valid-subset valid --batch-size "$WARMUP_BATCH" \
    --max-valid-steps "$ACCURACY_BATCHES" --skip-invalid-size-inputs-valid-test --cpu --num-workers 0 --seed "$SEED" \
    --model-overrides "{'data': '$BIN/mono', 'tokens_per_sample': $WARMUP_TOKENS, 'sample_break_mode': 'complete'}" \
    2>&1 | tee "$OUT/head_accuracy_$2.log" | grep -E "valid on|\| valid \|" || true
}

stage_warmup() {
  local t0 t1
  head_accuracy "$E5/model.pt" before
  t0=$(date +%s)
  fairseq-train "$BIN/mono" --user-dir xsl_fairseq --task xsl_masked_lm --criterion xsl_masked_lm \
    --arch xsl_e5_small --finetune-from-model "$E5/model.pt" --trainable-parameters '^encoder\.lm_head\.' \
    --sample-break-mode complete --tokens-per-sample "$WARMUP_TOKENS" --skip-invalid-size-inputs-valid-test \
    --batch-size "$WARMUP_BATCH" --optimizer adam --adam-betas '(0.9,0.98)' --adam-eps 1e-6 --weight-decay 0.01 \
    --clip-norm 1.0 --lr "$WARMUP_LR" --lr-scheduler polynomial_decay --warmup-updates $((WARMUP_UPDATES / 10)) \
    --total-num-update "$WARMUP_UPDATES" --max-update "$WARMUP_UPDATES" --cpu --num-workers 0 --seed "$SEED" \
    --log-format simple --log-interval 25 --disable-validation --no-epoch-checkpoints \
    --save-interval-updates "$WARMUP_UPDATES" --keep-interval-updates 1 --no-save-optimizer-state \
    --save-dir "$OUT/checkpoints/warmup" --tensorboard-logdir "$OUT/tensorboard/warmup" 2>&1 \
    | tee "$OUT/warmup.log" | grep -E "train_inner|\| train \|" || true
  t1=$(date +%s)
  rm -f "$OUT"/checkpoints/warmup/checkpoint_*_*.pt  # the interval copy of checkpoint_last.pt
  [ -f "$WARM" ] || { echo "salt: warm-up wrote no checkpoint; see $OUT/warmup.log" >&2; exit 1; }
  echo "warmup_seconds=$((t1 - t0)) updates=$WARMUP_UPDATES batch=$WARMUP_BATCH tokens=$WARMUP_TOKENS" \
    | tee "$OUT/warmup_time.txt"
  head_accuracy "$WARM" after
}

variant_args() {  # the only thing that differs between the rows of the table
  case "$1" in
    plain) echo "" ;;
    salt) echo "--salt online" ;;
    cs) echo "--salt online --salt-extra=--salt-mix-prob 0" ;;
    mixup) echo "--salt online --salt-extra=--salt-cs-prob 0" ;;
    random) echo "--salt online --salt-extra=--salt-random-substitutes" ;;
    offline) echo "--salt offline --salt-extra=--salt-mix-prob 0" ;;
    *) echo "salt: unknown variant '$1' (plain salt cs mixup random offline)" >&2; exit 2 ;;
  esac
}

stage_compare() {
  [ -f "$WARM" ] || { echo "salt: $WARM not found; run the warmup stage first" >&2; exit 2; }
  # refuse an impossible task x variant pair before any run starts
  if [[ " $TASKS " == *" pos "* && " $VARIANTS " == *" offline "* ]]; then
    echo "salt: the offline variant is for sentence pairs only (token labelling takes online substitutes)" >&2
    exit 2
  fi
  local task variant spec salt_flag extra languages languages_var all_languages
  local -a task_args
  for task in $TASKS; do
    # per task: the xsl-eval subcommand, its English training file, evaluation folder and split
    case "$task" in
      xnli|pawsx) task_args=(sentence-pair --train "$DATA/$task/dev-en.tsv" --eval-dir "$DATA/$task" --split dev
                             --held-out-items "$HELD_OUT_ITEMS")
                  all_languages=$(ls "$DATA/$task"/dev-*.tsv | sed -E 's/.*dev-(.*)\.tsv/\1/' | paste -sd, -) ;;
      pos) task_args=(pos --train "$DATA/ud/en_ewt/en_ewt-ud-train.conllu" --eval-dir "$DATA/ud" --split test)
           all_languages=$(ls "$DATA"/ud/*/*-ud-test.conllu | sed -E 's/.*\/([a-z]+)_[a-z]+-ud-test\.conllu/\1/' \
                           | paste -sd, -) ;;
      *) echo "salt: unknown task '$task' (xnli pawsx pos)" >&2; exit 2 ;;
    esac
    languages_var=EVAL_LANGUAGES_${task^^}
    languages=${!languages_var:-${EVAL_LANGUAGES:-}}
    languages=${languages:-$all_languages}
    for variant in $VARIANTS; do
      spec=$(variant_args "$variant")
      salt_flag=${spec%%--salt-extra=*}
      extra=""
      [[ "$spec" == *--salt-extra=* ]] && extra=${spec#*--salt-extra=}
      [ -n "$salt_flag" ] && [ -n "$SALT_ARGS" ] && extra="$extra $SALT_ARGS"
      # shellcheck disable=SC2086
      xsl-eval "${task_args[@]}" --checkpoint "$WARM" --dict "$E5/dict.txt" --spm "$E5/sentencepiece.bpe.model" \
        --languages "$languages" ${TRAIN_EXAMPLES:+--max-train-examples "$TRAIN_EXAMPLES"} \
        ${EVAL_EXAMPLES:+--max-eval-examples "$EVAL_EXAMPLES"} \
        --seeds "$SEEDS" --lr "$LR" --epochs "$EPOCHS" --batch-size "$BATCH" --max-seq-length "$MAX_SEQ_LENGTH" \
        $salt_flag --fairseq-args="$FINETUNE_ARGS $extra" --out "$OUT/eval/$task/$variant"
    done
  done
  python examples/salt/summarize.py "$OUT"
}

for stage in $STAGES; do
  case "$stage" in
    encoder) stage_encoder ;;
    warmup) stage_warmup ;;
    compare) stage_compare ;;
    *) echo "salt: unknown stage '$stage' (encoder warmup compare)" >&2; exit 2 ;;
  esac
done
echo "salt ($STAGES) finished in $(( $(date +%s) - start )) s; results: $OUT/summary.md"
