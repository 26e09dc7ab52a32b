#!/usr/bin/env python3
"""Self-tests of the numpy reference. Run from this folder:  python3 -m unittest -v test_reference

Only numpy is needed (no torch, no pytest). Target runtime: well under a minute on 2 cores.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import compare  # noqa: E402
import hf_reference  # noqa: E402  (must import without torch)
import make_tiny_checkpoint as mk  # noqa: E402
import moe_reference as ref  # noqa: E402

PROMPT = [5, 17, 3, 42, 9, 88, 23, 61, 7, 30]
ARCHS = ["mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v2", "deepseek_v3", "moepp", "glm4_moe"]


class TmpDirCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="moe_ref_test_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def write(self, name, arch, tensors, config, dtype="F32", shards=1, gen=None, keep_f32=()):
        d = self.path(name)
        mk.write_checkpoint(d, config, tensors, dtype, shards, gen or {"eos_token_id": 2}, keep_f32)
        return d


# ----------------------------------------------------------------------------------------
class SafetensorsTests(TmpDirCase):
    def test_roundtrip_f32_f16_bf16(self):
        rng = np.random.default_rng(0)
        a = rng.standard_normal((3, 5)).astype(np.float32)
        b = rng.standard_normal((7,)).astype(np.float32)
        p = self.path("x.safetensors")
        mk.write_safetensors(p, [("a32", a, "F32"), ("a16", a, "F16"), ("abf", a, "BF16"), ("b", b, "BF16")])
        f = ref.SafetensorsFile(p)
        self.assertEqual(f.data_start % 8, 0)
        np.testing.assert_array_equal(f.get_f64("a32"), a.astype(np.float64))
        np.testing.assert_array_equal(f.get_f64("a16"), a.astype(np.float16).astype(np.float64))
        got = f.get_f64("abf")
        self.assertLess(np.max(np.abs(got - a) / np.abs(a)), 2.0 ** -8)
        # widened BF16 values are exactly representable in float32 with 16 zero low bits
        self.assertTrue(np.all((got.astype(np.float32).view(np.uint32) & 0xFFFF) == 0))
        self.assertEqual(f.info("abf")["shape"], [3, 5])

    def test_bf16_bits(self):
        vals = np.array([1.0, -2.5, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -9, 0.0, 65504.0], dtype=np.float32)
        bits = mk.f32_to_bf16_bits(vals)
        self.assertEqual(int(bits[0]), 0x3F80)
        self.assertEqual(int(bits[1]), 0xC020)
        self.assertEqual(int(bits[2]), 0x3F80)  # tie -> even
        self.assertEqual(int(bits[3]), 0x3F81)  # 1 + 0.75 ulp -> rounds up to 1 + 2^-7
        back = ref.bf16_bits_to_f32(bits)
        self.assertEqual(float(back[0]), 1.0)
        self.assertEqual(float(back[1]), -2.5)
        self.assertEqual(float(back[3]), 1.0 + 2.0 ** -7)

    def test_missing_tensor_and_bad_shape_fail_loudly(self):
        d = self.path("m")
        mk.make("mixtral", d)
        ck = ref.Checkpoint(d)
        with self.assertRaises(KeyError):
            ck.get("model.does.not.exist")
        with self.assertRaises(ValueError):
            ck.get("model.norm.weight", (3,))


# ----------------------------------------------------------------------------------------
class RopeTests(unittest.TestCase):
    def test_yarn_deepseek_v3_vector(self):
        low, high = ref.yarn_correction_range(32, 1, 64, 1e4, 4096, truncate=True)
        self.assertEqual((low, high), (10, 23))
        inv, af, lh = ref.yarn_parameters(1e4, 64, 40.0, 4096, 32, 1, 1.0, 1.0)
        self.assertEqual(af, 1.0)
        self.assertEqual(lh, (10, 23))
        # extrapolated below low, interpolated (/factor) above high
        j = np.arange(0, 64, 2) / 64
        self.assertAlmostEqual(inv[5], 1.0 / 1e4 ** j[5], places=15)
        self.assertAlmostEqual(inv[30], 1.0 / (40.0 * 1e4 ** j[30]), places=15)

    def test_yarn_gpt_oss_vector(self):
        low, high = ref.yarn_correction_range(32, 1, 64, 1.5e5, 4096, truncate=False)
        self.assertAlmostEqual(low, 8.0928, places=4)
        self.assertAlmostEqual(high, 17.3980, places=4)
        _, af, _ = ref.yarn_parameters(1.5e5, 64, 32.0, 4096, truncate=False)
        self.assertAlmostEqual(af, 1.34657, places=5)
        self.assertAlmostEqual(af * af, 1.8133, places=4)

    def test_yarn_ramp_formula(self):
        inv, _, (low, high) = ref.yarn_parameters(1e4, 16, 4.0, 256)
        for i in range(8):
            p = 1e4 ** (2 * i / 16)
            ramp = min(max((i - low) / ((high + (0.001 if low == high else 0)) - low), 0.0), 1.0)
            extra = 1 - ramp
            self.assertAlmostEqual(inv[i], (1 / (4 * p)) * (1 - extra) + (1 / p) * extra, places=15)

    def test_deepseek_softmax_scale_vectors(self):
        # V2-Lite: qk head 192, factor 40, mscale_all_dim 0.707 -> 0.114721; V3 (mscale_all_dim 1.0) -> 0.135234
        m = ref.yarn_get_mscale(40, 0.707)
        self.assertAlmostEqual(192 ** -0.5 * m * m, 0.114721, places=6)
        m = ref.yarn_get_mscale(40, 1.0)
        self.assertAlmostEqual(192 ** -0.5 * m * m, 0.135234, places=6)
        cfg = {"qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
               "rope_scaling": {"type": "yarn", "factor": 40, "mscale_all_dim": 0.707}}
        self.assertAlmostEqual(hf_reference.expected_deepseek_scale(cfg), 0.114721, places=6)

    def test_interleaved_equals_half_split_under_deinterleave(self):
        rng = np.random.default_rng(1)
        T, n, d = 6, 3, 8
        q, k = rng.standard_normal((T, n, d)), rng.standard_normal((T, n, d))
        inv = 1.0 / (1e4 ** (np.arange(0, d, 2) / d))
        ang = ref.rope_angles(inv, np.arange(T))
        perm = np.concatenate([np.arange(0, d, 2), np.arange(1, d, 2)])  # de-interleave
        qi, ki = ref.apply_rope_interleaved(q, ang, 1.0), ref.apply_rope_interleaved(k, ang, 1.0)
        qh, kh = ref.apply_rope_half(q[..., perm], ang, 1.0), ref.apply_rope_half(k[..., perm], ang, 1.0)
        np.testing.assert_allclose(qi[..., perm], qh, atol=1e-13)
        np.testing.assert_allclose(np.einsum("thd,shd->hts", qi, ki), np.einsum("thd,shd->hts", qh, kh), atol=1e-12)
        # rotation preserves norms; relative position property: q_m . k_n depends on m - n only
        np.testing.assert_allclose(np.linalg.norm(qi, axis=-1), np.linalg.norm(q, axis=-1), atol=1e-12)
        same = np.stack([q[0]] * T)
        r = ref.apply_rope_half(same, ang, 1.0)
        self.assertAlmostEqual(float(np.sum(r[2] * r[1])), float(np.sum(r[5] * r[4])), places=12)

    def test_half_split_pairs_i_with_i_plus_half(self):
        d = 8
        x = np.zeros((2, 1, d))
        x[:, 0, 1] = 1.0  # element 1 pairs with element 5
        inv = np.array([0.0, 0.5, 0.0, 0.0])
        out = ref.apply_rope_half(x, ref.rope_angles(inv, [0, 1]), 1.0)
        np.testing.assert_allclose(out[1, 0], [0, math.cos(0.5), 0, 0, 0, math.sin(0.5), 0, 0], atol=1e-15)

    def test_dynamic_ntk(self):
        spec = ref.RopeSpec("dynamic", 1e4, {"factor": 2.0}, 16)
        default = ref.RopeSpec("default", 1e4, {}, 16)
        for T in (1, 10, 16):
            np.testing.assert_array_equal(spec.inv_freq(8, T)[0], default.inv_freq(8, T)[0])
        inv, af = spec.inv_freq(8, 24)
        base = 1e4 * ((2.0 * 24 / 16) - 1.0) ** (8 / 6)
        np.testing.assert_allclose(inv, 1.0 / base ** (np.arange(0, 8, 2) / 8), rtol=1e-14)
        self.assertEqual(af, 1.0)

    def test_resolve_rope_spellings(self):
        base = {"max_position_embeddings": 64}
        a = ref.resolve_rope({**base, "rope_theta": 500.0, "rope_scaling": {"type": "linear", "factor": 2.0}}, 1e4)
        b = ref.resolve_rope({**base, "rope_theta": 500.0, "rope_scaling": {"rope_type": "linear", "factor": 2.0}}, 1e4)
        c = ref.resolve_rope({**base, "rope_parameters": {"rope_type": "linear", "rope_theta": 500.0, "factor": 2.0}}, 1e4)
        for s in (a, b, c):
            self.assertEqual((s.rope_type, s.theta), ("linear", 500.0))
            np.testing.assert_array_equal(s.inv_freq(8, 4)[0], a.inv_freq(8, 4)[0])
        with self.assertRaises(NotImplementedError):
            ref.resolve_rope({**base, "rope_scaling": {"type": "llama3", "factor": 8.0}}, 1e4)
        # yarn: top-level original_max_position_embeddings wins; factor from the dict
        y = ref.resolve_rope({**base, "rope_theta": 1e4, "original_max_position_embeddings": 8,
                              "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}}, 1e4)
        np.testing.assert_array_equal(y.inv_freq(16, 4)[0], ref.yarn_parameters(1e4, 16, 4.0, 8)[0])


# ----------------------------------------------------------------------------------------
class RoutingTests(unittest.TestCase):
    @staticmethod
    def logit(p):
        p = np.asarray(p, dtype=np.float64)
        return np.log(p / (1 - p))

    def test_softmax_topk(self):
        logits = np.array([[0.0, 2.0, 1.0, -1.0]])
        idx, w = ref.route_softmax_topk(logits, 2, renormalize=False)
        p = np.exp(logits[0]) / np.exp(logits[0]).sum()
        self.assertEqual(idx.tolist(), [[1, 2]])
        np.testing.assert_allclose(w[0], [p[1], p[2]])
        _, w2 = ref.route_softmax_topk(logits, 2, renormalize=True)
        np.testing.assert_allclose(w2[0], [p[1] / (p[1] + p[2]), p[2] / (p[1] + p[2])])
        np.testing.assert_allclose(w2[0], np.exp([2.0, 1.0]) / np.exp([2.0, 1.0]).sum())  # = softmax of the two

    def test_topk_ties_lowest_index_first(self):
        self.assertEqual(ref.topk_desc(np.array([[1.0, 3.0, 3.0, 0.0]]), 3).tolist(), [[1, 2, 0]])

    def test_deepseek_v3_group_sum_of_top2_and_bias_selection_only(self):
        s = np.array([0.95, 0.05, 0.80, 0.78, 0.60, 0.55, 0.30, 0.20])
        bias = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.5, 0.0])
        # biased: [.95,.05 | .8,.78 | .6,.65 | .8,.2] -> group top-2 sums 1.0, 1.58, 1.25, 1.0
        # keep groups 1 and 2 (a max-based group score would keep group 0 instead)
        idx, w = ref.route_deepseek_v3(self.logit(s)[None], bias, top_k=3, n_group=4, topk_group=2,
                                       norm_topk_prob=True, routed_scaling_factor=2.5)
        self.assertEqual(idx.tolist(), [[2, 3, 5]])  # 5 beats 4 only thanks to its bias
        np.testing.assert_allclose(w[0], 2.5 * np.array([0.80, 0.78, 0.55]) / (0.80 + 0.78 + 0.55), rtol=1e-12)
        self.assertAlmostEqual(float(w.sum()), 2.5, places=12)

    def test_deepseek_v3_mask_is_zero_not_minus_inf(self):
        # kept group's biased scores are negative, so masked experts (0.0) outrank them, as in HF
        s = np.array([0.9, 0.8, 0.5, 0.5])
        bias = np.array([-2.0, -2.0, -3.0, -3.0])
        idx, w = ref.route_deepseek_v3(self.logit(s)[None], bias, top_k=3, n_group=2, topk_group=1,
                                       norm_topk_prob=False, routed_scaling_factor=1.0)
        self.assertEqual(idx.tolist(), [[2, 3, 0]])
        np.testing.assert_allclose(w[0], [0.5, 0.5, 0.9], rtol=1e-12)

    def test_deepseek_v2_greedy_and_group_limited(self):
        logits = np.log(np.array([[0.30, 0.05, 0.25, 0.20, 0.02, 0.18]]))  # softmax = these probs
        idx, w = ref.route_deepseek_v2(logits, 2, "greedy", None, None, False, 16.0)
        self.assertEqual(idx.tolist(), [[0, 2]])
        np.testing.assert_allclose(w[0], 16.0 * np.array([0.30, 0.25]), rtol=1e-12)
        # groups of 2: maxima .30, .25, .18 -> keep 2 groups {0,1} and {2,3}
        idx, w = ref.route_deepseek_v2(logits, 3, "group_limited_greedy", 3, 2, False, 1.0)
        self.assertEqual(idx.tolist(), [[0, 2, 3]])
        idx, w = ref.route_deepseek_v2(logits, 3, "group_limited_greedy", 3, 1, True, 16.0)
        self.assertEqual(idx.tolist(), [[0, 1, 2]])  # only group 0 kept, then masked zeros (lowest index)
        np.testing.assert_allclose(w[0], np.array([0.30, 0.05, 0.25]) / (0.60 + 1e-20), rtol=1e-12)

    def test_moepp_gating(self):
        E = 8
        logits = np.array([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0]])  # zero expert (7) top, copy (6) second
        idx, g = ref.route_moepp(logits, False, False, 1.0)
        self.assertEqual(idx.tolist(), [[7, 6]])
        np.testing.assert_allclose(g, [[0.0, 1.0]])
        idx, g = ref.route_moepp(logits, True, False, 1.0)  # Mixtral gating: softmax over the 2 logits
        np.testing.assert_allclose(g[0], np.exp([2.0, 1.0]) / np.exp([2.0, 1.0]).sum())
        # logits norm uses the unbiased std (torch.std default)
        lg = np.array([[0.5, -1.0, 2.0, 0.0, 0.3, 0.1, -0.4, 0.9]])
        idx, g = ref.route_moepp(lg, False, True, 0.5)
        p = ref.softmax(lg / (np.std(lg, ddof=1) / 0.5))
        self.assertEqual(idx.tolist(), [[2, 7]])
        np.testing.assert_allclose(g, [[1.0, 0.0]])
        idx, g = ref.route_moepp(lg[:, [0, 1, 2, 3, 4, 5, 7, 6]], False, True, 0.5)
        self.assertEqual(idx.tolist(), [[2, 6]])
        np.testing.assert_allclose(g[0], p[0, [2, 7]] / p[0, [2, 7]].sum())


# ----------------------------------------------------------------------------------------
class MoEPlusPlusForcedRoutingTests(TmpDirCase):
    """End-to-end: attention output is zeroed (o_proj = 0) and embeddings/norm weights are made
    positive, so the MoE input x is positive; with gate.wg.0 = ones, tanh(W1 x) == 1 exactly and
    the gate logits equal the row sums of gate.wg.2, which the test sets at will."""

    H, V, E, I = 32, 96, 8, 16

    def build(self, logits_rows, overrides=None, layers=1, gate_map=None):
        c = mk.base_config("moepp")
        c.update(num_hidden_layers=layers, **(overrides or {}))
        t, _ = mk.build_tensors("moepp", c, seed=7)
        t["model.embed_tokens.weight"] = np.abs(t["model.embed_tokens.weight"]) + 0.1
        for i in range(layers):
            p = f"model.layers.{i}."
            t[p + "self_attn.o_proj.weight"][:] = 0.0
            t[p + "post_attention_layernorm.weight"] = np.abs(t[p + "post_attention_layernorm.weight"])
            t[p + "mlp.moe.gate.wg.0.weight"][:] = 1.0
            w2 = np.zeros((self.E, 8 * self.E), dtype=np.float32)
            w2[:, 0] = np.asarray(logits_rows[i], dtype=np.float32)
            t[p + "mlp.moe.gate.wg.2.weight"] = w2
            if gate_map is not None:
                t[p + "mlp.moe.gate.gate_map.weight"] = np.asarray(gate_map, dtype=np.float32)
        d = self.write("moepp", "moepp", t, c)
        return d, c, t

    def expected_logits(self, c, t, moe_out_fn, tok):
        e = t["model.embed_tokens.weight"].astype(np.float64)[tok]
        eps = c["rms_norm_eps"]
        x = ref.rms_norm(e, t["model.layers.0.post_attention_layernorm.weight"].astype(np.float64), eps)
        h = e + moe_out_fn(x)
        h = ref.rms_norm(h, t["model.norm.weight"].astype(np.float64), eps)
        return h @ t["lm_head.weight"].astype(np.float64).T

    def ffn(self, t, e, xin):
        p = f"model.layers.0.mlp.moe.experts.experts.{e}."
        up = xin @ t[p + "up_proj.weight"].astype(np.float64).T
        a = up[..., :self.I] / (1 + np.exp(-up[..., :self.I])) * up[..., self.I:]
        return a @ t[p + "down_proj.weight"].astype(np.float64).T

    def run_model(self, d, ids=(3, 9, 4)):
        m = ref.ReferenceModel(d, strict=True)
        logits, gates = m.forward(list(ids))
        return m, logits, gates

    def test_zero_plus_copy_gives_2x(self):
        E = self.E
        d, c, t = self.build([[0, 0, 0, 0, 0, 0, 3.0, 5.0]])  # zero (7) first, copy (6) second
        _, logits, gates = self.run_model(d)
        self.assertEqual(gates[0][1].tolist(), [[7, 6]] * 3)
        np.testing.assert_allclose(gates[0][2], [[0.0, 1.0]] * 3)
        exp = self.expected_logits(c, t, lambda x: 2.0 * x, [3, 9, 4])
        np.testing.assert_allclose(logits, exp, atol=1e-11)
        self.assertEqual(E, 8)

    def test_ffn_plus_zero_gives_ffn_of_2x(self):
        d, c, t = self.build([[4.0, 0, 0, 0, 0, 0, 0, 2.0]])
        _, logits, gates = self.run_model(d)
        self.assertEqual(gates[0][1].tolist(), [[0, 7]] * 3)
        np.testing.assert_allclose(gates[0][2], [[1.0, 0.0]] * 3)
        exp = self.expected_logits(c, t, lambda x: self.ffn(t, 0, 2.0 * x), [3, 9, 4])
        np.testing.assert_allclose(logits, exp, atol=1e-11)

    def test_constant_plus_ffn(self):
        d, c, t = self.build([[0, 1.0, 0, 0, 2.0, 0, 0, 0]])  # constant expert 4 (=E-4), FFN 1
        _, logits, gates = self.run_model(d)
        self.assertEqual(gates[0][1].tolist(), [[4, 1]] * 3)
        g4 = 1.0 / (1.0 + math.exp(-1.0))
        np.testing.assert_allclose(gates[0][2], [[g4, 1 - g4]] * 3, rtol=1e-12)
        p = "model.layers.0.mlp.moe.experts.experts.4."
        wc, v = t[p + "wg.weight"].astype(np.float64), t[p + "constant"].astype(np.float64)

        def moe(x):
            xin = 2.0 * x
            a = ref.softmax(xin @ wc.T)
            return g4 * (a[:, :1] * xin + a[:, 1:] * v) + (1 - g4) * self.ffn(t, 1, xin)

        np.testing.assert_allclose(logits, self.expected_logits(c, t, moe, [3, 9, 4]), atol=1e-11)

    def test_mixtral_gating_no_x2_and_zero_expert_weight_kept(self):
        d, c, t = self.build([[0, 0, 0, 0, 0, 0, 3.0, 5.0]], {"moe_use_mixtral_gating": True})
        _, logits, gates = self.run_model(d)
        g = np.exp([5.0, 3.0]) / np.exp([5.0, 3.0]).sum()
        self.assertEqual(gates[0][1].tolist(), [[7, 6]] * 3)
        np.testing.assert_allclose(gates[0][2], [g] * 3, rtol=1e-12)
        np.testing.assert_allclose(logits, self.expected_logits(c, t, lambda x: g[1] * x, [3, 9, 4]), atol=1e-11)

    def test_no_mul_topk_flag(self):
        d, c, t = self.build([[0, 0, 0, 0, 0, 0, 3.0, 5.0]], {"moe_feature_no_mul_topk": True})
        _, logits, _ = self.run_model(d)
        np.testing.assert_allclose(logits, self.expected_logits(c, t, lambda x: x, [3, 9, 4]), atol=1e-11)

    def test_gate_residual_is_cumulative(self):
        # layer 0 logits L0 from wg; layers 1, 2 have wg.2 = 0 so their logits are G @ (previous logits)
        L0 = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 5.0])
        perm = np.roll(np.eye(8), 1, axis=0)  # (G v)[i] = v[i-1]
        d, c, t = self.build([L0, np.zeros(8), np.zeros(8)], layers=3, gate_map=perm)
        _, _, gates = self.run_model(d)
        self.assertEqual(gates[0][1].tolist()[0], [7, 6])
        self.assertEqual(gates[1][1].tolist()[0], [0, 7])  # L1 = roll(L0): 5 at index 0, 3 at index 7
        np.testing.assert_allclose(gates[1][2][0], [1.0, 0.0])
        self.assertEqual(gates[2][1].tolist()[0], [1, 0])  # L2 = roll(L1)
        np.testing.assert_allclose(gates[2][2][0], [1.0 / (1.0 + math.exp(-2.0)), 1.0 / (1.0 + math.exp(2.0))])


# ----------------------------------------------------------------------------------------
class ModelTests(TmpDirCase):
    def test_all_architectures_f32_and_bf16(self):
        for arch in ARCHS:
            for dtype in ("F32", "BF16"):
                with self.subTest(arch=arch, dtype=dtype):
                    d = self.path(f"{arch}_{dtype}")
                    c = mk.make(arch, d, dtype, seed=3)
                    m = ref.ReferenceModel(d, strict=True)
                    gen, lpl, gates = m.generate(PROMPT, 3, ignore_eos=True)
                    self.assertEqual(len(gen), 3)
                    self.assertEqual(lpl.shape, (c["vocab_size"],))
                    self.assertTrue(np.all(np.isfinite(lpl)))
                    self.assertEqual([r[0] for r in gates], sorted(m.moe_layers))
                    k = m.k
                    for layer, idx, w in gates:
                        self.assertEqual(idx.shape, (len(PROMPT), k))
                        self.assertTrue(all(len(set(row)) == k for row in idx.tolist()))
                        sums = w.sum(axis=1)
                        if arch in ("mixtral", "qwen3_moe", "moepp"):
                            np.testing.assert_allclose(sums, 1.0, rtol=1e-12)
                        elif arch in ("deepseek_v3", "glm4_moe"):
                            np.testing.assert_allclose(sums, 2.5, rtol=1e-12)
                        else:  # no renormalisation
                            self.assertTrue(np.all(sums < 1.0))

    def test_layer_selection_rules(self):
        d = self.path("q2")
        mk.make("qwen2_moe", d, overrides={"num_hidden_layers": 4, "decoder_sparse_step": 2, "mlp_only_layers": [3]})
        self.assertEqual(ref.ReferenceModel(d).moe_layers, {1})
        d = self.path("q2b")
        mk.make("qwen2_moe", d, overrides={"num_hidden_layers": 5, "use_sliding_window": True, "sliding_window": 3,
                                           "max_window_layers": 3})
        self.assertEqual(ref.ReferenceModel(d).window, [3, None, 3, None, None])  # transformers v5 rule
        d = self.path("v2")
        mk.make("deepseek_v2", d, overrides={"num_hidden_layers": 4, "first_k_dense_replace": 2})
        self.assertEqual(ref.ReferenceModel(d).moe_layers, {2, 3})
        for name, (arch, _, _, ov, _, _) in mk.SUITE.items():
            if arch == "moepp":
                continue
            c = mk.base_config(arch)
            c.update({k: v for k, v in ov.items() if v is not None})
            dd = self.path("rule_" + name)
            mk.write_checkpoint(dd, c, {"x": np.zeros(1, np.float32)}, "F32")
            m = ref.ReferenceModel(dd)
            self.assertEqual(m.moe_layers, hf_reference.expected_moe_layers(c["architectures"][0], c), name)
            if arch.startswith("deepseek"):
                self.assertAlmostEqual(m.softmax_scale, hf_reference.expected_deepseek_scale(c), places=15)

    def test_sharded_equals_single(self):
        for arch in ("mixtral", "deepseek_v3"):
            a, b = self.path(arch + "_1"), self.path(arch + "_3")
            mk.make(arch, a, "BF16", shards=1, seed=5)
            mk.make(arch, b, "BF16", shards=3, seed=5)
            self.assertTrue(os.path.exists(os.path.join(b, "model.safetensors.index.json")))
            self.assertEqual(ref.run(a, PROMPT, 3, True), ref.run(b, PROMPT, 3, True))

    def test_bf16_checkpoint_is_widened_exactly(self):
        c = mk.base_config("qwen3_moe")
        t, _ = mk.build_tensors("qwen3_moe", c, seed=9)
        rounded = {n: ref.bf16_bits_to_f32(mk.f32_to_bf16_bits(a)) for n, a in t.items()}
        a = self.write("bf16", "qwen3_moe", t, c, "BF16")
        b = self.write("f32r", "qwen3_moe", rounded, c, "F32")
        ra, rb = ref.run(a, PROMPT, 2, True), ref.run(b, PROMPT, 2, True)
        self.assertEqual(ra["last_prompt_logits"], rb["last_prompt_logits"])

    def test_greedy_equals_argmax_of_fresh_forward(self):
        for arch in ("qwen2_moe", "deepseek_v2", "moepp"):
            d = self.path(arch)
            mk.make(arch, d, seed=11)
            m = ref.ReferenceModel(d)
            gen, lpl, _ = m.generate(PROMPT, 4, ignore_eos=True)
            fresh = ref.ReferenceModel(d)
            for i, tok in enumerate(gen):
                logits, _ = fresh.forward(PROMPT + gen[:i])
                self.assertEqual(tok, int(np.argmax(logits[-1])))
            self.assertEqual(gen[0], int(np.argmax(lpl)))

    def test_eos_stop_rule(self):
        d = self.path("eos")
        mk.make("olmoe", d, seed=13)
        m = ref.ReferenceModel(d)
        full, _, _ = m.generate(PROMPT, 5, ignore_eos=True)
        stop = full[1]
        if stop in full[:1]:
            self.skipTest("degenerate sequence")
        with open(os.path.join(d, "generation_config.json"), "w") as f:
            json.dump({"eos_token_id": [95, stop]}, f)
        self.assertEqual(ref.ReferenceModel(d).generate(PROMPT, 5)[0], full[:2])
        self.assertEqual(ref.ReferenceModel(d).generate(PROMPT, 5, ignore_eos=True)[0], full)
        os.remove(os.path.join(d, "generation_config.json"))  # falls back to config.json eos_token_id
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        cfg["eos_token_id"] = stop
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f)
        self.assertEqual(ref.ReferenceModel(d).generate(PROMPT, 5)[0], full[:2])

    def test_tied_embeddings(self):
        c = mk.base_config("mixtral")
        t, _ = mk.build_tensors("mixtral", c, seed=17)
        t["lm_head.weight"] = t["model.embed_tokens.weight"].copy()
        untied = self.write("untied", "mixtral", t, c)
        c2 = dict(c, tie_word_embeddings=True)
        t2 = {k: v for k, v in t.items() if k != "lm_head.weight"}
        tied = self.write("tied", "mixtral", t2, c2)
        self.assertEqual(ref.run(untied, PROMPT, 3, True), ref.run(tied, PROMPT, 3, True))

    def test_fused_v5_expert_layout_accepted(self):
        c = mk.base_config("mixtral")
        t, _ = mk.build_tensors("mixtral", c, seed=19)
        per_expert = self.write("per", "mixtral", t, c)
        E = c["num_local_experts"]
        fused = {}
        for n, a in t.items():
            if ".block_sparse_moe." not in n:
                fused[n] = a
        for i in range(c["num_hidden_layers"]):
            p = f"model.layers.{i}."
            fused[p + "mlp.gate.weight"] = t[p + "block_sparse_moe.gate.weight"]
            w1 = np.stack([t[p + f"block_sparse_moe.experts.{e}.w1.weight"] for e in range(E)])
            w3 = np.stack([t[p + f"block_sparse_moe.experts.{e}.w3.weight"] for e in range(E)])
            fused[p + "mlp.experts.gate_up_proj"] = np.concatenate([w1, w3], axis=1)
            fused[p + "mlp.experts.down_proj"] = np.stack([t[p + f"block_sparse_moe.experts.{e}.w2.weight"]
                                                           for e in range(E)])
        fd = self.write("fused", "mixtral", fused, c)
        self.assertEqual(ref.run(per_expert, PROMPT, 3, True), ref.run(fd, PROMPT, 3, True, strict=True))

    def test_sliding_window(self):
        rng = np.random.default_rng(2)
        q, k, v = rng.standard_normal((6, 2, 4)), rng.standard_normal((6, 1, 4)), rng.standard_normal((6, 1, 4))
        full = ref.attention_core(q, k, v, 0.5)
        np.testing.assert_allclose(ref.attention_core(q, k, v, 0.5, window=6), full, atol=1e-14)
        w2 = ref.attention_core(q, k, v, 0.5, window=2)
        # window 2: position 4 sees keys 3 and 4 only
        s = np.array([q[4, 1] @ k[3, 0], q[4, 1] @ k[4, 0]]) * 0.5
        p = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
        np.testing.assert_allclose(w2[4, 1], p[0] * v[3, 0] + p[1] * v[4, 0], atol=1e-14)
        np.testing.assert_allclose(w2[1], full[1], atol=1e-14)  # positions < W unaffected
        d1, d2 = self.path("sw_big"), self.path("sw_small")
        mk.make("mixtral", d1, seed=23, overrides={"sliding_window": 64})
        mk.make("mixtral", d2, seed=23, overrides={"sliding_window": 3})
        d0 = self.path("sw_none")
        mk.make("mixtral", d0, seed=23)
        r0, r1, r2 = (ref.run(d, PROMPT, 1, True)["last_prompt_logits"] for d in (d0, d1, d2))
        self.assertEqual(r0, r1)
        self.assertGreater(np.max(np.abs(np.array(r0) - np.array(r2))), 1e-6)

    def test_rope_spellings_give_same_model(self):
        outs = []
        for i, ov in enumerate([
            {"rope_theta": 1e4, "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16}},
            {"rope_theta": 1e4, "rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                                                 "original_max_position_embeddings": 16}},
            {"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0,
                                 "original_max_position_embeddings": 16}},
        ]):
            d = self.path(f"sp{i}")
            mk.make("qwen3_moe", d, seed=29, overrides=ov)
            if "rope_parameters" in ov:
                with open(os.path.join(d, "config.json")) as f:
                    cj = json.load(f)
                cj.pop("rope_theta")
                with open(os.path.join(d, "config.json"), "w") as f:
                    json.dump(cj, f)
            outs.append(ref.run(d, PROMPT, 2, True))
        self.assertEqual(outs[0], outs[1])
        self.assertEqual(outs[0], outs[2])
        d = self.path("sp_default")
        mk.make("qwen3_moe", d, seed=29, overrides={"rope_theta": 1e4})
        self.assertNotEqual(ref.run(d, PROMPT, 1, True)["last_prompt_logits"], outs[0]["last_prompt_logits"])

    def test_deepseek_v3_mtp_layers_ignored(self):
        c = mk.base_config("deepseek_v3")
        t, keep = mk.build_tensors("deepseek_v3", c, seed=31)
        L = c["num_hidden_layers"]
        self.assertTrue(any(n.startswith(f"model.layers.{L}.") for n in t))
        with_mtp = self.write("mtp", "deepseek_v3", t, c, keep_f32=keep)
        t2 = {n: a for n, a in t.items() if not n.startswith(f"model.layers.{L}.")}
        without = self.write("nomtp", "deepseek_v3", t2, dict(c, num_nextn_predict_layers=0), keep_f32=keep)
        self.assertEqual(ref.run(with_mtp, PROMPT, 2, True, strict=True)["last_prompt_logits"],
                         ref.run(without, PROMPT, 2, True, strict=True)["last_prompt_logits"])
        hdr, _, _ = ref.read_safetensors_header(os.path.join(with_mtp, "model.safetensors"))
        self.assertEqual(hdr["model.layers.1.mlp.gate.e_score_correction_bias"]["dtype"], "F32")

    def test_strict_coverage_catches_stray_tensor(self):
        c = mk.base_config("olmoe")
        t, _ = mk.build_tensors("olmoe", c, seed=37)
        t["model.layers.0.self_attn.q_proj.bias"] = np.zeros(32, np.float32)  # attention_bias is false
        d = self.write("stray", "olmoe", t, c)
        with self.assertRaises(ValueError):
            ref.run(d, PROMPT, 1, True, strict=True)
        with contextlib.redirect_stderr(io.StringIO()):
            ref.run(d, PROMPT, 1, True, strict=False)


# ----------------------------------------------------------------------------------------
class GlmTests(TmpDirCase):
    def test_partial_rotary_rotates_the_first_dims_half_split_with_their_own_frequencies(self):
        d = self.path("glm")
        mk.make("glm4_moe", d, seed=43)  # head_dim 12, partial_rotary_factor 0.5
        m = ref.ReferenceModel(d)
        self.assertEqual((m.head_dim, m.rope_dim), (12, 6))
        inv, af = m.rope.inv_freq(m.rope_dim, 8)
        np.testing.assert_allclose(inv, [1e6 ** (-0.0 / 6), 1e6 ** (-2.0 / 6), 1e6 ** (-4.0 / 6)], rtol=1e-15)
        x = np.arange(1.0, 13.0).reshape(1, 1, 12)
        pos = 5
        y = ref.apply_rope_partial_half(x, ref.rope_angles(inv, [pos]), af, m.rope_dim)
        for i in range(3):  # element i pairs with i + 3 (half of the 6 rotated), angle pos * theta^(-2i/6)
            a = pos * 1e6 ** (-2.0 * i / 6)
            self.assertAlmostEqual(y[0, 0, i], x[0, 0, i] * math.cos(a) - x[0, 0, i + 3] * math.sin(a), places=12)
            self.assertAlmostEqual(y[0, 0, i + 3], x[0, 0, i + 3] * math.cos(a) + x[0, 0, i] * math.sin(a), places=12)
        np.testing.assert_array_equal(y[0, 0, 6:], x[0, 0, 6:])

    def test_partial_rotary_factor_spellings_and_default(self):
        self.assertEqual(ref.glm_partial_rotary_factor({}), 0.5)
        self.assertEqual(ref.glm_partial_rotary_factor({"partial_rotary_factor": 0.25}), 0.25)
        self.assertEqual(ref.glm_partial_rotary_factor(
            {"partial_rotary_factor": 0.25, "rope_parameters": {"rope_type": "default", "partial_rotary_factor": 1.0}}),
            1.0)
        d = self.path("odd")
        mk.make("glm4_moe", d, overrides={"partial_rotary_factor": 0.75})  # 12 * 0.75 = 9 rotated: odd
        with self.assertRaises(ValueError):
            ref.ReferenceModel(d)

    def test_layers_biases_norms_and_shared_experts_are_read(self):
        d = self.path("glm_rules")
        mk.make("glm4_moe", d, overrides={"num_hidden_layers": 4, "first_k_dense_replace": 2, "n_shared_experts": 2})
        m = ref.ReferenceModel(d, strict=True)
        self.assertEqual(m.moe_layers, {2, 3})
        m.generate(PROMPT, 1, ignore_eos=True)  # strict: every tensor (biases, q/k norms, shared MLP) was read
        self.assertIn("model.layers.2.mlp.shared_experts.up_proj.weight", m.ckpt.used)
        self.assertIn("model.layers.0.self_attn.q_proj.bias", m.ckpt.used)

    def test_mtp_layers_ignored(self):
        c = mk.base_config("glm4_moe")
        t, keep = mk.build_tensors("glm4_moe", c, seed=47)
        L = c["num_hidden_layers"]
        self.assertTrue(any(n.startswith(f"model.layers.{L}.") for n in t))
        with_mtp = self.write("mtp", "glm4_moe", t, c, keep_f32=keep)
        t2 = {n: a for n, a in t.items() if not n.startswith(f"model.layers.{L}.")}
        without = self.write("nomtp", "glm4_moe", t2, dict(c, num_nextn_predict_layers=0), keep_f32=keep)
        self.assertEqual(ref.run(with_mtp, PROMPT, 2, True, strict=True)["last_prompt_logits"],
                         ref.run(without, PROMPT, 2, True, strict=True)["last_prompt_logits"])
        hdr, _, _ = ref.read_safetensors_header(os.path.join(with_mtp, "model.safetensors"))
        self.assertEqual(hdr["model.layers.1.mlp.gate.e_score_correction_bias"]["dtype"], "F32")


# ----------------------------------------------------------------------------------------
class CliAndCompareTests(TmpDirCase):
    def quiet(self, fn, *a):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = fn(*a)
        return rc, buf.getvalue()

    def test_cli_json_format_and_compare(self):
        d = self.path("m")
        mk.make("deepseek_v2", d, seed=41)
        out_a = self.path("a.json")
        rc, _ = self.quiet(ref.main, [d, "--prompt-ids", ",".join(map(str, PROMPT)), "--max-new-tokens", "3",
                                      "--ignore-eos", "--output", out_a])
        self.assertEqual(rc, 0)
        with open(out_a) as f:
            r = json.load(f)
        self.assertEqual(list(r.keys()), ["format", "architecture", "prompt_token_ids", "generated_token_ids",
                                          "last_prompt_logits", "gate"])
        self.assertEqual(r["format"], "moe-serve.generation.v2")
        self.assertEqual(r["architecture"], "DeepseekV2ForCausalLM")
        self.assertEqual(list(r["gate"][0].keys()), ["layer", "experts", "weights"])
        rc, text = self.quiet(compare.main, [out_a, out_a])
        self.assertEqual(rc, 0, text)
        self.assertEqual(sum(1 for ln in text.splitlines() if ln.startswith("PASS ")), 5)
        self.assertIn("ALL PASS", text)

        b = json.loads(json.dumps(r))
        b["last_prompt_logits"][7] += 2e-4
        b["generated_token_ids"][2] = (b["generated_token_ids"][2] + 1) % 96
        row = b["gate"][0]["experts"][3]
        row.reverse()
        b["gate"][0]["weights"][3].reverse()
        out_b = self.path("b.json")
        with open(out_b, "w") as f:
            json.dump(b, f)
        rc, text = self.quiet(compare.main, [out_a, out_b])
        self.assertEqual(rc, 1)
        self.assertIn("FAIL logits", text)
        self.assertIn("first divergence at step 2", text)
        self.assertIn("1 of them only in order", text)
        self.assertIn("PASS weights", text)  # matched by expert id
        rc, text = self.quiet(compare.main, [out_a, out_b, "--atol", "1e-3"])
        self.assertIn("PASS logits", text)

    def test_hf_reference_skips_moepp_without_torch(self):
        d = self.path("pp")
        mk.make("moepp", d)
        res, rc = hf_reference.run(d, [1, 2, 3], 2)
        self.assertEqual(rc, 3)
        self.assertIn("skipped", res)
        self.assertEqual(res["architecture"], "MoeForCausalLM")
        p = self.path("skip.json")
        with open(p, "w") as f:
            json.dump(res, f)
        rc, text = self.quiet(compare.main, [p, p])
        self.assertEqual(rc, 2)

    def test_suite_builds_and_runs(self):
        root = self.path("suite")
        entries = mk.make_suite(root)
        self.assertGreaterEqual(len(entries), 20)
        archs = {e["architecture"] for e in entries}
        self.assertEqual(archs, set(ref.SUPPORTED))
        for e in entries:
            with self.subTest(e["name"]):
                r = ref.run(os.path.join(root, e["dir"]), e["prompt_ids"], min(e["max_new_tokens"], 2),
                            e["ignore_eos"], strict=True)
                self.assertTrue(all(math.isfinite(v) for v in r["last_prompt_logits"]))


if __name__ == "__main__":
    unittest.main()
