#!/usr/bin/env bash
# Meta-pretraining recipe (Chi et al., arXiv 2109.11129; following the paper's description,
# details not published): phase 1 English MLM, then multilingual MLM from update P1, against
# single-phase multilingual MLM with the same model, updates and batches per update.
# See examples/meta_pretraining/README.md.
#
#   START=small OUT=work/meta bash examples/meta_pretraining/run.sh   # from scratch, 4 x 256 model
#   START=e5    OUT=work/meta bash examples/meta_pretraining/run.sh   # continued pretraining of e5-small
#
# Scores: small = xsl-eval pos (UD test, English = generalisation, others = transfer),
# xsl-eval retrieval (FLORES-101 devtest) and held-out MLM perplexity per language;
# e5 = xsl-eval sentence-pair on XNLI dev (--held-out-items 500). CPU caps are env variables.
set -euo pipefail

DATA=${DATA:-../shared/data}
OUT=${OUT:-work/meta}
START=${START:-small}               # small | e5
SEED=${SEED:-1}
LANGS=(en de fr es ru)              # pretraining languages; en is phase 1
if [ "$START" = small ]; then
  UPDATES=${UPDATES:-1200}          # total updates of each run (meta and baseline)
  P1=${P1:-600}                     # phase-1 (English) updates of the meta run
  BATCH=${BATCH:-16}
  LR=${LR:-1e-3}
  WARMUP=${WARMUP:-100}
else
  UPDATES=${UPDATES:-40}
  P1=${P1:-20}
  BATCH=${BATCH:-8}
  LR=${LR:-3e-5}
  WARMUP=${WARMUP:-4}
  HEAD_UPDATES=${HEAD_UPDATES:-30}  # LM-head warm-up (encoder frozen) before either run
  HEAD_LR=${HEAD_LR:-1e-3}
fi
RAMP=${RAMP:-0}                     # --meta-ramp-updates
ALPHA=${ALPHA:-0.3}                 # --multilang-sampling-alpha
TOKENS=${TOKENS:-64}                # --tokens-per-sample (small: ~1k tokens per update on 2 cores)
MAX_LINES=${MAX_LINES:-4000}        # text lines read per source file
POS_TRAIN=${POS_TRAIN:-2000}        # English UD sentences fine-tuned on
POS_EPOCHS=${POS_EPOCHS:-3}
POS_EVAL=${POS_EVAL:-500}           # UD test sentences per language
FLORES_EVAL=${FLORES_EVAL:-500}     # FLORES devtest sentences per language
XNLI_TRAIN=${XNLI_TRAIN:-1990}      # English XNLI pairs after the 500 held-out ones (all)
XNLI_EPOCHS=${XNLI_EPOCHS:-2}
XNLI_LANGUAGES=${XNLI_LANGUAGES:-en,de,fr,es,ru,ar,bg,el,hi,sw,th,tr,ur,vi,zh}
RUN=$OUT/$START
BIN=$RUN/data-bin
mkdir -p "$RUN/logs"
echo "# run.sh START=$START started $(date -u +%FT%TZ)" >> "$RUN/wall_times.txt"

if [ ! -d "$DATA/ntrex" ] || [ ! -d "$DATA/ud" ]; then
  echo "meta_pretraining: $DATA/ntrex or $DATA/ud not found; set DATA to the shared data folder" >&2
  exit 2
fi

timed() {  # name, command...: runs it, appends its wall time to wall_times.txt
  local name=$1; shift
  local t0=$(date +%s)
  "$@"
  echo "$name $(( $(date +%s) - t0 )) s (load $(cut -d' ' -f1 /proc/loadavg))" | tee -a "$RUN/wall_times.txt"
}

# Monolingual text per language: wmt_newstest, ntrex and tico19 (never FLORES, the retrieval
# test, nor UD / XNLI). English = the English sides of the same corpora (deduplicated).
stage_text() {
  mkdir -p "$RUN/text"
  local d=$DATA
  cat_head() { local out=$1; shift; : > "$out"; for f in "$@"; do head -n "$MAX_LINES" "$f" >> "$out"; done; }
  cat_head "$RUN/text/de.txt" "$d"/wmt_newstest/deu-eng/newstest201?.deu "$d/ntrex/newstest2019-ref.deu.txt"
  cat_head "$RUN/text/fr.txt" "$d"/wmt_newstest/eng-fra/newstest201?.fra "$d/ntrex/newstest2019-ref.fra.txt" \
    "$d/tico19/eng-fra/tico19-test.fra"
  cat_head "$RUN/text/es.txt" "$d"/wmt_newstest/eng-spa/newstest201?.spa "$d/ntrex/newstest2019-ref.spa.txt"
  cat_head "$RUN/text/ru.txt" "$d"/wmt_newstest/eng-rus/newstest201?.rus "$d/ntrex/newstest2019-ref.rus.txt" \
    "$d/tico19/eng-rus/tico19-test.rus"
  cat_head "$RUN/text/en.txt" "$d"/wmt_newstest/{deu-eng,eng-fra,eng-spa,eng-rus}/newstest201?.eng \
    "$d/ntrex/newstest2019-src.eng.txt" "$d"/tico19/eng-{fra,rus}/tico19-test.eng
  wc -l "$RUN"/text/*.txt
}

stage_vocab() {  # sets SPM, DICT, START_ARGS
  if [ "$START" = small ]; then
    [ -f "$BIN/spm.model" ] || xsl-prep spm-train --input "$RUN"/text/*.txt --model-prefix "$BIN/spm" --vocab-size 8000 \
      --max-lines-per-file 6000 --seed "$SEED"
    SPM=$BIN/spm.model DICT=$BIN/dict.txt
    SHAPE="--encoder-layers 4 --encoder-embed-dim 192 --encoder-ffn-embed-dim 768 --encoder-attention-heads 3"
    # shlex-split by xsl-eval: its fine-tuning passes only --arch from the checkpoint, not the shape
    START_ARGS=(--arch xsl_roberta $SHAPE)
  else
    [ -f "$RUN/e5-full/model.pt" ] || xsl-prep import-encoder --from-e5 --destdir "$RUN/e5-full"
    [ -f "$RUN/e5/model.pt" ] || xsl-prep trim-vocab --model-dir "$RUN/e5-full" --input "$RUN"/text/*.txt \
      "$DATA"/xnli/dev-*.tsv --destdir "$RUN/e5"
    SPM=$RUN/e5/sentencepiece.bpe.model DICT=$RUN/e5/dict.txt
    START_ARGS=(--arch xsl_e5_small --freeze-embeddings)
  fi
}

stage_binarize() {
  local inputs=()
  for lang in "${LANGS[@]}"; do inputs+=("$lang=$RUN/text/$lang.txt"); done
  xsl-prep binarize-mono --per-language --input "${inputs[@]}" --spm "$SPM" --dict "$DICT" \
    --destdir "$BIN/multi" --dedupe --valid-lines 300 --workers 2 --seed "$SEED"
}

VALID_SUBSETS=$(printf 'valid_%s,' "${LANGS[@]}"); VALID_SUBSETS=${VALID_SUBSETS%,}

pretrain() {  # name, phase-1 updates, extra fairseq args...
  local name=$1 p1=$2; shift 2
  fairseq-train "$BIN/multi" --user-dir xsl_fairseq --task xsl_meta_mlm --criterion xsl_meta_mlm \
    "${START_ARGS[@]}" "$@" --meta-phase1-language en --meta-phase1-updates "$p1" \
    --meta-ramp-updates "$RAMP" --multilang-sampling-alpha "$ALPHA" \
    --sample-break-mode complete --tokens-per-sample "$TOKENS" --skip-invalid-size-inputs-valid-test \
    --optimizer adam --adam-betas '(0.9,0.98)' --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0 \
    --lr "$LR" --lr-scheduler polynomial_decay --warmup-updates "$WARMUP" --total-num-update "$UPDATES" \
    --max-update "$UPDATES" --batch-size "$BATCH" --cpu --num-workers 0 --seed "$SEED" \
    --log-format json --log-interval 10 --valid-subset "$VALID_SUBSETS" --validate-interval 1000 \
    --save-interval 1000 --no-epoch-checkpoints --save-dir "$RUN/checkpoints/$name" \
    --tensorboard-logdir "$RUN/tensorboard/$name" 2>&1 | tee "$RUN/logs/$name.log" | grep -E "train_inner|valid_|meta schedule|Stopping|cleared"
}

stage_head_warmup() {  # e5 only: train the fresh MLM head with the encoder frozen
  fairseq-train "$BIN/multi" --user-dir xsl_fairseq --task xsl_meta_mlm --criterion xsl_meta_mlm \
    --arch xsl_e5_small --finetune-from-model "$RUN/e5/model.pt" --trainable-parameters '^encoder\.lm_head\.' \
    --meta-phase1-updates 0 --multilang-sampling-alpha "$ALPHA" \
    --sample-break-mode complete --tokens-per-sample "$TOKENS" --skip-invalid-size-inputs-valid-test \
    --optimizer adam --adam-betas '(0.9,0.98)' --lr "$HEAD_LR" --lr-scheduler polynomial_decay \
    --warmup-updates 3 --total-num-update "$HEAD_UPDATES" --max-update "$HEAD_UPDATES" --batch-size "$BATCH" \
    --cpu --num-workers 0 --seed "$SEED" --log-format json --log-interval 5 --disable-validation \
    --save-dir "$RUN/checkpoints/head" --no-epoch-checkpoints --tensorboard-logdir "$RUN/tensorboard/head" \
    2>&1 | tee "$RUN/logs/head.log" | grep -E "train_inner|training .* tensors"
  START_ARGS+=(--finetune-from-model "$RUN/checkpoints/head/checkpoint_last.pt")
}

evaluate_small() {  # name
  local name=$1 ckpt=$RUN/checkpoints/$1/checkpoint_last.pt
  [ -f "$RUN/eval/$name/pos/results.json" ] || timed "pos_$name" xsl-eval pos --checkpoint "$ckpt" --dict "$DICT" --spm "$SPM" \
    --train "$DATA/ud/en_ewt/en_ewt-ud-train.conllu" --eval-dir "$DATA/ud" --split test \
    --languages en,de,fr,es,ru --max-train-examples "$POS_TRAIN" --max-eval-examples "$POS_EVAL" \
    --epochs "$POS_EPOCHS" --lr 1e-4 --seeds "$SEED" --out "$RUN/eval/$name/pos" --fairseq-args="$SHAPE"
  [ -f "$RUN/eval/$name/flores/results.json" ] || timed "flores_$name" xsl-eval retrieval --checkpoint "$ckpt" --dict "$DICT" --spm "$SPM" \
    --eval-dir "$DATA/flores101" --split devtest --languages deu,fra,spa,rus \
    --max-eval-examples "$FLORES_EVAL" --out "$RUN/eval/$name/flores"
}

evaluate_e5() {  # name
  local name=$1 ckpt=$RUN/checkpoints/$1/checkpoint_last.pt
  [ -f "$RUN/eval/$name/xnli/results.json" ] || timed "xnli_$name" xsl-eval sentence-pair --checkpoint "$ckpt" --dict "$DICT" --spm "$SPM" \
    --train "$DATA/xnli/dev-en.tsv" --eval-dir "$DATA/xnli" --split dev --languages "$XNLI_LANGUAGES" \
    --held-out-items 500 --max-train-examples "$XNLI_TRAIN" --epochs "$XNLI_EPOCHS" --lr 3e-5 \
    --batch-size 32 --seeds "$SEED" --fairseq-args=--freeze-embeddings --out "$RUN/eval/$name/xnli"
}

timed text stage_text
stage_vocab
[ -f "$BIN/multi/dict.txt" ] || timed binarize stage_binarize
if [ "$START" = e5 ]; then timed head_warmup stage_head_warmup; fi
# an existing final checkpoint is kept (rerun the evaluations only); delete it to retrain
[ -f "$RUN/checkpoints/meta/checkpoint_last.pt" ] || timed pretrain_meta pretrain meta "$P1"
[ -f "$RUN/checkpoints/multi/checkpoint_last.pt" ] || timed pretrain_multi pretrain multi 0
for name in meta multi; do
  if [ "$START" = small ]; then evaluate_small "$name"; else evaluate_e5 "$name"; fi
done
python examples/meta_pretraining/summarize.py "$RUN"
