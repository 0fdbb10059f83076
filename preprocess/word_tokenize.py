"""Word tokenisation with raw-text character offsets, for the aligners and dictionary miners.

Word aligners (eflomal, fast_align, awesome-align) and dictionary matching expect
tokenised words, not whitespace-split text with punctuation attached ("Paris," is not
"Paris"). Each tokeniser here returns ``[begin, end)`` character offsets into the raw
line, so that spans and word positions found on the tokens still refer to the original
text: for every word, ``text[begin:end]`` *is* the token (checked; nothing is
normalised or escaped).

========================  ====================================================================
``moses``                 sacremoses (the maintained Python port of the Moses tokenizer),
                          language-aware (non-breaking prefixes, apostrophes of en/fr/it),
                          ``escape=False``, no aggressive dash splits: the convention of
                          fairseq's ``--tokenizer moses`` and of most MT aligner pipelines
``jieba``                 Chinese word segmentation (jieba, default dictionary, HMM for unknown
                          words; its own offsets)
``fugashi``               Japanese morphological analysis (fugashi = MeCab with the UniDic-lite
                          dictionary, the tokeniser of Hugging Face's Japanese BERT models)
``pythainlp``             Thai word segmentation (PyThaiNLP, ``newmm`` dictionary engine)
``whitespace``            maximal runs of non-space characters (the pre-tokenised convention)
========================  ====================================================================

``auto`` picks ``jieba`` / ``fugashi`` / ``pythainlp`` for zh / ja / th and ``moses`` for
every other language except the scripts without spaces that have no segmenter here (lo,
km, my): for those :func:`resolve` returns ``None`` and each miner keeps its own
character-level rule. Segmenters are imported only when their language is processed.

Language codes are ISO 639-1 (``de``); the ISO 639-3 codes of the shared data's file
names (``deu``, ``zho``) are accepted too.
"""
import logging
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import regex

from .languages import TWO_LETTER_CODES, THREE_LETTER_CODES, short_language_code

logger = logging.getLogger(__name__)

Word = Tuple[int, int]  # [begin, end) character offsets into the raw line
Tokenizer = Callable[[str], List[Word]]

TOKENIZERS = ("moses", "jieba", "fugashi", "pythainlp", "whitespace")
AUTO_SEGMENTERS = {"zh": "jieba", "ja": "fugashi", "th": "pythainlp"}
# written without spaces, and no segmenter here: the miners keep their character rules
UNSEGMENTED_LANGUAGES = ("lo", "km", "my")

KNOWN_CODES = TWO_LETTER_CODES | THREE_LETTER_CODES

_WHITESPACE_TOKEN = regex.compile(r"\S+")


class TokenizationError(ValueError):
    """A tokeniser returned tokens that are not the raw text's characters."""


def normalize_language(lang: Optional[str]) -> Optional[str]:
    """``deu`` -> ``de``, ``zho_simpl`` -> ``zh``, ``zh-CN`` -> ``zh``; ``None`` stays ``None``.
    Codes of the regional variant are reduced to the language (``zho_trad`` -> ``zh``: the
    tokenisers do not tell the scripts apart)."""
    if not lang:
        return None
    code = short_language_code(lang.strip())
    return short_language_code(regex.split(r"[-_]", code)[0].lower())


def resolve(name: str, lang: Optional[str]) -> Optional[str]:
    """The tokeniser ``name`` means for ``lang``: ``auto`` becomes a segmenter, ``moses``
    or ``None`` (a script without spaces and without a segmenter); other names stay."""
    if name != "auto":
        if name not in TOKENIZERS:
            raise ValueError(f"unknown word tokenizer {name!r}; choose from auto, {', '.join(TOKENIZERS)}")
        return name
    lang = normalize_language(lang)
    if lang is None:
        raise ValueError("the 'auto' word tokenizer needs the language of the text")
    if lang in AUTO_SEGMENTERS:
        return AUTO_SEGMENTERS[lang]
    if lang in UNSEGMENTED_LANGUAGES:
        return None
    return "moses"


def offsets_of(text: str, tokens: Sequence[str]) -> List[Word]:
    """Character offsets of ``tokens`` in ``text``: each token must follow the previous one
    with only whitespace in between. Tokens with inner whitespace are split at it (eflomal
    reads space-separated words)."""
    words, position = [], 0
    for token in tokens:
        for piece in _WHITESPACE_TOKEN.findall(token):
            begin = text.find(piece, position)
            if begin < 0 or text[position:begin].strip():
                raise TokenizationError(f"token {piece!r} is not the text at character {position} of {text!r}")
            words.append((begin, begin + len(piece)))
            position = begin + len(piece)
    if text[position:].strip():
        raise TokenizationError(f"the tokens do not cover {text[position:]!r} at the end of {text!r}")
    return words


def whitespace_words(text: str) -> List[Word]:
    return [m.span() for m in _WHITESPACE_TOKEN.finditer(text)]


class _Checked:
    """Wraps a token-string tokeniser: offsets from :func:`offsets_of`; a line whose tokens
    do not map back (a tokeniser that rewrote characters) falls back to whitespace words,
    counted in ``fallbacks`` and logged once."""

    def __init__(self, name: str, lang: Optional[str], tokens: Callable[[str], Sequence[str]]):
        self.name, self.lang, self.tokens = name, lang, tokens
        self.fallbacks = 0

    def __call__(self, text: str) -> List[Word]:
        try:
            return offsets_of(text, self.tokens(text))
        except TokenizationError as err:
            if not self.fallbacks:
                logger.warning("%s tokenizer (%s): %s; such lines use whitespace words (counted)",
                               self.name, self.lang, err)
            self.fallbacks += 1
            return whitespace_words(text)


def _moses(lang: str) -> Tokenizer:
    from sacremoses import MosesTokenizer

    tokenizer = MosesTokenizer(lang=lang or "en")
    return _Checked("moses", lang, lambda text: tokenizer.tokenize(text, escape=False,
                                                                    aggressive_dash_splits=False))


def _jieba(lang: str) -> Tokenizer:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return _Checked("jieba", lang, jieba.lcut)


def _fugashi(lang: str) -> Tokenizer:
    import fugashi

    tagger = fugashi.Tagger()  # UniDic-lite, found through the unidic_lite package
    return _Checked("fugashi", lang, lambda text: [word.surface for word in tagger(text)])


def _pythainlp(lang: str) -> Tokenizer:
    from pythainlp.tokenize import word_tokenize

    return _Checked("pythainlp", lang,
                    lambda text: word_tokenize(text, engine="newmm", keep_whitespace=False))


_BUILDERS = {"moses": _moses, "jieba": _jieba, "fugashi": _fugashi, "pythainlp": _pythainlp,
             "whitespace": lambda lang: whitespace_words}
_BUILT: Dict[Tuple[str, Optional[str]], Tokenizer] = {}


def get_tokenizer(name: str, lang: Optional[str] = None) -> Tokenizer:
    """The word tokeniser ``name`` (one of :data:`TOKENIZERS`; resolve ``auto`` first with
    :func:`resolve`) for ``lang``, built once per (name, language); the segmenter's package
    is imported here, on first use."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown word tokenizer {name!r}; choose from {', '.join(TOKENIZERS)}")
    key = (name, normalize_language(lang))
    if key not in _BUILT:
        try:
            _BUILT[key] = _BUILDERS[name](key[1])
        except ImportError as err:
            raise ImportError(f"the {name} word tokenizer needs a package that is not installed ({err}); "
                              "`make install` installs it") from err
    return _BUILT[key]


def tokenizer_fallbacks() -> Dict[str, int]:
    """Lines that fell back to whitespace words so far, per tokeniser and language."""
    return {f"{name}:{lang}": t.fallbacks for (name, lang), t in _BUILT.items()
            if isinstance(t, _Checked) and t.fallbacks}
