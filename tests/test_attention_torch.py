"""Module 07 against PyTorch in float64: every component forward and backward, and the
whole GPT over 20 AdamW steps with the same weights and batches."""

import numpy as np
import pytest

from tinytorch.attention import (
    GELU,
    GPT,
    Embedding,
    GPTConfig,
    LayerNorm,
    clip_grad_norm_,
    get_batch,
    gpt_optimizer,
    scaled_dot_product_attention,
    softmax,
)
from tinytorch.autograd import Variable

torch = pytest.importorskip("torch")
F = torch.nn.functional
pytestmark = pytest.mark.torch

RTOL, ATOL = 1e-10, 1e-12


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small float64 models: extra threads only contend on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def close(ours, theirs, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=rtol, atol=atol)


def leaves(*arrays):
    ours = [Variable(a.copy(), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    return ours, theirs


def backward_both(out, tout, rng):
    g = rng.standard_normal(out.shape)
    out.backward(g)
    tout.backward(torch.tensor(g))


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_matches_torch_forward_and_backward(axis):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5)) * 10
    (a,), (ta,) = leaves(x)
    out, tout = softmax(a, axis=axis), torch.softmax(ta, dim=axis)
    close(out.data, tout)
    backward_both(out, tout, rng)
    close(a.grad, ta.grad)


def test_embedding_matches_torch_with_repeated_indices():
    rng = np.random.default_rng(1)
    ours = Embedding(7, 4, dtype=np.float64)
    theirs = torch.nn.Embedding(7, 4).double()
    theirs.weight.data = torch.tensor(ours.weight.data.copy())
    ids = np.array([[3, 3, 0], [6, 3, 1]])
    out, tout = ours(ids), theirs(torch.tensor(ids))
    close(out.data, tout)
    backward_both(out, tout, rng)
    close(ours.weight.grad, theirs.weight.grad)


@pytest.mark.parametrize("shape", [(5,), (3, 5)])
def test_layernorm_matches_torch_forward_and_every_gradient(shape):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 3, 5)) * 3 + 2
    ours = LayerNorm(shape, dtype=np.float64)
    ours.weight.data[...] = rng.standard_normal(shape)
    ours.bias.data[...] = rng.standard_normal(shape)
    theirs = torch.nn.LayerNorm(shape).double()
    theirs.weight.data = torch.tensor(ours.weight.data.copy())
    theirs.bias.data = torch.tensor(ours.bias.data.copy())
    (a,), (ta,) = leaves(x)
    out, tout = ours(a), theirs(ta)
    close(out.data, tout)
    backward_both(out, tout, rng)
    close(a.grad, ta.grad)
    close(ours.weight.grad, theirs.weight.grad)
    close(ours.bias.grad, theirs.bias.grad)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch(approximate):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6)) * 3
    (a,), (ta,) = leaves(x)
    out, tout = GELU(approximate)(a), F.gelu(ta, approximate=approximate)
    close(out.data, tout)
    backward_both(out, tout, rng)
    close(a.grad, ta.grad)


@pytest.mark.parametrize("kind", ["none", "causal", "mask", "cross"])
def test_sdpa_matches_torch_forward_and_q_k_v_gradients(kind):
    rng = np.random.default_rng(4)
    tk = 7 if kind in ("mask", "cross") else 5
    q = rng.standard_normal((2, 3, 5, 4))
    k, v = rng.standard_normal((2, 2, 3, tk, 4))
    mask = None
    if kind == "mask":
        mask = rng.random((5, tk)) < 0.5
        mask[:, 0] = True
    (a, b, c), (ta, tb, tc) = leaves(q, k, v)
    causal = kind in ("causal", "cross")
    out = scaled_dot_product_attention(a, b, c, attn_mask=mask, is_causal=causal)
    tmask = None if mask is None else torch.tensor(mask)
    tout = F.scaled_dot_product_attention(ta, tb, tc, attn_mask=tmask, is_causal=causal)
    close(out.data, tout)
    backward_both(out, tout, rng)
    for ours, theirs in ((a, ta), (b, tb), (c, tc)):
        close(ours.grad, theirs.grad)


class TorchAttention(torch.nn.Module):
    def __init__(self, c, heads):
        super().__init__()
        self.heads = heads
        self.c_attn = torch.nn.Linear(c, 3 * c)
        self.c_proj = torch.nn.Linear(c, c)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(out.transpose(1, 2).reshape(B, T, C))


class TorchMLP(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = torch.nn.Linear(c, 4 * c)
        self.c_proj = torch.nn.Linear(4 * c, c)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class TorchBlock(torch.nn.Module):
    def __init__(self, c, heads):
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(c)
        self.attn = TorchAttention(c, heads)
        self.ln_2 = torch.nn.LayerNorm(c)
        self.mlp = TorchMLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TorchGPT(torch.nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        c = config.n_embd
        self.wte = torch.nn.Embedding(config.vocab_size, c)
        self.wpe = torch.nn.Embedding(config.block_size, c)
        self.blocks = torch.nn.ModuleList(
            TorchBlock(c, config.n_head) for _ in range(config.n_layer)
        )
        self.ln_f = torch.nn.LayerNorm(c)
        self.lm_head = torch.nn.Linear(c, config.vocab_size)

    def forward(self, ids, targets):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


CONFIG = GPTConfig(vocab_size=23, block_size=16, n_layer=2, n_head=4, n_embd=32)


def twin_models():
    ours = GPT(CONFIG, seed=5, dtype=np.float64)
    theirs = TorchGPT(CONFIG).double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    return ours, theirs


def test_state_dict_names_and_shapes_are_the_pytorch_models():
    ours, theirs = twin_models()
    expected = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert {k: v.shape for k, v in ours.state_dict().items()} == expected


def test_gpt_loss_and_every_gradient_match_torch():
    ours, theirs = twin_models()
    rng = np.random.default_rng(6)
    data = rng.integers(0, CONFIG.vocab_size, size=2000)
    x, y = get_batch(data, 4, CONFIG.block_size, rng)
    loss = ours(x, targets=y)
    tloss = theirs(torch.tensor(x), torch.tensor(y))
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-12)
    loss.backward()
    tloss.backward()
    tgrads = dict(theirs.named_parameters())
    for name, parameter in ours.named_parameters():
        close(parameter.grad, tgrads[name].grad, rtol=1e-8, atol=1e-12)


def test_twenty_adamw_steps_of_the_whole_gpt_match_torch():
    ours, theirs = twin_models()
    optimizer = gpt_optimizer(ours, lr=3e-3, weight_decay=0.1)
    decay = [p for p in theirs.parameters() if p.ndim >= 2]
    rest = [p for p in theirs.parameters() if p.ndim < 2]
    toptimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
        lr=3e-3,
        betas=(0.9, 0.99),
    )
    rng = np.random.default_rng(7)
    data = np.tile(rng.permutation(CONFIG.vocab_size), 200)  # learnable: a fixed cycle
    losses, tlosses = [], []
    for _ in range(20):
        x, y = get_batch(data, 8, CONFIG.block_size, rng)
        loss = ours(x, targets=y)
        ours.zero_grad()
        loss.backward()
        clip_grad_norm_(ours.parameters(), 1.0)
        optimizer.step()
        tloss = theirs(torch.tensor(x), torch.tensor(y))
        toptimizer.zero_grad()
        tloss.backward()
        torch.nn.utils.clip_grad_norm_(theirs.parameters(), 1.0)
        toptimizer.step()
        losses.append(loss.item())
        tlosses.append(tloss.item())
    np.testing.assert_allclose(losses, tlosses, rtol=1e-6)
    assert losses[-1] < losses[0] - 0.3  # it learned something: not a frozen twin pair
    tstate = theirs.state_dict()
    for name, value in ours.state_dict().items():
        np.testing.assert_allclose(value, tstate[name].numpy(), rtol=1e-6, atol=1e-9)
