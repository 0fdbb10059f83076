"""Word alignment shared by the miners (``xsl-prep clism-spans``, ``xsl-prep trelm-align``): Pharaoh
``i-j`` links, symmetrization of two directional alignments, and eflomal over a whole corpus."""
import os
import tempfile
from typing import List, Optional, Sequence, Set, Tuple

from . import InputError
from .text import iter_lines

SYMMETRIZATIONS = ("grow-diag-final-and", "grow-diag-final", "intersection", "union", "forward", "reverse")

Link = Tuple[int, int]  # (source word, target word)


def parse_links(line: str, where: str) -> List[Link]:
    """``"0-0 1-2"`` -> links, checking only the form (so a whole file can be checked before
    the sentences' words are known); a malformed link is an error naming ``where``."""
    links = []
    for item in line.split():
        parts = item.split("-")
        if len(parts) != 2 or not parts[0].isdigit() or not parts[1].isdigit():
            raise InputError(f"{where}: malformed alignment link {item!r} (expected i-j, 0-based word indices)")
        links.append((int(parts[0]), int(parts[1])))
    return links


def check_link_range(links: Sequence[Link], num_src: Optional[int], num_tgt: Optional[int],
                     where: str) -> List[Link]:
    """``links`` unchanged when every index lies inside its sentence (a side whose word count is
    None is not checked yet); else an error naming ``where``."""
    for i, j in links:
        if num_src is not None and i >= num_src:
            raise InputError(f"{where}: link {i}-{j} points past the end of the source sentence "
                             f"({num_src} words)")
        if num_tgt is not None and j >= num_tgt:
            raise InputError(f"{where}: link {i}-{j} points past the end of the target sentence "
                             f"({num_tgt} words)")
    return list(links)


def read_pharaoh_file(path: str) -> List[List[Link]]:
    """Every line of a Pharaoh file as links, the whole file checked for form up front."""
    return [parse_links(text, f"{path}:{number}") for number, text in iter_lines(path)]


def parse_pharaoh(line: str, num_src: int, num_tgt: int, where: str) -> List[Link]:
    """``"0-0 1-2"`` -> links; a malformed link or an index past a sentence's end is an
    error naming ``where`` (``file:line``)."""
    return check_link_range(parse_links(line, where), num_src, num_tgt, where)


def symmetrize(forward: Set[Link], reverse: Set[Link], method: str) -> Set[Link]:
    """Combine two directional alignments (both as (source, target) links).

    ``grow-diag-final(-and)`` is Koehn et al.'s heuristic (Moses' ``symal``): start from
    the intersection, grow into neighbouring (incl. diagonal) union links that cover a
    still unaligned word, then add remaining union links whose source *or* (``-and``:
    *and*) target word is unaligned.
    """
    if method == "forward":
        return set(forward)
    if method == "reverse":
        return set(reverse)
    union, links = forward | reverse, forward & reverse
    if method == "intersection":
        return links
    if method == "union":
        return union
    if method not in SYMMETRIZATIONS:
        raise ValueError(f"unknown symmetrization {method!r}; choose from {SYMMETRIZATIONS}")
    neighbours = [(-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)]
    aligned_src = {i for i, _ in links}
    aligned_tgt = {j for _, j in links}
    grown = True
    while grown:
        grown = False
        for i, j in sorted(links):
            for di, dj in neighbours:
                candidate = (i + di, j + dj)
                if candidate in union and candidate not in links and (
                        candidate[0] not in aligned_src or candidate[1] not in aligned_tgt):
                    links.add(candidate)
                    aligned_src.add(candidate[0])
                    aligned_tgt.add(candidate[1])
                    grown = True
    both = method == "grow-diag-final-and"
    for link_set in (forward, reverse):
        for i, j in sorted(link_set):
            src_free, tgt_free = i not in aligned_src, j not in aligned_tgt
            if (src_free and tgt_free) if both else (src_free or tgt_free):
                links.add((i, j))
                aligned_src.add(i)
                aligned_tgt.add(j)
    return links


def eflomal_align(src_tokens: Sequence[Sequence[str]], tgt_tokens: Sequence[Sequence[str]],
                  method: str) -> List[Set[Link]]:
    """Align all pairs with eflomal in both directions and symmetrize.

    eflomal has no seed, so links can differ between runs; it is unsupervised, so
    align the whole corpus in one call (more text, better links).
    """
    import eflomal

    with tempfile.TemporaryDirectory() as tmp:
        fwd_path, rev_path = os.path.join(tmp, "fwd"), os.path.join(tmp, "rev")
        eflomal.Aligner().align([" ".join(t) for t in src_tokens], [" ".join(t) for t in tgt_tokens],
                                links_filename_fwd=fwd_path, links_filename_rev=rev_path, quiet=True)
        with open(fwd_path, encoding="utf-8") as fwd, open(rev_path, encoding="utf-8") as rev:
            forward, reverse = fwd.read().splitlines(), rev.read().splitlines()
    if len(forward) != len(src_tokens) or len(reverse) != len(src_tokens):
        raise RuntimeError(f"eflomal returned {len(forward)}/{len(reverse)} alignment lines for "
                           f"{len(src_tokens)} pairs")
    result = []
    for k, (f_line, r_line) in enumerate(zip(forward, reverse)):
        where = f"eflomal output, pair {k + 1}"
        f_links = set(parse_pharaoh(f_line, len(src_tokens[k]), len(tgt_tokens[k]), where))
        r_links = set(parse_pharaoh(r_line, len(src_tokens[k]), len(tgt_tokens[k]), where))
        result.append(symmetrize(f_links, r_links, method))
    return result
