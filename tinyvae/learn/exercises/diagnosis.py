"""Naming what is wrong with a learner's answer: its shape, a known mistake, a factor off, a sign, an ε
that is not the forward's, and the probes at extreme inputs.
"""

from __future__ import annotations

import numpy as np

from .. import solutions
from .calling import _as_outputs, _call, _is_numeric
from .spec import SIZES


BCE_PROBE_LOGITS = np.array([[1e4, -1e4, 30.0, -30.0, 0.0, 800.0, -800.0]] * 2)


# Log weights far outside exp's range (float64 overflows above 709.8 and underflows below −745).
IWAE_PROBE_LOG_W = np.array([[-1e4, -1e4 + 1.0, -1e4 - 3.0, -1e4 + 0.5, -1e4 - 20.0, -1e4 + 2.0],
                             [800.0, 801.0, 790.0, 805.0, 799.5, 760.0],
                             [-800.0, -805.0, -790.0, -801.0, -2000.0, -795.0]])


def _check_outputs(ex, case, got, ref, fn):
    """One line per wrong output; outputs explained by the same known mistake share one line, and come first.

    When a catalogued mistake names some outputs, the other wrong values are marked as possibly caused by
    it: one slip upstream (in ψ, say) often changes several gradients in ways no catalogue lists.
    """
    problems, grouped, named, others = _swapped(ex, got, ref), {}, {}, []
    swapped = {n for p in problems for n in p.split(" are swapped")[0].split(" and ")}
    for name in ex.outputs:
        if name in swapped:
            continue
        g, r = got[name], np.asarray(ref[name], dtype=np.float64)
        link = f"[{ex.read[name].split('#')[1]}]"
        sym = "(" + ", ".join(ex.shapes[name]) + ("," if len(ex.shapes[name]) == 1 else "") + ")"
        if g is None:
            bias = name.startswith(("db", "b_"))
            problems.append(f"{name} is missing" + (": the bias gradient was forgotten; a bias gets the "
                                                    f"upstream gradient summed over the batch {link}" if bias else ""))
        elif not _is_numeric(g):
            problems.append(f"{name}: expected numbers, got a {type(g).__name__}")
        elif np.shape(g) != r.shape:
            problems.append(_shape_problem(name, np.asarray(g, dtype=np.float64), r, sym, link))
        else:
            g = np.asarray(g, dtype=np.float64)
            if np.allclose(g, r, rtol=1e-7, atol=1e-12 * max(1.0, np.abs(r).max(initial=0))):
                continue
            mistake = _known_mistake(ex, case, name, g, r)
            if mistake:
                named.setdefault(mistake.hint, []).append(name)
                continue
            key, text = _value_problem(ex, case, name, g, r, link, fn)
            if np.asarray(got[name]).dtype in (np.float32, np.float16):
                text += f" (and it is {np.asarray(got[name]).dtype}: keep float64, a gradient check needs it)"
            if key:
                grouped.setdefault(key, []).append((name, text))
            else:
                others.append(text)
    first = [_named_line(ex, case, ref, hint, names) for hint, names in named.items()]
    for key, items in grouped.items():
        if len(items) == 1:
            others.append(items[0][1])
        else:
            others.append(f"{', '.join(n for n, _ in items)}: " + ("each is " if key.startswith("exactly") else "") + key)
    if first and others:
        others = [text + " (this may follow from the mistake named above; fix that one first)" for text in others]
    problems = first + problems + others
    if ex.name == "vae_backward" and problems:
        problems.append(_locate(got, ref))
    return problems


def _named_line(ex, case, ref, hint, names):
    """'name, name: hint', or the mistake's ``partial`` wording when it explains only some of the outputs
    it would change (e.g. the log-det term's gradient dropped from da but kept in dc)."""
    changed = [m for m in ex.mistakes if m.hint == hint and _differs(m, case, ref)]
    partial = next((m.partial for m in changed if m.partial), "")
    if partial and set(names) < {m.output for m in changed}:
        hint = partial
    return f"{', '.join(names)}: {hint}"


def _mistake_value(m, case):
    with np.errstate(all="ignore"):
        return np.asarray(m.wrong(case), dtype=np.float64)


def _differs(m, case, ref):
    """Whether mistake ``m`` changes its output at all on this case."""
    w, r = _mistake_value(m, case), np.asarray(ref[m.output], dtype=np.float64)
    return w.shape != r.shape or not np.allclose(w, r, rtol=1e-7)


def _swapped(ex, got, ref):
    """Two outputs of one shape returned in each other's places: one line per such pair."""
    def equal(a, b):
        return (a is not None and _is_numeric(a) and np.shape(a) == np.shape(b)
                and np.allclose(np.asarray(a, dtype=np.float64), b, rtol=1e-7, atol=1e-12))

    out, seen = [], set()
    ref = {k: np.asarray(v, dtype=np.float64) for k, v in ref.items()}
    for i, a in enumerate(ex.outputs):
        for b in ex.outputs[i + 1:]:
            if {a, b} & seen or ref[a].shape != ref[b].shape or np.allclose(ref[a], ref[b]):
                continue
            if equal(got[a], ref[b]) and equal(got[b], ref[a]):
                seen |= {a, b}
                if ex.name == "vae_backward":  # a dict: the keys are mixed up
                    out.append(f"{a} and {b} are swapped: yours are exactly the right values under each other's keys")
                else:
                    out.append(f"{a} and {b} are swapped: yours are exactly the right values in each other's places. "
                               f"Return ({', '.join(ex.outputs)}) in this order")
    return out


def _locate(got, ref):
    """For the VAE: the first wrong gradient walking back from the loss points at the faulty step."""
    order = ["W_out", "b_out", "W_dec", "b_dec", "W_mu", "b_mu", "W_logvar", "b_logvar", "W_enc", "b_enc"]
    right = [k for k in order if got[k] is not None and _is_numeric(got[k]) and np.shape(got[k]) == ref[k].shape
             and np.allclose(np.asarray(got[k], dtype=np.float64), ref[k], rtol=1e-7, atol=1e-12)]
    wrong = [k for k in order if k not in right]
    return (f"walking back from the loss, right: {', '.join(right) or 'none'}; wrong: {', '.join(wrong)}. "
            f"The first wrong one, {wrong[0]}, points at the step that computes it.")


def _known_mistake(ex, case, name, g, r):
    """The catalogued mistake that produces exactly ``g`` (and not the right answer), or None."""
    for m in ex.mistakes:
        if m.output == name:
            w = _mistake_value(m, case)
            if w.shape == g.shape and not np.allclose(w, r, rtol=1e-7) and np.allclose(g, w, rtol=1e-7, atol=1e-12):
                return m
    return None


def _shape_problem(name, g, r, sym, link):
    text = f"{name}: expected shape {r.shape} = {sym}, got {g.shape}"
    if g.ndim == 2 and g.shape == r.shape[::-1]:
        if np.allclose(g.T, r, rtol=1e-7):
            return text + f": a missing transpose; yours is exactly the right {name}, transposed {link}"
        return text + f", the transposed shape: a missing transpose (and the values differ too) {link}"
    if r.ndim == 1 and g.ndim == 3 and g.shape[0] == r.shape[0]:
        return text + (": summed over the batch only. A convolution's bias is added at every output position "
                       "too, so its gradient sums dy over examples and positions, axes (0, 2, 3) [eq:conv-grad-b]")
    if r.ndim == 4 and g.shape == (r.shape[1], r.shape[0], *r.shape[2:]):
        return text + (": the two channel axes are swapped; the kernel (and its gradient) is (F, C, k, k), output "
                       f"channels first {link}")
    if r.ndim == 1 and g.ndim == 2 and g.shape[1] == r.shape[0]:
        if g.shape[0] == 1:
            return text + ": drop the keepdims, the result is one-dimensional"
        return text + (": not summed over the batch. A bias is shared by all N examples, so its gradient "
                       f"sums the upstream gradient over axis 0 {link}")
    if r.ndim == 1 and g.ndim == 1 and g.shape[0] == SIZES["N"]:
        return text + f": summed over the wrong axis; sum over the batch, axis 0 {link}"
    if r.ndim == 0 and name.startswith("d"):
        return text + (f": a gradient has the shape of what it differentiates, and {name[1:]} is a single "
                       f"number, so {name} is one too; yours keeps an axis (return a number, e.g. a sum) {link}")
    if r.ndim == 0:
        return text + (": the loss is one number, the sum over D (or Z) averaged over N; yours keeps an axis "
                       "[eq:loss-reduction]")
    if g.ndim == 0:
        return text + f": a single number where an array of shape {sym} is meant"
    return text + f" {link}"


def _known_factors(ex):
    n, d, z = SIZES["N"], SIZES["D"], SIZES["Z"]
    inner = {"bce_with_logits": ("D", d, "pixels"), "gaussian_kl": ("Z", z, "latent dimensions")}.get(ex.name)
    f = {2.0: "a missing ½", 0.5: "an extra ½ (or a missing factor 2)",
         float(n): f"a sum over the batch where the mean is meant: the loss averages over the N = {n} examples, "
                   "so divide by N [eq:loss-reduction]",
         1.0 / n: f"divided by N = {n} once too often" + (f": {ex.scale_note}" if ex.scale_note else "")}
    if inner:
        letter, size, what = inner
        f[1.0 / size] = (f"averaged over the {letter} = {size} {what} too: sum over {letter}, mean over N only "
                         "[eq:loss-reduction]")
        f[1.0 / (size * n)] = (f"a mean over every entry (np.mean): sum over the {letter} = {size} {what}, then "
                               "average over N [eq:loss-reduction]")
    return f


def _ratio_hint(ex, c):
    """Name the factor c (yours = c × right) when it is one of the usual suspects."""
    sign = c < 0
    mag = abs(c)
    for factor, text in _known_factors(ex).items():
        if np.isclose(mag, factor, rtol=1e-6):
            if sign:
                return f"the wrong sign and {text}"
            return text
    if sign and np.isclose(mag, 1.0, rtol=1e-6):
        return "the wrong sign"
    return None


def _value_problem(ex, case, name, g, r, link, fn):
    """(group key or None, text): what is wrong with a same-shape output ``g`` (reference ``r``)."""
    if not np.all(np.isfinite(g)):
        bad = np.argwhere(~np.isfinite(g))
        return None, f"{name} contains NaN or inf (at {len(bad)} entries, first {tuple(int(i) for i in bad[0])}): an overflow {link}"
    scale = float((r * r).sum())
    c = float((g * r).sum() / scale) if scale > 0 else 0.0
    proportional = scale > 0 and np.allclose(g, c * r, rtol=1e-6, atol=1e-12 * np.abs(r).max())
    head = f"{name} is wrong"
    if g.ndim == 0:
        head += f": yours {float(g):.6g}, expected {float(r):.6g}"
    else:
        i = np.unravel_index(int(np.argmax(np.abs(g - r))), g.shape)
        rel = np.abs(g - r).max() / max(np.abs(g).max(), np.abs(r).max(), 1e-300)
        head += (f": relative error {rel:.2e} (the largest difference over the largest entry), worst at index "
                 f"{tuple(int(k) for k in i)}: yours {g[i]:.6g}, expected {r[i]:.6g}")
    if proportional:
        hint = _ratio_hint(ex, c)
        if hint:
            return f"exactly {c:.4g} × the right one: {hint}", f"{head}. Yours is exactly {c:.4g} × the right one: {hint} {link}"
        if g.ndim > 0 and not np.isclose(c, 0.0):
            return None, f"{head}. Yours is the right one times {c:.4g}: a constant factor is off {link}"
    if not np.any(g) and np.any(r):
        bias = name.startswith(("db", "b_"))
        return None, f"{head}. It is all zeros" + (": the bias gradient was forgotten" if bias else "") + f" {link}"
    if ex.name == "reparameterize_backward" and name == "dlog_var" and _eps_out_of_place(case, g):
        return None, (f"{head}. It equals ½·dz·ε'·σ where ε' holds the forward's ε values in other places "
                      "(transposed, reversed or shuffled): each entry of z has its own ε, and its gradient uses "
                      "that same entry [eq:reparam-grad-logvar]")
    if ex.name == "reparameterize_backward" and name == "dlog_var" and _uses_another_eps(fn, ex, case, g):
        return None, (f"{head}. It equals ½·dz·ε'·σ for an ε' that is not the forward's ε: the wrong ε. "
                      "The backward must use the very ε the forward drew; with a fresh one the reconstruction "
                      "stops pulling on σ [eq:reparam-grad-logvar]")
    return None, f"{head} {link}"


def _eps_out_of_place(case, g):
    """Whether g = ½·dz·ε'·σ for an ε' whose entries are the forward's ε rearranged."""
    denom = 0.5 * case["dz"] * case["std"]
    if np.any(np.abs(denom) < 1e-8):
        return False
    e = g / denom
    return (np.all(np.isfinite(e)) and not np.allclose(e, case["eps"], rtol=1e-6)
            and np.allclose(np.sort(e, axis=None), np.sort(case["eps"], axis=None), rtol=1e-7, atol=1e-12))


def _uses_another_eps(fn, ex, case, g):
    """Whether g = ½·dz·ε'·σ for an ε' that looks like an independent N(0, 1) draw.

    Two tests, both needed: ε' has the sample mean and spread of N(0, 1) noise, and it is independent
    of the ε passed in (the answer stays the same when ε is replaced by another draw). A formula
    built on the right ε with a wrong factor (σ², √σ, 1/(2σ), ...) fails the second test.
    """
    denom = 0.5 * case["dz"] * case["std"]
    if np.any(np.abs(denom) < 1e-8):
        return False
    e = g / denom
    n = e.size
    if not np.all(np.isfinite(e)) or abs(e.mean()) > 4 / np.sqrt(n) or not 0.35 < e.std() < 2.0:
        return False
    def dlog_var(inputs):
        result, err = _call(fn, ex, inputs)
        out = None if err is not None else _as_outputs(ex, result).get("dlog_var")
        ok = out is not None and _is_numeric(out) and np.shape(out) == g.shape
        return np.asarray(out, dtype=np.float64) if ok else None

    again = dlog_var(case)
    if again is not None and not np.allclose(again, g, rtol=1e-12, atol=0):
        return True  # a fresh draw on every call: independent of the ε passed in by construction
    other = dlog_var(dict(case, eps=np.random.default_rng(99).standard_normal(case["eps"].shape)))
    return other is not None and np.allclose(other, g, rtol=1e-12, atol=0)


def _bce_probe(fn, ex):
    """Logits of ±1e4 (and ±800, beyond exp's range): the loss and gradient must stay finite and exact."""
    x = np.zeros_like(BCE_PROBE_LOGITS)
    x[0] = 1.0
    x[1, ::2] = 1.0
    x[1, 1::2] = 0.3
    case = {"logits": BCE_PROBE_LOGITS.copy(), "x": x}
    result, err = _call(fn, ex, case)
    if err is not None:
        return [f"with logits of ±1e4 your code raised {type(err).__name__}: {err}"]
    got = _as_outputs(ex, result)
    ref = _as_outputs(ex, solutions.bce_with_logits(case["logits"], case["x"]))
    out = []
    for k in ex.outputs:
        if got[k] is None or not _is_numeric(got[k]):
            continue  # already reported on the main inputs
        g, r = np.asarray(got[k], dtype=np.float64), np.asarray(ref[k], dtype=np.float64)
        if not np.all(np.isfinite(g)):
            out.append(f"{k} is not finite for logits of ±1e4: exp overflows (or log(0) appears). Use the stable "
                       "form max(l, 0) − x·l + log1p(exp(−|l|)), whose exp never sees a positive number "
                       "[eq:bce-stable]")
        elif g.shape != r.shape or not np.allclose(g, r, rtol=1e-7, atol=1e-9):
            out.append(f"{k} is wrong for large logits (±1e4, ±800): clipping or an overflowing step changes it; "
                       "the stable form is exact at any size [eq:bce-stable]")
    return out


def _iwae_probe(fn, ex):
    """Log weights of ±1e4 and ±800: the loss and gradient must stay finite and exact."""
    case = {"log_w": IWAE_PROBE_LOG_W.copy()}
    result, err = _call(fn, ex, case)
    if err is not None:
        return [f"with log weights of ±1e4 your code raised {type(err).__name__}: {err}"]
    got = _as_outputs(ex, result)
    ref = _as_outputs(ex, solutions.iwae_loss(case["log_w"]))
    out = []
    for k in ex.outputs:
        if got[k] is None or not _is_numeric(got[k]):
            continue
        g, r = np.asarray(got[k], dtype=np.float64), np.asarray(ref[k], dtype=np.float64)
        if not np.all(np.isfinite(g)):
            out.append(f"{k} is not finite for log weights of −1e4 or 800: exp overflows (e^800 = inf) or "
                       "underflows to 0 (then log 0 = −inf, or 0/0). Take each example's largest log weight m "
                       "out first: log Σ_k e^(a_k) = m + log Σ_k e^(a_k − m), and w̃ = e^(a − m) / Σ e^(a − m) "
                       "[eq:log-mean-exp] [eq:iwae-weights]")
        elif g.shape != r.shape or not np.allclose(g, r, rtol=1e-9, atol=1e-12):
            out.append(f"{k} is wrong for log weights of ±1e4 and ±800: clipping or an overflowing step changes it; "
                       "the log-sum-exp with the maximum taken out is exact at any size [eq:log-mean-exp]")
    return out
