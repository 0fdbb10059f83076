#!/usr/bin/env bash
# What only a CUDA machine shows (not a test; CI has no GPU):
#   1. contrastive losses under fp16 / bf16 autocast against fp64 (check_precision.py);
#   2. short fairseq-train runs of xsl_mlctl (CZ-NCE, both levels, + 0.1 MLM) and xsl_clism
#      (CLISM + CACR + MLM) with --fp16 and --amp: the losses must stay finite and fall
#      (fairseq 0.12's --bf16 implies --tpu, so bf16 is checked in step 1 only);
#   3. the ML-CTL and CLISM update benchmarks on the GPU with e5-small shapes (CLISM with
#      the source pass in its own encoder call and stacked with X).
#
#   CLISM_BIN=work/clism/e5/clism-bin WPS=work/mlctl/e5/wps RESULTS=work/gpu bash benchmarks/gpu_check.sh
#
# The models are e5-small shaped and randomly initialised (the numerics and the cost do not
# depend on the weights); the data are the recipes' binarized outputs.
set -uo pipefail
CLISM_BIN=${CLISM_BIN:?directory written by xsl-prep clism-binarize}
WPS=${WPS:?directory written by xsl-prep mlctl-wps}
RESULTS=${RESULTS:-work/gpu}
UPDATES=${UPDATES:-300}
PYTHON=${PYTHON:-python3}
mkdir -p "$RESULTS"
failures=0

run() {  # name, command...: logs to $RESULTS/name.log, counts failures, goes on
  local name=$1
  shift
  echo "== $name"
  if ! "$@" >"$RESULTS/$name.log" 2>&1; then
    echo "FAILED: $name (tail of $RESULTS/$name.log follows)"
    tail -20 "$RESULTS/$name.log"
    failures=$((failures + 1))
  fi
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
(cd benchmarks && $PYTHON check_precision.py --out "$OLDPWD/$RESULTS/precision.json") |& tail -4

COMMON=(--user-dir xsl_fairseq --arch xsl_e5_small --optimizer adam --adam-betas '(0.9,0.98)'
        --adam-eps 1e-6 --clip-norm 1.0 --lr 1e-4 --lr-scheduler polynomial_decay
        --warmup-updates $((UPDATES / 10)) --total-num-update "$UPDATES" --max-update "$UPDATES"
        --batch-size 32 --num-workers 0 --seed 1 --log-format simple --log-interval 25
        --disable-validation --no-save)
for precision in fp16 amp; do
  run "mlctl-$precision" $PYTHON -m fairseq_cli.train "$WPS" "${COMMON[@]}" --"$precision" \
    --task xsl_mlctl --criterion xsl_mlctl --contrastive-loss cz_nce --levels both --mlm-weight 0.1
  run "clism-$precision" $PYTHON -m fairseq_cli.train "$CLISM_BIN" "${COMMON[@]}" --"$precision" \
    --task xsl_clism --criterion xsl_clism
done
for log in "$RESULTS"/mlctl-*.log "$RESULTS"/clism-*.log; do
  [ -f "$log" ] || continue
  echo "-- $(basename "$log" .log): first and last logged losses"
  grep -E "train_inner" "$log" | sed -n '1p;$p' | grep -oE "(loss|contrastive_loss|clism_loss|cacr_loss|mlm_loss|retrieval_acc|start_acc|loss_scale|wps)=[^,]+" | paste -sd' '
  grep -E "\| train \|" "$log" | tail -1 | cut -c1-400
done

run bench-mlctl $PYTHON benchmarks/bench_mlctl.py --data "$WPS" --arch xsl_e5_small --device cuda \
  --batch-size 32 --warmup 3 --updates 20 --out "$RESULTS/bench_mlctl_cuda.json"
for batching in separate joint; do
  run "bench-clism-$batching" $PYTHON benchmarks/bench_clism.py --data "$CLISM_BIN" --arch xsl_e5_small \
    --source-pass-batching "$batching" --batch-size 32 --warmup 3 --updates 20 \
    --out "$RESULTS/bench_clism_cuda_$batching.json"
done
tail -n 12 "$RESULTS"/bench-*.log
echo "gpu_check: $failures failed run(s); logs and JSON in $RESULTS"
exit $((failures > 0))
