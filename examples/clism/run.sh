#!/usr/bin/env bash
# CLISM + CACR recipe: mine entity spans (spaCy NER + eflomal) -> binarize -> continued
# pretraining with xsl_clism (CLISM + CACR + MLM) and an MLM-only baseline of equal
# updates on the same batches -> MLQA: fine-tune on English, zero-shot F1/EM on ar de es
# hi vi zh; full data and few-shot (k=256, 3 seeds). See examples/clism/README.md.
#
#   START=e5   OUT=work/clism bash examples/clism/run.sh     # multilingual-e5-small (imported, trimmed)
#   START=tiny OUT=work/clism bash examples/clism/run.sh     # the tiny model of `make demo`
#   QUICK=1 START=tiny ...                                    # smoke-sized caps (minutes)
set -euo pipefail

DATA=${DATA:-../shared/data}
OUT=${OUT:-work/clism}
START=${START:-e5}                    # e5 | tiny
QUICK=${QUICK:-0}
SEED=${SEED:-1}
TINY_CHECKPOINT=${TINY_CHECKPOINT:-work/demo/checkpoints/mlm/checkpoint_last.pt}
TINY_DATA_BIN=${TINY_DATA_BIN:-work/demo/data-bin}
# CPU caps (documented in README.md); QUICK=1 shrinks them for a smoke run
if [ "$QUICK" = 1 ]; then
  MAX_PAIRS=${MAX_PAIRS:-300} UPDATES=${UPDATES:-40} QA_TRAIN=${QA_TRAIN:-60} QA_EVAL=${QA_EVAL:-30}
  FEW_SHOT=${FEW_SHOT:-32} FEW_SHOT_SEEDS=${FEW_SHOT_SEEDS:-1,2} QA_EPOCHS=${QA_EPOCHS:-1}
else
  MAX_PAIRS=${MAX_PAIRS:-1000}        # sentence pairs read per corpus
  UPDATES=${UPDATES:-150}             # continued-pretraining updates, equal for both objectives
  QA_TRAIN=${QA_TRAIN:-200}           # English MLQA questions for full-data fine-tuning (of 1148)
  QA_EVAL=${QA_EVAL:-100}             # questions per evaluated language
  FEW_SHOT=${FEW_SHOT:-256}           # k of the few-shot setting (paper: 64..1024)
  FEW_SHOT_SEEDS=${FEW_SHOT_SEEDS:-1,2,3}
  QA_EPOCHS=${QA_EPOCHS:-2}
  FEW_SHOT_EPOCHS=${FEW_SHOT_EPOCHS:-1}
fi
BATCH=${BATCH:-16}                    # sentence pairs per pretraining update
FEW_SHOT_EPOCHS=${FEW_SHOT_EPOCHS:-$QA_EPOCHS}
RUN=$OUT/$START
MLQA=$DATA/mlqa/dev
start=$(date +%s)

if [ ! -d "$MLQA" ] || [ ! -d "$DATA/ntrex" ]; then
  echo "clism: $MLQA or $DATA/ntrex not found; set DATA to the shared data folder" >&2
  exit 2
fi

# English paired with the MLQA languages. MLQA itself is only fine-tuned / evaluated on.
CORPORA=(
  de "$DATA/wmt_newstest/deu-eng/newstest2018.eng" "$DATA/wmt_newstest/deu-eng/newstest2018.deu"
  de "$DATA/ntrex/newstest2019-src.eng.txt" "$DATA/ntrex/newstest2019-ref.deu.txt"
  es "$DATA/wmt_newstest/eng-spa/newstest2013.eng" "$DATA/wmt_newstest/eng-spa/newstest2013.spa"
  es "$DATA/ntrex/newstest2019-src.eng.txt" "$DATA/ntrex/newstest2019-ref.spa.txt"
  hi "$DATA/wmt_newstest/eng-hin/newstest2014.eng" "$DATA/wmt_newstest/eng-hin/newstest2014.hin"
  hi "$DATA/ntrex/newstest2019-src.eng.txt" "$DATA/ntrex/newstest2019-ref.hin.txt"
  vi "$DATA/ntrex/newstest2019-src.eng.txt" "$DATA/ntrex/newstest2019-ref.vie.txt"
  zh "$DATA/wmt_newstest/eng-zho/newstest2017.eng" "$DATA/wmt_newstest/eng-zho/newstest2017.zho"
  zh "$DATA/ntrex/newstest2019-src.eng.txt" "$DATA/ntrex/newstest2019-ref.zho-CN.txt"
  ar "$DATA/tico19/eng-ara/tico19-test.eng" "$DATA/tico19/eng-ara/tico19-test.ara"
  ar "$DATA/ntrex/newstest2019-src.eng.txt" "$DATA/ntrex/newstest2019-ref.arb.txt"
)

stage_text() {  # capped copies of the corpora; MLQA questions and contexts as text (for trim-vocab)
  mkdir -p "$OUT/text"
  for ((i = 0; i < ${#CORPORA[@]}; i += 3)); do
    local name
    name=$(( i / 3 ))-${CORPORA[i]}
    [ -f "$OUT/text/$name.tgt" ] && continue
    head -n "$MAX_PAIRS" "${CORPORA[i+1]}" > "$OUT/text/$name.en"
    head -n "$MAX_PAIRS" "${CORPORA[i+2]}" > "$OUT/text/$name.tgt"
  done
  [ -f "$OUT/text/mlqa.txt" ] || python3 - "$MLQA" "$OUT/text/mlqa.txt" <<'EOF'
import json, pathlib, sys
with open(sys.argv[2], "w", encoding="utf-8") as out:
    for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
        for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
            for paragraph in article["paragraphs"]:
                out.write(paragraph["context"].replace("\n", " ") + "\n")
                for qa in paragraph["qas"]:
                    out.write(qa["question"].replace("\n", " ") + "\n")
EOF
}

stage_mine() {  # spaCy NER + eflomal per corpus; counts in $OUT/mined/*.stats.json
  mkdir -p "$OUT/mined"
  for src in "$OUT"/text/*.en; do
    local name
    name=$(basename "$src" .en)
    [ -f "$OUT/mined/$name.jsonl" ] && continue
    # words: spaCy (English), sacremoses / jieba by target language ($name is N-LANG)
    xsl-prep clism-spans --src "$src" --tgt "$OUT/text/$name.tgt" --tgt-lang "${name#*-}" \
      --output "$OUT/mined/$name.jsonl"
  done
}

stage_start_model() {  # sets START_CHECKPOINT, VOCAB_DIR, SPM_FILE, MODEL_ARGS, QA_ARGS
  if [ "$START" = e5 ]; then
    if [ ! -f "$OUT/e5-trim/model.pt" ]; then
      [ -f "$OUT/e5/model.pt" ] || xsl-prep import-encoder --from-e5 --destdir "$OUT/e5"
      # keep the pieces of the parallel text and of MLQA (its vocabulary only, no labels)
      xsl-prep trim-vocab --model-dir "$OUT/e5" --destdir "$OUT/e5-trim" --input "$OUT"/text/*
    fi
    START_CHECKPOINT=$OUT/e5-trim/model.pt
    VOCAB_DIR=$OUT/e5-trim
    SPM_FILE=$VOCAB_DIR/sentencepiece.bpe.model
    # frozen word embeddings (most of e5's parameters; [QUE]'s row stays at the mean embedding)
    MODEL_ARGS=(--arch xsl_e5_small --freeze-embeddings --dropout 0.1 --attention-dropout 0.1)
    LR=${LR:-5e-5}
    QA_ARGS=(--max-seq-length 256 --doc-stride 128 --max-query-length 48 --lr "${QA_LR:-1e-4}"
             "--fairseq-args=--freeze-embeddings")  # "=": the value starts with --
  elif [ "$START" = tiny ]; then
    if [ ! -f "$TINY_CHECKPOINT" ]; then
      echo "clism: $TINY_CHECKPOINT not found; run 'make demo' first (or set TINY_CHECKPOINT)" >&2
      exit 2
    fi
    START_CHECKPOINT=$TINY_CHECKPOINT
    VOCAB_DIR=$TINY_DATA_BIN
    SPM_FILE=$VOCAB_DIR/spm.model
    # the demo model has 128 positions: X = <s> ŝ </s> t </s> must fit
    MODEL_ARGS=(--arch xsl_roberta_tiny --max-positions 128 --max-source-tokens 64 --max-target-tokens 64
                --dropout 0.1 --attention-dropout 0.1)
    LR=${LR:-5e-4}
    QA_ARGS=(--max-seq-length 128 --doc-stride 96 --max-query-length 32 --lr "${QA_LR:-3e-4}")
  else
    echo "clism: START must be e5 or tiny, got '$START'" >&2
    exit 2
  fi
}

stage_binarize() {
  [ -f "$RUN/clism-bin/clism.json" ] && return
  xsl-prep clism-binarize --input "$OUT"/mined/*.jsonl --spm "$SPM_FILE" --dict "$VOCAB_DIR/dict.txt" \
    --destdir "$RUN/clism-bin" --valid-lines 200 --seed "$SEED"
}

stage_pretrain() {  # name, criterion weights and task options
  # START=e5 defaults as Hydra configs: examples/clism/config/{clism,mlm_baseline}.yaml
  local name=$1
  shift
  [ -f "$RUN/checkpoints/$name/checkpoint_last.pt" ] && return
  fairseq-train "$RUN/clism-bin" --user-dir xsl_fairseq --task xsl_clism --criterion xsl_clism "$@" \
    "${MODEL_ARGS[@]}" --finetune-from-model "$START_CHECKPOINT" \
    --optimizer adam --adam-betas '(0.9,0.98)' --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0 \
    --lr "$LR" --lr-scheduler polynomial_decay --warmup-updates $(( UPDATES / 10 )) \
    --total-num-update "$UPDATES" --max-update "$UPDATES" --batch-size "$BATCH" \
    --cpu --num-workers 0 --seed "$SEED" --log-format simple --log-interval 10 \
    --validate-interval-updates "$UPDATES" --no-epoch-checkpoints \
    --save-dir "$RUN/checkpoints/$name" --tensorboard-logdir "$RUN/tensorboard/$name"
}

stage_qa() {  # name, checkpoint, setting (full | fewshot), extra xsl-eval options
  local name=$1 checkpoint=$2 setting=$3 others
  shift 3
  [ -f "$RUN/eval/$setting-$name/results.json" ] && return
  others=$(ls "$MLQA"/dev-context-*-question-*.json | sed -E 's/.*context-(.*)-question.*/\1/' | paste -sd, -)
  local setting_args=(--max-train-examples "$QA_TRAIN" --epochs "$QA_EPOCHS" --seeds "$SEED")
  if [ "$setting" = fewshot ]; then
    setting_args=(--few-shot "$FEW_SHOT" --epochs "$FEW_SHOT_EPOCHS" --seeds "$FEW_SHOT_SEEDS")
  fi
  xsl-eval qa --checkpoint "$checkpoint" --dict "$VOCAB_DIR/dict.txt" --spm "$SPM_FILE" \
    --train "$MLQA/dev-context-en-question-en.json" --eval-dir "$MLQA" --languages "$others" \
    --max-eval-examples "$QA_EVAL" --batch-size 32 "${QA_ARGS[@]}" "${setting_args[@]}" "$@" \
    --out "$RUN/eval/$setting-$name"
}

stage_text
stage_mine
stage_start_model
mkdir -p "$RUN"
stage_binarize
# Table 4's full model and the MLM-only baseline: same batches, same masking, same updates
stage_pretrain clism
stage_pretrain mlm --clism-weight 0 --cacr-weight 0
for setting in full fewshot; do
  stage_qa clism "$RUN/checkpoints/clism/checkpoint_last.pt" "$setting" --que-mode
  stage_qa mlm "$RUN/checkpoints/mlm/checkpoint_last.pt" "$setting"
done
python3 examples/clism/summarize.py "$RUN" "$OUT/mined"
# the MLM-only baseline first: each table row below it is CLISM's difference to it
for setting in full fewshot; do
  xsl-eval compare "$RUN/eval/$setting-mlm/results.json" "$RUN/eval/$setting-clism/results.json" \
    --names mlm,clism --out "$RUN/compare/$setting"
done

echo
echo "CLISM recipe ($START) finished in $(( $(date +%s) - start )) s"
echo "mining counts: $OUT/mined/*.stats.json; binarized: $RUN/clism-bin/clism.json"
echo "tensorboard:   tensorboard --logdir $RUN/tensorboard"
echo "summary:       $RUN/summary.md (per language: $RUN/eval/*/results.md)"
echo "comparison:    $RUN/compare/{full,fewshot}/compare.md, charts compare.png beside them"
