"""Language codes: the ISO 639-1 code of the three-letter and variant codes in file names
(FLORES ``deu_Latn`` / ``zho_simpl``, NTREX ``zho-CN``, Tatoeba and WMT ``deu``)."""

_ISO_639_1 = {
    "afr": "af", "amh": "am", "ara": "ar", "arb": "ar", "bul": "bg", "ben": "bn", "cat": "ca",
    "ces": "cs", "cmn": "zh", "dan": "da", "deu": "de", "ell": "el", "eng": "en", "est": "et",
    "eus": "eu", "fas": "fa", "pes": "fa", "fin": "fi", "fra": "fr", "hau": "ha", "heb": "he",
    "hin": "hi", "hun": "hu", "ibo": "ig", "ind": "id", "ita": "it", "jpn": "ja", "kin": "rw",
    "kor": "ko", "lit": "lt", "lug": "lg", "mar": "mr", "nld": "nl", "pol": "pl", "por": "pt",
    "ron": "ro", "rus": "ru", "spa": "es", "swa": "sw", "swh": "sw", "tam": "ta", "tel": "te",
    "tha": "th", "tur": "tr", "ukr": "uk", "urd": "ur", "vie": "vi", "wol": "wo", "yor": "yo",
    "zho": "zh", "zho_simpl": "zh", "zho-CN": "zh", "zul": "zu", "xho": "xh",
    "lao": "lo", "khm": "km", "mya": "my", "lav": "lv",
}
THREE_LETTER_CODES = frozenset(_ISO_639_1)
TWO_LETTER_CODES = frozenset(_ISO_639_1.values())


def short_language_code(code: str) -> str:
    """ISO 639-1 code for a three-letter or variant code (``deu`` -> ``de``,
    ``zho_simpl`` -> ``zh``, ``deu_Latn`` -> ``de``); other codes are returned unchanged
    (``zho_trad`` stays, so it never collides with simplified Chinese)."""
    if code in _ISO_639_1:
        return _ISO_639_1[code]
    base, _, script = code.partition("_")
    if script in ("Latn", "Cyrl", "Arab", "Deva", "Grek", "Thai", "Jpan", "Hang", "Ethi", "Hebr"):
        return _ISO_639_1.get(base, code)
    return code
