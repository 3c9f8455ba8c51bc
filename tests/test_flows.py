"""The flow steps (tinyvae/models/parts/flows.py, iaf.py): log-determinants against numpy.linalg.slogdet of
finite-difference Jacobians, the planar constraint wᵀû ≥ −1, the MADE masks' autoregressive property, the
orderings, and every backward pass (through z' and through the log-determinant) by central differences.

Each step is drawn away from its initialization (``gradcheck_flows.randomize_flow``): planar steps with
wᵀu < −1 where the constraint moves u, IAF heads of unit scale.
"""

import numpy as np
import pytest

from tinyvae.learn.gradcheck_flows import check_flow_step, randomize_flow
from tinyvae.models.parts.flows import Flow, PlanarStep
from tinyvae.models.parts.iaf import ORDERING_SEED, IAFStep, made_masks, orderings

H = 1e-5  # central-difference step of the gradient checks
H_JAC = 1e-3  # step of the five-point central differences of the Jacobians


def fd_jacobian(fn, z):
    """∂fn(z)_i/∂z_j of one row z (Z,) by five-point central differences, error O(h⁴): (Z_out, Z).

    The two-point formula's O(h²) error is about 1e-7 in the log-determinant of a 3-step IAF whose
    σ(s) are small; the five-point one brings it under 1e-10.
    """
    cols = []
    for j in range(z.shape[0]):
        e = np.zeros_like(z)
        e[j] = H_JAC
        cols.append((8 * (fn(z + e) - fn(z - e)) - (fn(z + 2 * e) - fn(z - 2 * e))) / (12 * H_JAC))
    return np.stack(cols, axis=1)


def planar_flow(z_dim, steps, seed):
    rng = np.random.default_rng(seed)
    return randomize_flow(Flow([PlanarStep(z_dim, rng=rng, dtype=np.float64) for _ in range(steps)]), rng)


def iaf_flow(z_dim, steps, hidden, seed):
    rng = np.random.default_rng(seed)
    flow = Flow([IAFStep(o, hidden, hidden, rng=rng, dtype=np.float64) for o in orderings(z_dim, steps)],
                context=hidden)
    return randomize_flow(flow, rng)


def flow_width(flow):
    """Z of a flow's steps."""
    p = flow.layers[0].params
    return len(p["u"] if "u" in p else p["bm"])


def flows_to_check():
    """(name, flow, context) of one step and of several, each kind."""
    rng = np.random.default_rng(7)
    return [("planar, 1 step", planar_flow(4, 1, 0), None), ("planar, 5 steps", planar_flow(4, 5, 1), None),
            ("iaf, 1 step", iaf_flow(4, 1, 6, 2), rng.standard_normal((1, 6))),
            ("iaf, 3 steps", iaf_flow(5, 3, 6, 3), rng.standard_normal((1, 6)))]


@pytest.mark.parametrize("name, flow, context", flows_to_check(), ids=lambda v: v if isinstance(v, str) else "")
def test_log_det_matches_slogdet_of_a_finite_difference_jacobian(name, flow, context):
    rng = np.random.default_rng(11)
    for _ in range(5):
        z = rng.normal(0.0, 1.5, flow_width(flow))
        _, log_det = flow.forward(z[None, :], context)
        jac = fd_jacobian(lambda v: flow.forward(v[None, :], context)[0][0], z)
        sign, want = np.linalg.slogdet(jac)
        assert sign == 1.0, f"{name}: the Jacobian's determinant must be positive (the step is invertible)"
        assert abs(log_det[0] - want) <= 1e-8, f"{name}: log-det {log_det[0]!r}, slogdet {want!r}"


def test_planar_u_hat_keeps_w_dot_u_hat_at_least_minus_one_and_moves_u_only_along_w():
    step = PlanarStep(3, rng=np.random.default_rng(0), dtype=np.float64)
    step.params["w"][...] = [1.0, -2.0, 0.5]
    for s in (-50.0, -3.0, -1.0, 0.0, 4.0):  # wᵀu from far below −1 to above
        step.params["u"][...] = np.array([0.3, 1.0, -0.7])
        step.params["u"][...] += (s - step.params["w"] @ step.params["u"]) * step.params["w"] / 5.25
        u_hat, wu, w_u_hat = step.u_hat()
        assert wu == pytest.approx(s)
        assert step.params["w"] @ u_hat == pytest.approx(w_u_hat, abs=1e-12)
        assert w_u_hat >= -1.0  # [eq:planar-u-hat]
        assert w_u_hat == pytest.approx(np.log1p(np.exp(s)) - 1.0, abs=1e-12)
        moved = u_hat - step.params["u"]
        np.testing.assert_allclose(np.cross(moved, step.params["w"]), 0.0, atol=1e-12)  # along w only


def test_planar_step_with_w_dot_u_far_below_minus_one_stays_invertible_everywhere():
    step = PlanarStep(2, rng=np.random.default_rng(0), dtype=np.float64)
    step.params["w"][...] = [2.0, 1.0]
    step.params["u"][...] = [-4.0, -2.0]  # wᵀu = −10: unconstrained, 1 + h′ wᵀu < 0 near a = 0
    z = np.random.default_rng(1).normal(0, 2, (500, 2))
    _, log_det = step.forward(z)
    assert np.isfinite(log_det).all()


def test_made_outputs_depend_only_on_earlier_dimensions_in_the_ordering():
    z_dim, hidden = 6, 10
    order = orderings(z_dim, 2)[1]
    step = randomize_flow(Flow([IAFStep(order, hidden, 4, rng=np.random.default_rng(3), dtype=np.float64)]),
                          np.random.default_rng(4)).layers[0]
    context = np.random.default_rng(5).standard_normal((1, 4))
    z = np.random.default_rng(6).standard_normal(z_dim)
    for out in (0, 1):  # m, then s
        jac = fd_jacobian(lambda v: step.made(v[None, :], context)[out][0], z)  # (Z, Z): ∂out_i/∂z_j
        for i in range(z_dim):
            for j in range(z_dim):
                if order[j] >= order[i]:
                    assert jac[i, j] == 0.0, f"output {i} (position {order[i]}) reads z_{j} (position {order[j]})"
                else:  # every earlier dimension is read: the masks are not simply empty
                    assert abs(jac[i, j]) > 1e-6, f"output {i} ignores the earlier z_{j}"


def test_made_masks_follow_the_degree_rule():
    order = np.array([2, 0, 3, 1])
    m1, m2 = made_masks(order, 5)
    degrees = np.arange(5) % 3
    assert m1.shape == (4, 5) and m2.shape == (5, 4)
    np.testing.assert_array_equal(m1, order[:, None] <= degrees[None, :])
    np.testing.assert_array_equal(m2, degrees[:, None] < order[None, :])
    paths = m1 @ m2  # paths from input j to output i through the hidden layer
    for i in range(4):
        for j in range(4):
            assert (paths[j, i] > 0) == (order[j] < order[i])


def test_made_masks_give_every_degree_a_hidden_unit_and_refuse_too_few_units():
    for z_dim, hidden in ((2, 1), (5, 4), (5, 9), (7, 100)):
        order = orderings(z_dim, 1)[0]
        m1, m2 = made_masks(order, hidden)
        paths = m1 @ m2  # (Z, Z): paths from input j to output i
        earlier = order[:, None] < order[None, :]  # entry (j, i): position of j before position of i
        assert (paths[earlier] > 0).all() and (paths[~earlier] == 0).all(), (z_dim, hidden)
    with pytest.raises(ValueError, match="Z = 5 needs at least Z − 1 = 4 hidden units, one for each degree, got 3"):
        made_masks(orderings(5, 1)[0], 3)


def test_orderings_are_a_fixed_seeded_permutation_reversed_each_step():
    first = np.random.default_rng(ORDERING_SEED).permutation(7)
    steps = orderings(7, 4)
    np.testing.assert_array_equal(steps[0], first)
    for a, b in zip(steps, steps[1:]):
        np.testing.assert_array_equal(b, a[::-1])
    assert sorted(first) == list(range(7))


def test_iaf_jacobian_is_triangular_in_the_ordering_with_sigma_s_on_the_diagonal():
    flow = iaf_flow(5, 1, 8, 9)
    step, context = flow.layers[0], np.random.default_rng(2).standard_normal((1, 8))
    z = np.random.default_rng(3).standard_normal(5)
    jac = fd_jacobian(lambda v: step.forward(v[None, :], context)[0][0], z)
    _, s, _ = step.made(z[None, :], context)
    rank = np.argsort(step.order)  # dimensions in the order of their positions
    permuted = jac[np.ix_(rank, rank)]
    np.testing.assert_allclose(np.triu(permuted, 1), 0.0, atol=1e-12)  # lower triangular
    np.testing.assert_allclose(np.diag(jac), 1 / (1 + np.exp(-s[0])), atol=1e-9)


@pytest.mark.parametrize("kind", ["planar", "iaf"])
def test_each_step_backward_matches_central_differences_through_z_and_the_log_det(kind):
    rng = np.random.default_rng(21)
    flow = planar_flow(4, 2, 5) if kind == "planar" else iaf_flow(4, 2, 6, 5)
    z = rng.standard_normal((5, 4))
    context = None if kind == "planar" else rng.standard_normal((5, 6))
    for step in flow.layers:
        report = check_flow_step(step, z, context, rng)
        assert report.passed, str(report)
        assert report.max_error < 1e-7


def test_flow_backward_sends_every_step_the_same_log_det_gradient():
    rng = np.random.default_rng(2)
    flow = planar_flow(3, 4, 8)
    z = rng.standard_normal((6, 3))
    flow.forward(z)
    r = rng.standard_normal(6)
    dz, _ = flow.backward(np.zeros((6, 3)), r)  # L = Σ r · Σ_t log|det J_t|

    def loss(v):
        return (flow.forward(v)[1] * r).sum()

    num = np.zeros_like(z)
    for idx in np.ndindex(*z.shape):
        e = np.zeros_like(z)
        e[idx] = H
        num[idx] = (loss(z + e) - loss(z - e)) / (2 * H)
    np.testing.assert_allclose(dz, num, rtol=0, atol=1e-8)


def test_backward_before_forward_is_an_error():
    step = PlanarStep(2, rng=np.random.default_rng(0), dtype=np.float64)
    with pytest.raises(RuntimeError, match="before forward"):
        step.backward(np.zeros((1, 2)), np.zeros(1))


def test_planar_step_agrees_with_the_exercises_independent_reference_solution():
    from tinyvae.learn import solutions  # noqa: PLC0415

    step = planar_flow(5, 1, 12).layers[0]
    rng = np.random.default_rng(13)
    z, dz_out, g = rng.standard_normal((7, 5)), rng.standard_normal((7, 5)), rng.uniform(0.01, 0.2, 7)
    z_out, log_det = step.forward(z)
    dz, _ = step.backward(dz_out, -g)  # the reference's loss holds the log-det as −Σ g · log-det
    p = step.params
    want = solutions.planar_step(z, p["u"].copy(), p["w"].copy(), float(p["b"][0]), dz_out, g)
    for got, ref in zip((z_out, log_det, dz, step.grads["u"], step.grads["w"], step.grads["b"][0]), want):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-13)
