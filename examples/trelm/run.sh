#!/usr/bin/env bash
# TreLM recipe: an English-only tiny encoder transferred to German through every TreLM stage, against
# the same model trained from scratch on the same German text for the same total number of updates.
# German MLM perplexity on FLORES-101 devtest (never trained on) and German POS accuracy on UD German GSD
# test after fine-tuning on GSD dev (xsl-eval pos). See examples/trelm/README.md.
#
#   OUT=work/trelm bash examples/trelm/run.sh
#
# Defaults are sized for 2 shared CPU cores: xsl_trelm_tiny (2 layers + TRILayer, 128 hidden).
set -euo pipefail

DATA=${DATA:-../shared/data}
OUT=${OUT:-work/trelm}
EN_UPDATES=${EN_UPDATES:-600}          # English MLM pretraining (the "given" English model)
COMMONALITY_UPDATES=${COMMONALITY_UPDATES:-100}
UPPER_UPDATES=${UPPER_UPDATES:-100}     # stage 2a (en -> de, lower half frozen)
LOWER_UPDATES=${LOWER_UPDATES:-100}     # stage 2b (de -> en, upper half frozen)
LANGUAGE_UPDATES=${LANGUAGE_UPDATES:-200}
BATCH=${BATCH:-32}                      # pairs (stages 1-2) / sentences per update
LR=${LR:-5e-4}
EN_VOCAB=${EN_VOCAB:-6000}
JOINT_VOCAB=${JOINT_VOCAB:-8000}
ADV_EPOCHS=${ADV_EPOCHS:-5}             # MUSE schedule scaled down (official: 50 epochs of 1e6 words)
EPOCH_SIZE=${EPOCH_SIZE:-32000}
DIS_HIDDEN=${DIS_HIDDEN:-512}           # official: 2048
POS_EPOCHS=${POS_EPOCHS:-10}
POS_LR=${POS_LR:-5e-4}                  # a tiny model needs more than XTREME's 2e-5 for 10 epochs of 800 sentences
FASTTEXT_EPOCHS=${FASTTEXT_EPOCHS:-10}  # official: 10
SEED=${SEED:-1}
TOTAL_UPDATES=$((COMMONALITY_UPDATES + UPPER_UPDATES + LOWER_UPDATES + LANGUAGE_UPDATES))
PLUGIN=$(cd "$(dirname "$0")/../.." && pwd)/xsl_fairseq
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

if [ ! -d "$DATA/wmt_newstest/deu-eng" ] || [ ! -d "$DATA/ud/de_gsd" ] || [ ! -d "$DATA/flores101" ]; then
  echo "trelm: $DATA lacks wmt_newstest/deu-eng, ud/de_gsd or flores101; set DATA to the shared data folder" >&2
  exit 2
fi
mkdir -p "$OUT/text" "$OUT/results"
TIMES=$OUT/results/stages.tsv
[ -f "$TIMES" ] || printf "stage\tupdates\tseconds\n" > "$TIMES"

timed() {  # timed NAME UPDATES command...: run and append the wall time to stages.tsv
  local name=$1 updates=$2 t0
  shift 2
  t0=$(date +%s)
  "$@"
  printf "%s\t%s\t%s\n" "$name" "$updates" "$(( $(date +%s) - t0 ))" >> "$TIMES"
}

train_common=(--user-dir "$PLUGIN" --cpu --optimizer adam --adam-betas "(0.9,0.98)" --adam-eps 1e-6
  --weight-decay 0.01 --clip-norm 5.0 --lr "$LR" --lr-scheduler polynomial_decay --batch-size "$BATCH"
  --log-format simple --log-interval 50 --no-epoch-checkpoints --num-workers 0 --seed "$SEED"
  --max-positions 128 --disable-validation --save-interval-updates 0)

prepare_text() {
  # English pretraining text: the English sides of the non-German WMT test sets and TICO-19.
  cat "$DATA"/wmt_newstest/eng-{fra,spa,rus,tur,hin,jpn,zho}/*.eng "$DATA"/tico19/eng-*/tico19-test.eng \
    > "$OUT/text/english.txt"
  # German-English pairs for the transfer; their German side is the only German any model trains on.
  cat "$DATA/wmt_newstest/deu-eng/newstest2017.eng" "$DATA/wmt_newstest/deu-eng/newstest2018.eng" \
    "$DATA/ntrex/newstest2019-src.eng.txt" > "$OUT/text/para.en"
  cat "$DATA/wmt_newstest/deu-eng/newstest2017.deu" "$DATA/wmt_newstest/deu-eng/newstest2018.deu" \
    "$DATA/ntrex/newstest2019-ref.deu.txt" > "$OUT/text/para.de"
  wc -l "$OUT/text/english.txt" "$OUT/text/para.en"
}

english_model() {  # the English-only tiny encoder (the user's starting point)
  xsl-prep spm-train --input "$OUT/text/english.txt" --model-prefix "$OUT/english/spm" --vocab-size "$EN_VOCAB"
  xsl-prep binarize-mono --input "$OUT/text/english.txt" --spm "$OUT/english/spm.model" \
    --dict "$OUT/english/dict.txt" --destdir "$OUT/english/mono" --valid-lines 200
  timed english "$EN_UPDATES" fairseq-train "$OUT/english/mono" "${train_common[@]}" \
    --task xsl_masked_lm --criterion xsl_masked_lm --arch xsl_roberta_tiny \
    --sample-break-mode complete --tokens-per-sample 128 --warmup-updates 100 \
    --total-num-update "$EN_UPDATES" --max-update "$EN_UPDATES" --lr 1e-3 \
    --save-dir "$OUT/english/checkpoints" --tensorboard-logdir "$OUT/tensorboard/english"
  cp "$OUT/english/dict.txt" "$OUT/english/spm.model" "$OUT/english/checkpoints/"
}

vocabulary() {  # stage 0: joint vocabulary, aligned fastText vectors, initial xsl_trelm checkpoint
  timed vocab 0 xsl-prep trelm-vocab --english-checkpoint "$OUT/english/checkpoints/checkpoint_last.pt" \
    --english-text "$OUT/text/para.en" "$OUT/text/english.txt" --new-text "$OUT/text/para.de" \
    --destdir "$OUT/vocab" --vocab-size "$JOINT_VOCAB" --arch xsl_trelm_tiny \
    --fasttext-epochs "$FASTTEXT_EPOCHS" --adv-epochs "$ADV_EPOCHS" --epoch-size "$EPOCH_SIZE" --dis-hidden "$DIS_HIDDEN" \
    --source-normalize center --align-rescale --seed "$SEED" | tee "$OUT/results/trelm_vocab.txt"
}

align() {  # word-aligned pairs (eflomal) for the CdLM stages; FLORES-101 de/en as the held-out MLM set
  xsl-prep trelm-align --src "$OUT/text/para.en" --tgt "$OUT/text/para.de" --tgt-lang de \
    --spm "$OUT/vocab/spm.model" --dict "$OUT/vocab/dict.txt" --destdir "$OUT/align"
  xsl-prep trelm-align --src "$DATA/flores101/devtest/eng.devtest" --tgt "$DATA/flores101/devtest/deu.devtest" \
    --tgt-lang de --spm "$OUT/vocab/spm.model" --dict "$OUT/vocab/dict.txt" --destdir "$OUT/heldout"
}

stage() {  # stage NAME UPDATES INIT_CHECKPOINT [SAVE_NAME]
  local name=$1 updates=$2 init=$3 save=${4:-$1}
  rm -f "$OUT/checkpoints/$save/checkpoint_last.pt"
  timed "$save" "$updates" fairseq-train "$OUT/align" "${train_common[@]}" \
    --task xsl_trelm_cdlm --criterion xsl_trelm_cdlm --trelm-stage "$name" --arch xsl_trelm_tiny \
    ${init:+--finetune-from-model "$init"} --warmup-updates $((updates / 10)) \
    --total-num-update "$updates" --max-update "$updates" \
    --save-dir "$OUT/checkpoints/$save" --tensorboard-logdir "$OUT/tensorboard/$save"
  cp "$OUT/vocab/dict.txt" "$OUT/vocab/spm.model" "$OUT/checkpoints/$save/"
}

transfer() {  # stages 1, 2a, 2b, 3, 4
  stage commonality "$COMMONALITY_UPDATES" "$OUT/vocab/model.pt"
  stage upper "$UPPER_UPDATES" "$OUT/checkpoints/commonality/checkpoint_last.pt"
  stage lower "$LOWER_UPDATES" "$OUT/checkpoints/commonality/checkpoint_last.pt"
  mkdir -p "$OUT/checkpoints/combined"
  timed combine 0 xsl-prep trelm-combine --upper "$OUT/checkpoints/upper/checkpoint_last.pt" \
    --lower "$OUT/checkpoints/lower/checkpoint_last.pt" --output "$OUT/checkpoints/combined/model.pt"
  stage language "$LANGUAGE_UPDATES" "$OUT/checkpoints/combined/model.pt"
}

scratch() {  # the baseline: same model, vocabulary, German text and batches, random init, all updates
  stage language "$TOTAL_UPDATES" "" scratch
}

perplexity() {  # German MLM perplexity on FLORES-101 devtest (same masks for every model: same seed)
  for name in language scratch; do
    fairseq-validate "$OUT/heldout" --user-dir "$PLUGIN" --task xsl_trelm_cdlm --cpu --path "$OUT/checkpoints/$name/checkpoint_last.pt" \
      --valid-subset train --batch-size 32 --num-workers 0 --seed "$SEED" \
      --model-overrides "{'data': '$OUT/heldout', 'trelm_stage': 'language'}" 2>&1 \
      | tee "$OUT/results/ppl_$name.log" | grep "valid on" || true
  done
}

pos() {  # German POS: fine-tune on UD German GSD dev, evaluate on GSD test
  for name in language scratch; do
    xsl-eval pos --checkpoint "$OUT/checkpoints/$name/checkpoint_last.pt" \
      --train "$DATA/ud/de_gsd/de_gsd-ud-dev.conllu" --eval-dir "$DATA/ud" --split test --languages de \
      --english de --epochs "$POS_EPOCHS" --lr "$POS_LR" --out "$OUT/results/pos_$name"
  done
}

summary() {
  python "$(dirname "$0")/summarize.py" "$OUT"
}

STAGES=${STAGES:-"prepare_text english_model vocabulary align transfer scratch perplexity pos summary"}
for s in $STAGES; do
  echo "=== trelm: $s ($(date -u +%H:%M:%S), load $(cut -d' ' -f1 /proc/loadavg))"
  "$s"
done
