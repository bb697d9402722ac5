"""TRIE: rotation identities, translation invariance of attention scores, reference positions."""
import torch

from trajzoo_transfertraj.trie import AbsoluteXYEncoding, TrieAttention, TrieRotary, reference_positions


def _rotary(seed=0):
    rot = TrieRotary(head_dim=16, min_wavelength_m=100.0, max_wavelength_m=20_000.0)
    with torch.no_grad():  # move away from the initialisation: the property must hold for any frequencies
        g = torch.Generator().manual_seed(seed)
        rot.log_magnitude.add_(0.3 * torch.randn(8, generator=g))
        rot.direction.add_(torch.randn(8, generator=g))
    return rot


def test_rotation_matrix_is_orthogonal_and_relative():
    rot = _rotary()
    a = torch.tensor([1234.5, -678.0], dtype=torch.float64)
    b = torch.tensor([-4321.0, 2500.25], dtype=torch.float64)
    ra, rb = rot.matrix(a), rot.matrix(b)
    eye = torch.eye(16, dtype=torch.float64)
    assert torch.allclose(ra.T @ ra, eye, atol=1e-12)
    assert torch.allclose(ra.T @ rb, rot.matrix(b - a), atol=1e-9)
    # and it is not trivially the identity
    assert (ra.T @ rb - eye).abs().max() > 0.1


def test_rotate_matches_matrix():
    rot = _rotary(1)
    p = torch.tensor([[350.0, -1200.0]])
    z = torch.randn(1, 16, generator=torch.Generator().manual_seed(3))
    cos, sin = rot.cos_sin(p, torch.float64)
    assert torch.allclose(rot.rotate(z.double(), cos, sin)[0], rot.matrix(p[0]) @ z[0].double(), atol=1e-10)


def test_attention_scores_invariant_to_translation_but_not_to_relative_change():
    torch.manual_seed(0)
    attn = TrieAttention(d_model=32, heads=2, rotary=_rotary())
    g = torch.Generator().manual_seed(5)
    h = torch.randn(2, 6, 32, generator=g)
    pos = torch.cumsum(torch.randn(2, 6, 2, generator=g) * 300.0, dim=1)
    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[1, 4:] = True
    s0 = attn.scores(h, pos, pad)
    s1 = attn.scores(h, pos + torch.tensor([15_000.0, -8_000.0]), pad)
    finite = torch.isfinite(s0)
    assert torch.equal(finite, torch.isfinite(s1))
    assert torch.allclose(s0[finite], s1[finite], atol=2e-4)
    out0, out1 = attn(h, pos, pad), attn(h, pos + torch.tensor([15_000.0, -8_000.0]), pad)
    assert torch.allclose(out0, out1, atol=2e-4)
    # stretching the trajectory changes relative positions, hence the scores
    s2 = attn.scores(h, pos * 2.0, pad)
    assert (s2[finite] - s0[finite]).abs().max() > 1e-2


def test_frequencies_are_learnable():
    attn = TrieAttention(d_model=32, heads=2, rotary=TrieRotary(16))
    h = torch.randn(1, 4, 32)
    pos = torch.randn(1, 4, 2) * 500
    attn(h, pos, torch.zeros(1, 4, dtype=torch.bool)).sum().backward()
    assert attn.rotary.log_magnitude.grad is not None and attn.rotary.log_magnitude.grad.abs().sum() > 0
    fixed = TrieRotary(16, learnable=False)
    assert not any(True for _ in fixed.parameters())


def test_reference_positions_interpolate_and_carry():
    values = torch.tensor([[[0.0, 0.0], [99, 99], [99, 99], [30.0, -3.0], [40.0, 4.0], [99, 99], [99, 99], [0, 0]]])
    hidden = torch.tensor([[False, True, True, False, False, True, True, False]])
    pad = torch.tensor([[False] * 7 + [True]])
    out = reference_positions(values, hidden, pad)
    expected = torch.tensor([[[0.0, 0.0], [10.0, -1.0], [20.0, -2.0], [30.0, -3.0], [40.0, 4.0], [40.0, 4.0],
                              [40.0, 4.0], [0.0, 0.0]]])
    assert torch.allclose(out, expected)


def test_absolute_encoding_depends_on_absolute_position():
    enc = AbsoluteXYEncoding(32)
    p = torch.tensor([[[0.0, 0.0], [500.0, 100.0]]])
    assert (enc(p) - enc(p + 1000.0)).abs().max() > 1e-3
