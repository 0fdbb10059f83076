"""Line-by-line reading of plain-text corpora with errors that name file and line."""
import logging
import random
from typing import Iterator, List, Optional, Tuple

from . import InputError
from .atomic import atomic_write

logger = logging.getLogger(__name__)


def iter_lines(path: str) -> Iterator[Tuple[int, str]]:
    """Yield ``(line_number, text)`` (1-based, newline stripped) of a UTF-8 file."""
    try:
        handle = open(path, "rb")
    except OSError as err:
        raise InputError(f"{path}: cannot open ({err.strerror})") from err
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(f"{path}:{number}: not valid UTF-8 ({err.reason})") from err
            yield number, text.rstrip("\r\n")


def count_lines(path: str) -> int:
    count = 0
    for count, _ in iter_lines(path):
        pass
    return count


def count_nonempty_lines(path: str) -> int:
    """Lines with text (a streaming pass: checks the file is readable UTF-8 without keeping it)."""
    return sum(1 for _, text in iter_lines(path) if text.strip())


def read_monolingual(
    paths: List[str], dedupe: bool = False, max_lines_per_file: Optional[int] = None, seed: int = 1
) -> List[str]:
    """Non-empty lines of ``paths``; optionally deduplicated and capped per file.

    Empty lines and duplicates are dropped and counted in the log.
    """
    if max_lines_per_file is not None and max_lines_per_file < 1:
        raise InputError(f"the per-file line cap must be at least 1, got {max_lines_per_file}")
    rng = random.Random(seed)
    seen = set()
    kept: List[str] = []
    for path in paths:
        lines, empty, duplicates = [], 0, 0
        for _, text in iter_lines(path):
            text = text.strip()
            if not text:
                empty += 1
                continue
            if dedupe:
                if text in seen:
                    duplicates += 1
                    continue
                seen.add(text)
            lines.append(text)
        if not lines and not duplicates:
            raise InputError(f"{path}: no non-empty lines")
        capped = 0
        if max_lines_per_file is not None and len(lines) > max_lines_per_file:
            capped = len(lines) - max_lines_per_file
            lines = rng.sample(lines, max_lines_per_file)
        logger.info(
            "%s: kept %d lines (dropped: %d empty, %d duplicate, %d over the per-file cap)",
            path, len(lines), empty, duplicates, capped,
        )
        kept.extend(lines)
    return kept


def read_parallel(src_path: str, tgt_path: str) -> List[Tuple[str, str]]:
    """Line-aligned pairs of two files; a line-count mismatch is an error.

    Pairs with an empty side are dropped (counted in the log), because an empty
    sentence has nothing to align.
    """
    src_count, tgt_count = count_lines(src_path), count_lines(tgt_path)
    if src_count != tgt_count:
        raise InputError(
            f"parallel files differ in line count: {src_path} has {src_count} lines, "
            f"{tgt_path} has {tgt_count}"
        )
    pairs, empty = [], 0
    for (_, src), (_, tgt) in zip(iter_lines(src_path), iter_lines(tgt_path)):
        src, tgt = src.strip(), tgt.strip()
        if not src or not tgt:
            empty += 1
            continue
        pairs.append((src, tgt))
    logger.info(
        "%s / %s: kept %d pairs (dropped: %d with an empty side)", src_path, tgt_path, len(pairs), empty
    )
    return pairs


def write_lines(path: str, lines) -> None:
    with atomic_write(path) as out:
        for line in lines:
            out.write(line)
            out.write("\n")
