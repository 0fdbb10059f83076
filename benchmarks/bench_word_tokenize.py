"""Kept spans (CLISM), matched words (ML-CTL) and miner throughput by word tokenizer, on the
shared data's parallel text (not a test).

    python benchmarks/bench_word_tokenize.py --spm work/e5/sentencepiece.bpe.model --dict work/e5/dict.txt \
        --pairs 1000 --out work/bench_word_tokenize.json

For every language of de, ru, zh, ja, th with parallel text it runs the two miners on the
first ``--pairs`` pairs with each target-side word rule:

* ``whitespace``: runs of non-space characters (punctuation attached);
* ``regex``: the rule of earlier versions (CLISM: letter/digit runs, punctuation marks and
  characters of unspaced scripts one by one; ML-CTL: letter/digit runs, unspaced languages
  matched as plain substrings) -- the "before" of the throughput ratio;
* ``auto``: the default now (sacremoses; jieba / fugashi / PyThaiNLP for zh / ja / th).

CLISM keeps spaCy's English tokens in all three (its default), so only the target words
change; eflomal has no seed, so span counts move by a few between identical runs. The kept
spans are also binarized with ``--spm`` (``clism-binarize``): an answer whose first or last
piece reaches past it is dropped there (``subword_boundary``), so "binarized" counts what
training gets. ML-CTL
needs a MUSE dictionary (de, ru, zh in the shared data; ja and th have none). Throughput:
CLISM's pairs/s over the whole miner (read, NER, tokenize, eflomal, projection); ML-CTL's
pairs/s over the mining loop (tokenize, match, sentencepiece), plus the wall time of the
whole call, dictionary reading included.
"""
import argparse
import json
import logging
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from preprocess.clism_binarize import binarize_clism  # noqa: E402
from preprocess.clism_spans import mine_spans  # noqa: E402
from preprocess.mlctl_wps import mine_wps  # noqa: E402

RULES = ("whitespace", "regex", "auto")
# language -> (English file, target file) below the data directory
CORPORA = {
    "de": ("wmt_newstest/deu-eng/newstest2018.eng", "wmt_newstest/deu-eng/newstest2018.deu"),
    "ru": ("wmt_newstest/eng-rus/newstest2018.eng", "wmt_newstest/eng-rus/newstest2018.rus"),
    "zh": ("wmt_newstest/eng-zho/newstest2017.eng", "wmt_newstest/eng-zho/newstest2017.zho"),
    "ja": ("wmt_newstest/eng-jpn/newstest2020.eng", "wmt_newstest/eng-jpn/newstest2020.jpn"),
    "th": ("ntrex/newstest2019-src.eng.txt", "ntrex/newstest2019-ref.tha.txt"),
}


def head(path, n, out):
    with open(path, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i >= n:
                break
            dst.write(line)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--spm", required=True, help="sentencepiece model (ML-CTL piece boundaries)")
    parser.add_argument("--dict", required=True, help="its dict.txt")
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--languages", default="de,ru,zh,ja,th")
    parser.add_argument("--skip-clism", action="store_true")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = {"pairs": args.pairs, "load_average_start": os.getloadavg(), "clism": {}, "mlctl": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for lang in args.languages.split(","):
            en_rel, xx_rel = CORPORA[lang]
            en = head(os.path.join(args.data, en_rel), args.pairs, os.path.join(tmp, f"{lang}.en"))
            xx = head(os.path.join(args.data, xx_rel), args.pairs, os.path.join(tmp, f"{lang}.{lang}"))
            for rule in RULES:
                if not args.skip_clism:
                    mined = os.path.join(tmp, f"{lang}-{rule}.jsonl")
                    stats = mine_spans(en, xx, mined, tgt_tokenizer=rule, tgt_lang=lang)
                    total = sum(stats.seconds.values())
                    # what training gets: answers must start and end on the model's sentencepiece boundaries
                    binarized = binarize_clism([mined], args.spm, args.dict, os.path.join(tmp, f"bin-{lang}-{rule}"))
                    results["clism"].setdefault(lang, {})[rule] = {
                        "pairs": stats.pairs_read, "pairs_kept": stats.pairs_kept, "spans_found": stats.spans_found,
                        "spans_kept": stats.spans_kept, "span_drops": dict(stats.span_drops),
                        "spans_binarized": binarized["splits"]["train"]["spans"],
                        "binarize_drops": binarized["drops"],
                        "seconds": {k: round(v, 2) for k, v in stats.seconds.items()},
                        "pairs_per_second": round(stats.pairs_read / total, 1)}
                    print(lang, "clism", rule, results["clism"][lang][rule], flush=True)
                dictionary = os.path.join(args.data, "muse_dicts", f"en-{lang}.dict")
                if not os.path.isfile(dictionary):
                    continue
                started = time.perf_counter()
                report = mine_wps([(lang, en, xx)], {lang: dictionary}, args.spm, args.dict,
                                  os.path.join(tmp, f"wps-{lang}-{rule}"), word_tokenizer=rule)
                counts = report["counts"]
                results["mlctl"].setdefault(lang, {})[rule] = {
                    "pairs": counts["pairs_seen"], "samples": counts["samples"],
                    "pairs_with_samples": counts["pairs_with_samples"],
                    "not_piece_aligned": counts["candidates_not_piece_aligned"],
                    "ambiguous": counts["candidates_ambiguous"],
                    "pairs_per_second": report["pairs_per_second"][lang],
                    "wall_seconds_with_dictionary": round(time.perf_counter() - started, 2),
                    "word_tokenizers": report["word_tokenizers"]}
                print(lang, "mlctl", rule, results["mlctl"][lang][rule], flush=True)
    results["load_average_end"] = os.getloadavg()
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(results, out, indent=2, ensure_ascii=False)
    print(json.dumps(results, indent=2, ensure_ascii=False))
    print(markdown(results))


def markdown(results) -> str:
    """The README tables: counts per rule, throughput and the auto / regex ratio."""
    lines = ["| language | CLISM spans kept (binarized): whitespace | regex (before) | auto (now) "
             "| pairs/s regex -> auto | tokenize s regex -> auto |", "|---|---:|---:|---:|---:|---:|"]
    for lang, by_rule in results["clism"].items():
        cells = [f"{by_rule[r]['spans_kept']} ({by_rule[r]['spans_binarized']})" for r in RULES]
        before, after = by_rule["regex"], by_rule["auto"]
        lines.append(f"| {lang} | {' | '.join(cells)} | {before['pairs_per_second']} -> {after['pairs_per_second']} "
                     f"| {before['seconds']['tokenize']} -> {after['seconds']['tokenize']} |")
    lines += ["", "| language | ML-CTL samples (pairs with one): whitespace | regex (before) | auto (now) "
              "| not piece-aligned regex -> auto | pairs/s regex -> auto (ratio) |", "|---|---:|---:|---:|---:|---:|"]
    for lang, by_rule in results["mlctl"].items():
        cells = [f"{by_rule[r]['samples']} ({by_rule[r]['pairs_with_samples']})" for r in RULES]
        before, after = by_rule["regex"], by_rule["auto"]
        ratio = after["pairs_per_second"] / before["pairs_per_second"]
        lines.append(f"| {lang} | {' | '.join(cells)} | {before['not_piece_aligned']} -> {after['not_piece_aligned']} "
                     f"| {before['pairs_per_second']} -> {after['pairs_per_second']} ({ratio:.2f}) |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
