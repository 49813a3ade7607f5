"""Module 07's behaviour a user notices: misuse errors, the KV cache, the data, memory."""

import hashlib
import lzma

import numpy as np
import pytest

import tinytorch.attention as attention
from tinytorch.attention import (
    GPT,
    CausalSelfAttention,
    CharTokenizer,
    Dropout,
    Embedding,
    GPTConfig,
    KVCache,
    generate,
    graph_bytes_by_kind,
    load_shakespeare,
    scaled_dot_product_attention,
    softmax,
    train_val_split,
)
from tinytorch.autograd import Variable
from tinytorch.memory import memory_ledger

SMALL = GPTConfig(vocab_size=17, block_size=12, n_layer=2, n_head=2, n_embd=16)


def test_the_shipped_text_has_the_published_checksums():
    import tinytorch_datasets

    raw = tinytorch_datasets.SHAKESPEARE_FILE.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == tinytorch_datasets.SHAKESPEARE_SHA256
    assert tinytorch_datasets.SHAKESPEARE_SHA256 == attention.SHAKESPEARE_SHA256
    text = lzma.decompress(raw)
    assert hashlib.sha256(text).hexdigest() == tinytorch_datasets.SHAKESPEARE_TEXT_SHA256
    assert len(raw) < 2_000_000


def test_load_shakespeare_gives_the_works_and_a_character_vocabulary():
    text = load_shakespeare()
    assert text.startswith("ALL'S WELL THAT ENDS WELL")
    assert "To be, or not to be" in text
    tokenizer = CharTokenizer(text)
    sample = "ROMEO:\nBut soft, what light"
    assert tokenizer.decode(tokenizer.encode(sample)) == sample
    train, val = train_val_split(tokenizer.encode(text))
    assert len(train) + len(val) == len(text)
    assert abs(len(val) / len(text) - 0.1) < 1e-6


def test_a_corrupted_text_file_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / "shakespeare.txt.xz"
    bad.write_bytes(lzma.compress(b"not shakespeare"))
    monkeypatch.setattr(attention, "shakespeare_path", lambda: bad)
    with pytest.raises(ValueError, match="SHA-256"):
        load_shakespeare()


def test_a_character_outside_the_vocabulary_is_named():
    with pytest.raises(ValueError, match="'z'"):
        CharTokenizer("abc").encode("abz")


def test_embedding_names_the_bad_index_and_refuses_floats():
    emb = Embedding(5, 3)
    with pytest.raises(IndexError, match=r"index 7 at position \(1, 0\).*0 \.\. 4"):
        emb(np.array([[1, 2], [7, 0]]))
    with pytest.raises(TypeError, match="integers"):
        emb(np.array([1.0, 2.0]))


def test_gpt_refuses_a_sequence_longer_than_its_context():
    model = GPT(SMALL)
    with pytest.raises(ValueError, match="block_size=12"):
        model(np.zeros((1, 13), dtype=np.int64))


def test_heads_that_do_not_divide_the_width_are_refused():
    with pytest.raises(ValueError, match="n_embd=16 is not divisible by n_head=3"):
        CausalSelfAttention(GPTConfig(vocab_size=5, n_head=3, n_embd=16))


@pytest.mark.parametrize(
    ("k_shape", "v_shape", "words"),
    [((2, 5, 3), (2, 5, 4), "same last dimension"), ((2, 5, 4), (2, 6, 4), "same time length")],
)
def test_mismatched_q_k_v_name_the_shapes(k_shape, v_shape, words):
    q = np.zeros((2, 5, 4))
    with pytest.raises(ValueError, match=words) as error:
        scaled_dot_product_attention(q, np.zeros(k_shape), np.zeros(v_shape))
    assert str(k_shape) in str(error.value) and str(v_shape) in str(error.value)


def test_softmax_survives_huge_scores_and_masks_with_minus_infinity():
    x = np.array([[1000.0, 1001.0, -np.inf]])
    out = softmax(Variable(x)).data
    assert np.isfinite(out).all() and out[0, 2] == 0
    np.testing.assert_allclose(out[0, :2], [1 / (1 + np.e), np.e / (1 + np.e)])


def test_dropout_is_the_identity_in_eval_mode():
    drop = Dropout(0.5)
    x = np.ones((10, 10), dtype=np.float32)
    assert (drop(x).data == 0).any()
    np.testing.assert_array_equal(drop.eval()(x).data, x)


def test_kv_cache_gives_the_logits_of_the_full_forward():
    model = GPT(SMALL, seed=1, dtype=np.float64)
    ids = np.random.default_rng(0).integers(0, 17, size=(2, 9))
    full = model(ids).data
    cache = KVCache(SMALL.n_layer)
    parts = [model(ids[:, a:b], kv_cache=cache).data for a, b in ((0, 4), (4, 5), (5, 9))]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="9 cached"):
        model(ids[:, :4], kv_cache=cache)


@pytest.mark.parametrize("length", [5, 30])  # within the context, and well past it
def test_generation_with_and_without_the_cache_gives_the_same_tokens(length):
    model = GPT(SMALL, seed=2)
    prompt = np.array([3, 1, 4])
    kwargs = dict(temperature=1.5, top_k=10)
    plain = generate(
        model, prompt, length, generator=np.random.default_rng(9), use_cache=False, **kwargs
    )
    cached = generate(model, prompt, length, generator=np.random.default_rng(9), **kwargs)
    assert len(plain) == 3 + length
    np.testing.assert_array_equal(plain[:3], prompt)
    np.testing.assert_array_equal(cached, plain)
    assert model.training  # generate restores the mode it found


def test_generate_refuses_bad_settings():
    model = GPT(SMALL)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, [1], 2, temperature=0)
    with pytest.raises(IndexError, match="17 embeddings"):
        generate(model, [17], 2)


def test_attention_arrays_grow_four_times_when_the_context_doubles():
    sizes = []
    for T in (24, 48):
        config = GPTConfig(vocab_size=17, block_size=T, n_layer=2, n_head=2, n_embd=16)
        ids = np.random.default_rng(0).integers(0, 17, size=(2, T))
        kinds = graph_bytes_by_kind(GPT(config)(ids, targets=ids), config, T)
        sizes.append(kinds)
    attention_ratio = sizes[1]["attention (B·H·T²)"] / sizes[0]["attention (B·H·T²)"]
    other_ratio = sizes[1]["other activations (B·T·C)"] / sizes[0]["other activations (B·T·C)"]
    assert attention_ratio == pytest.approx(4.0)
    assert other_ratio == pytest.approx(2.0, rel=0.05)


def test_checkpointing_the_blocks_keeps_the_gradients_and_holds_far_less():
    config = GPTConfig(vocab_size=17, block_size=32, n_layer=4, n_head=2, n_embd=16)
    ids = np.random.default_rng(1).integers(0, 17, size=(4, 32))
    held, grads = {}, {}
    for segments in (None, 4):
        model = GPT(config, seed=3)
        loss = model(ids, targets=ids, checkpoint_segments=segments)
        ledger = memory_ledger(loss).bytes
        held[segments] = ledger["activations"] + ledger["intermediates"]
        loss.backward()
        grads[segments] = [p.grad for p in model.parameters()]
    for plain, checkpointed in zip(grads[None], grads[4], strict=True):
        np.testing.assert_array_equal(plain, checkpointed)
    assert held[4] <= 0.4 * held[None]


def test_demo_gpt_trains_a_few_steps_and_prints_text(capsys):
    from tinytorch_course.demo_gpt import show_gpt

    val = show_gpt(steps=3, minutes=1, small=True, progress=False)
    out = capsys.readouterr().out
    assert np.isfinite(val)
    assert "validation loss" in out and "ROMEO:" in out


def test_the_module_text_states_the_size_of_the_shipped_text():
    from pathlib import Path

    source = Path(__file__).resolve().parents[1] / "modules" / "07_attention" / "attention.py"
    text = source.read_text(encoding="utf-8")
    characters = f"{len(load_shakespeare()):,}".replace(",", " ")
    assert text.count(characters) >= 2  # the opening and Part 8
