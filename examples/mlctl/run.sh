#!/usr/bin/env bash
# ML-CTL recipe: word-positioned samples -> contrastive alignment with three objectives
# (info-snt, CZ-snt, ML-CTL-CZ; equal updates) -> FLORES-101 retrieval accuracy against the
# starting checkpoint (and zero-shot XNLI with XNLI=1). See examples/mlctl/README.md.
#
#   START=e5   OUT=work/mlctl bash examples/mlctl/run.sh    # multilingual-e5-small (import + trim)
#   START=tiny OUT=work/mlctl bash examples/mlctl/run.sh    # the demo's tiny MLM model (`make demo` first)
#
# Defaults are sized for 2 CPU cores (see README.md): e5 60 updates of 16 samples, sides of
# at most 64 tokens, no MLM term (e5 ships no MLM head), 200 FLORES sentences per language.
set -euo pipefail

DATA=${DATA:-../shared/data}
OUT=${OUT:-work/mlctl}
START=${START:-e5}                  # e5 | tiny
if [ "$START" = e5 ]; then
  UPDATES=${UPDATES:-60}            # updates per variant (equal for all three)
  BATCH=${BATCH:-16}                # word-positioned samples per update (2x anchors)
  MAX_TOKENS=${MAX_TOKENS:-64}      # longest side kept by the miner, <s> and </s> included
  MLM_WEIGHT=${MLM_WEIGHT:-0}       # e5 has no pretrained MLM head: the term would train a fresh one
  LR=${LR:-1e-5}
else
  UPDATES=${UPDATES:-300}
  BATCH=${BATCH:-32}
  MAX_TOKENS=${MAX_TOKENS:-128}
  MLM_WEIGHT=${MLM_WEIGHT:-0.1}     # the paper's alpha
  LR=${LR:-1e-4}
fi
MAX_PAIRS=${MAX_PAIRS:-1500}        # sentence pairs read per corpus
EVAL_EXAMPLES=${EVAL_EXAMPLES:-200} # FLORES devtest sentences per language (1012 = all)
# FLORES languages: the six trained ones and four never paired with English in training
# (EVAL_LANGUAGES= for all 16)
EVAL_LANGUAGES=${EVAL_LANGUAGES-ara,deu,fra,rus,spa,zho_simpl,hin,jpn,swh,tur}
XNLI=${XNLI:-0}                     # 1: also zero-shot XNLI dev for every checkpoint (slow on CPU)
XNLI_EPOCHS=${XNLI_EPOCHS:-2}
SEED=${SEED:-1}
TINY_CHECKPOINT=${TINY_CHECKPOINT:-work/demo/checkpoints/mlm/checkpoint_last.pt}
TINY_DATA_BIN=${TINY_DATA_BIN:-work/demo/data-bin}
RUN=$OUT/$START
start=$(date +%s)

if [ ! -d "$DATA/flores101" ] || [ ! -d "$DATA/muse_dicts" ]; then
  echo "mlctl: $DATA/flores101 or $DATA/muse_dicts not found; set DATA to the shared data folder" >&2
  exit 2
fi

# Training pairs: English with each language that has a MUSE dictionary. FLORES-101 (the
# retrieval test) and XNLI (the zero-shot test) are never trained on.
CORPORA=(
  de "$DATA/wmt_newstest/deu-eng/newstest2017.eng" "$DATA/wmt_newstest/deu-eng/newstest2017.deu"
  de "$DATA/ntrex/newstest2019-src.eng.txt" "$DATA/ntrex/newstest2019-ref.deu.txt"
  fr "$DATA/wmt_newstest/eng-fra/newstest2014.eng" "$DATA/wmt_newstest/eng-fra/newstest2014.fra"
  fr "$DATA/tico19/eng-fra/tico19-test.eng" "$DATA/tico19/eng-fra/tico19-test.fra"
  es "$DATA/wmt_newstest/eng-spa/newstest2013.eng" "$DATA/wmt_newstest/eng-spa/newstest2013.spa"
  es "$DATA/ntrex/newstest2019-src.eng.txt" "$DATA/ntrex/newstest2019-ref.spa.txt"
  ru "$DATA/wmt_newstest/eng-rus/newstest2018.eng" "$DATA/wmt_newstest/eng-rus/newstest2018.rus"
  ru "$DATA/tico19/eng-rus/tico19-test.eng" "$DATA/tico19/eng-rus/tico19-test.rus"
  zh "$DATA/wmt_newstest/eng-zho/newstest2017.eng" "$DATA/wmt_newstest/eng-zho/newstest2017.zho"
  zh "$DATA/tico19/eng-zho/tico19-test.eng" "$DATA/tico19/eng-zho/tico19-test.zho"
  ar "$DATA/tico19/eng-ara/tico19-test.eng" "$DATA/tico19/eng-ara/tico19-test.ara"
  ar "$DATA/ntrex/newstest2019-src.eng.txt" "$DATA/ntrex/newstest2019-ref.arb.txt"
)
CORPUS_ARGS=()
TRAIN_TEXT=()
for ((i = 0; i < ${#CORPORA[@]}; i += 3)); do
  CORPUS_ARGS+=(--corpus "${CORPORA[i]}" "${CORPORA[i+1]}" "${CORPORA[i+2]}")
  TRAIN_TEXT+=("${CORPORA[i+1]}" "${CORPORA[i+2]}")
done
DICT_ARGS=()
for lang in de fr es ru zh ar; do
  DICT_ARGS+=(--dictionary "$lang" "$DATA/muse_dicts/en-$lang.dict")
done

# The three rows of the paper: name, --contrastive-loss, --levels.
VARIANTS=(
  "infonce-sentence infonce sentence"
  "cz_nce-sentence cz_nce sentence"
  "cz_nce-both cz_nce both"
)

stage_start_model() {
  # Sets START_CHECKPOINT, VOCAB_DIR (dict.txt + sentencepiece model) and MODEL_ARGS.
  if [ "$START" = e5 ]; then
    if [ ! -f "$OUT/e5-trim/model.pt" ]; then
      xsl-prep import-encoder --from-e5 --destdir "$OUT/e5"
      # Keep the pieces of the training text and of every evaluation set (their vocabulary only).
      xsl-prep trim-vocab --model-dir "$OUT/e5" --destdir "$OUT/e5-trim" \
        --input "${TRAIN_TEXT[@]}" "$DATA"/flores101/devtest/*.devtest "$DATA"/xnli/dev-*.tsv
    fi
    START_CHECKPOINT=$OUT/e5-trim/model.pt
    VOCAB_DIR=$OUT/e5-trim
    SPM_FILE=$VOCAB_DIR/sentencepiece.bpe.model
    # e5: frozen word embeddings (most of its parameters) keep CPU updates affordable.
    MODEL_ARGS=(--arch xsl_e5_small --freeze-embeddings --dropout 0.1 --attention-dropout 0.1)
    XNLI_ARGS=(--lr 3e-5 "--fairseq-args=--freeze-embeddings")  # "=": the value starts with --
  elif [ "$START" = tiny ]; then
    if [ ! -f "$TINY_CHECKPOINT" ]; then
      echo "mlctl: $TINY_CHECKPOINT not found; run 'make demo' first (or set TINY_CHECKPOINT)" >&2
      exit 2
    fi
    START_CHECKPOINT=$TINY_CHECKPOINT
    VOCAB_DIR=$TINY_DATA_BIN
    SPM_FILE=$VOCAB_DIR/spm.model
    MODEL_ARGS=(--arch xsl_roberta_tiny --max-positions 128 --dropout 0.1 --attention-dropout 0.1)
    XNLI_ARGS=(--lr 1e-4)  # the demo's setting for the tiny model
  else
    echo "mlctl: START must be e5 or tiny, got '$START'" >&2
    exit 2
  fi
}

stage_mine() {
  [ -f "$RUN/wps/train.wps.npy" ] && return
  xsl-prep mlctl-wps "${CORPUS_ARGS[@]}" "${DICT_ARGS[@]}" \
    --spm "$SPM_FILE" --dict "$VOCAB_DIR/dict.txt" --destdir "$RUN/wps" \
    --max-tokens-per-side "$MAX_TOKENS" --max-pairs-per-corpus "$MAX_PAIRS" --valid-pairs 200 --seed "$SEED"
}

stage_train() {  # name, --contrastive-loss, --levels
  # START=e5 defaults as Hydra configs: examples/mlctl/config/<loss>_<levels>.yaml
  local name=$1 loss=$2 levels=$3
  [ -f "$RUN/checkpoints/$name/checkpoint_last.pt" ] && return
  fairseq-train "$RUN/wps" --user-dir xsl_fairseq \
    --task xsl_mlctl --criterion xsl_mlctl --contrastive-loss "$loss" --levels "$levels" \
    --mlm-weight "$MLM_WEIGHT" $( [ "$MLM_WEIGHT" = 0 ] && echo --mask-prob 0 ) \
    "${MODEL_ARGS[@]}" --finetune-from-model "$START_CHECKPOINT" \
    --optimizer adam --adam-betas '(0.9,0.98)' --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0 \
    --lr "$LR" --lr-scheduler polynomial_decay --warmup-updates $(( UPDATES / 10 )) \
    --total-num-update "$UPDATES" --max-update "$UPDATES" --batch-size "$BATCH" \
    --cpu --num-workers 0 --seed "$SEED" \
    --log-format simple --log-interval 10 --validate-interval-updates "$UPDATES" \
    --no-epoch-checkpoints --save-dir "$RUN/checkpoints/$name" --tensorboard-logdir "$RUN/tensorboard/$name"
}

stage_retrieval() {  # name, checkpoint, representation
  local name=$1 checkpoint=$2 representation=$3
  [ -f "$RUN/eval/flores-$name-$representation/results.json" ] && return
  xsl-eval retrieval --checkpoint "$checkpoint" --dict "$VOCAB_DIR/dict.txt" --spm "$SPM_FILE" \
    --eval-dir "$DATA/flores101" --split devtest --max-eval-examples "$EVAL_EXAMPLES" \
    ${EVAL_LANGUAGES:+--languages "$EVAL_LANGUAGES"} \
    --representation "$representation" --out "$RUN/eval/flores-$name-$representation"
}

stage_xnli() {  # name, checkpoint
  local name=$1 checkpoint=$2 languages
  languages=$(ls "$DATA"/xnli/dev-*.tsv | sed -E 's/.*dev-(.*)\.tsv/\1/' | paste -sd, -)
  [ -f "$RUN/eval/xnli-$name/results.json" ] && return
  # the demo's protocol: items 1..500 of every language held out (XNLI dev files are
  # translations of each other), English items after them fine-tuned on
  xsl-eval sentence-pair --checkpoint "$checkpoint" --dict "$VOCAB_DIR/dict.txt" --spm "$SPM_FILE" \
    --train "$DATA/xnli/dev-en.tsv" --eval-dir "$DATA/xnli" --split dev --languages "$languages" \
    --held-out-items 500 --epochs "$XNLI_EPOCHS" --batch-size 32 --seeds "$SEED" "${XNLI_ARGS[@]}" \
    --out "$RUN/eval/xnli-$name"
}

stage_summary() {
  python3 - "$RUN" <<'EOF'
import json, pathlib, sys
run = pathlib.Path(sys.argv[1])
rows = []
for results in sorted(run.glob("eval/*/results.json")):
    report = json.loads(results.read_text())
    langs = report["languages"]
    metric = "accuracy"
    others = [l for l in langs if l not in ("en", "eng")]
    mean = sum(langs[l][metric]["mean"] for l in others) / len(others)
    rows.append((results.parent.name, mean, len(others)))
lines = ["| evaluation | mean accuracy (non-English) | languages |", "|---|---:|---:|"]
lines += [f"| {name} | {mean:.1f} | {count} |" for name, mean, count in rows]
(run / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
}

stage_start_model
mkdir -p "$RUN"
stage_mine
stage_retrieval start "$START_CHECKPOINT" mlctl
stage_retrieval start "$START_CHECKPOINT" layer
for variant in "${VARIANTS[@]}"; do
  read -r name loss levels <<<"$variant"
  stage_train "$name" "$loss" "$levels"
  stage_retrieval "$name" "$RUN/checkpoints/$name/checkpoint_last.pt" mlctl
  stage_retrieval "$name" "$RUN/checkpoints/$name/checkpoint_last.pt" mlctl-head
done
if [ "$XNLI" = 1 ]; then
  stage_xnli start "$START_CHECKPOINT"
  for variant in "${VARIANTS[@]}"; do
    read -r name _ _ <<<"$variant"
    stage_xnli "$name" "$RUN/checkpoints/$name/checkpoint_last.pt"
  done
fi
stage_summary

stage_compare() {  # every variant against the start checkpoint, same xsl-eval protocol
  local runs=("$RUN/eval/flores-start-mlctl/results.json") xnli_runs=("$RUN/eval/xnli-start/results.json")
  local names=start name
  for variant in "${VARIANTS[@]}"; do
    read -r name _ _ <<<"$variant"
    runs+=("$RUN/eval/flores-$name-mlctl/results.json")
    xnli_runs+=("$RUN/eval/xnli-$name/results.json")
    names+=",$name"
  done
  xsl-eval compare "${runs[@]}" --names "$names" --out "$RUN/compare/flores"
  if [ "$XNLI" = 1 ]; then
    xsl-eval compare "${xnli_runs[@]}" --names "$names" --out "$RUN/compare/xnli"
  fi
}
stage_compare

echo
echo "ML-CTL recipe ($START) finished in $(( $(date +%s) - start )) s"
echo "mining counts: $RUN/wps/mining.json"
echo "tensorboard:   tensorboard --logdir $RUN/tensorboard"
echo "summary:       $RUN/summary.md (per language: $RUN/eval/*/results.md)"
echo "comparison:    $RUN/compare/flores/compare.md, chart $RUN/compare/flores/compare.png"
