"""Landmark displacements that reach the target coefficients: gradient descent through the blendshape network.

The displacement is an anatomical part and, optionally, a free part: d = Σ_j α_j U_j + e, with U_j the action-unit
fields of the request (action_units.py: each one the least-energy displacement under the mesh prior that makes its
movement) and e over the prior's variables (the free mesh points, the iris translations when the gaze is edited).
Minimised:
    L = TARGET · Σ_{k targeted} (b_k(x + d) - t_k)²  +  HOLD · Σ_{k held} (b_k(x + d) - b_k(x))²
        + UNIT_COST · Σ_j E_j α_j²  +  FREE · Σ_c e_cᵀ Q e_c  +  cap(d)
with b the network (core.models.blendshapes, float32 on the CPU: 146 points, milliseconds a pass), x the measured
mesh (px), t the targets (controls.py), Q the mesh prior's quadratic form and cap its steep cost beyond MAX_MOVE·F
(prior.py), E_j = Σ_c U_jcᵀ Q U_jc the prior energy of unit j at strength 1.

The operator asks first for the action units alone (no free part); where they cannot reach the request it asks
again with the free part at FREE = FREE_COST (100), where a movement along a unit costs UNIT_COST / FREE_COST
(1/2000) of the same movement made freely (measured on the astronaut: left free at FREE = 1, the network raised
mouthSmile by lowering the upper lip over the teeth and bulging the lower lip; the units alone cannot lift her
smile's corners without raising mouthPress 0.25 for 0.05 of mouthSmile, which the free part balances). A named
coefficient (--blendshape) may need movements no unit makes (a pucker, a cheek puff): FREE = FREE_COST_NAMED (1).

Preconditioning: the variables are β_j = √(UNIT_COST·E_j) α_j and v = R e with FREE·Q = RᵀR (Cholesky), so the
prior is |β|² + |v|² and the problem is well conditioned (the membrane alone spans strains of 10⁴ : 1 between the
lips' short edges and the cheeks' long ones).

Method. The units alone (a handful of variables β, the request's per-side units): Gauss-Newton. The loss is |β|² +
|r(β)|² (r the weighted coefficient residuals, 52), so each step solves K × K; the K columns ∂r/∂β come by central
differences at the start (one batched pass) and follow each step by Broyden's rank-one update. Measured on the
astronaut's smile units: 9 network passes, to within 0.03 px of L-BFGS's minimum after 200 iterations (L-BFGS
itself: 21 passes of forward and backward). Steps halve until the loss falls (HALVINGS at most); the solve stops
when it falls by less than STOP of itself; a result beyond the cap (a move over MAX_MOVE·F, outside the sum of
squares) goes to L-BFGS. With a free part (hundreds of variables): L-BFGS with a strong-Wolfe line search from zero,
a fixed budget of ITERATIONS (a converged free part, tried: it reached the request's coefficients better but moved
the brows and forehead 3× more and, asked for an unreachable frown, folded the warp; the budget is part of the prior
as calibrated). The same inputs give the same displacement, bit for bit (one CPU thread).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import prior as P

TARGET = 10.0
HOLD = 10.0
UNIT_COST = 0.05
FREE_COST = 100.0
FREE_COST_NAMED = 1.0
ITERATIONS = 30        # L-BFGS's budget (the cap's refinement)
GN_STEPS = 12          # Gauss-Newton steps at most (the units alone)
STOP = 1e-5            # ... until the loss falls by less than this share of itself
H_MOVE = 1e-3          # × F: the difference step of the units' Jacobian (largest point move)
HALVINGS = 2           # a step that does not lower the loss is halved at most this often


@dataclass
class Solution:
    displacement: np.ndarray    # 478×2 px
    predicted: np.ndarray       # 52 coefficients the network gives for the displaced mesh
    loss: float
    evaluations: int            # network passes (forward + backward)
    alpha: np.ndarray           # strength of each action unit
    free: np.ndarray            # the free part e (478×2 px; zeros without one)


def solve(mesh: np.ndarray, target: np.ndarray, targeted: np.ndarray, pr: P.Prior, units: np.ndarray,
          free_cost: Optional[float] = FREE_COST, net=None) -> Solution:
    """`units`: K×478×2 action-unit fields; `free_cost`: the free part's weight (None: no free part). The units
    alone by Gauss-Newton, with a free part by L-BFGS (see the module docstring)."""
    if free_cost is None and len(units):
        sol = solve_units(mesh, target, targeted, pr, units, net=net)
        if sol is not None:
            return sol
    return solve_lbfgs(mesh, target, targeted, pr, units, free_cost, net=net)


def solve_units(mesh: np.ndarray, target: np.ndarray, targeted: np.ndarray, pr: P.Prior, units: np.ndarray,
                steps: int = GN_STEPS, net=None) -> Optional[Solution]:
    """The units alone (β, K of them) by Gauss-Newton; None where the result reaches the cap (the L-BFGS solve
    then takes over: beyond it the loss is not the sum of squares modelled here)."""
    import torch

    from ...models import blendshapes as B

    net = B.network() if net is None else net
    dtype = next(net.parameters()).dtype
    units = np.asarray(units, np.float64).reshape(-1, 478, 2)
    k = len(units)
    x = np.ascontiguousarray(np.asarray(mesh, np.float64)[:, :2])
    sub = np.asarray(B.LANDMARK_SUBSET)
    scale = _beta_scale(pr, P.quadratic(pr), units)
    fields = units[:, sub, :] / scale[:, None, None]                # K×146×2: px per unit of β
    on = np.asarray(targeted, bool)

    def coefficients(beta, extra=None):
        """The network at β (and, batched with it, at β + each row of `extra`)."""
        rows = [beta] if extra is None else [beta] + list(beta + extra)
        pts = np.stack([x[sub] + np.einsum("k,kpc->pc", r, fields) for r in rows])
        with torch.no_grad():
            return net(torch.from_numpy(pts).to(dtype)).double().numpy()

    with P.one_thread():
        # The K columns ∂b/∂β at 0 by central differences over H_MOVE·F of the largest point move, one batch.
        h = H_MOVE * pr.scale / np.maximum(np.sqrt((fields ** 2).sum(2)).max(axis=1), 1e-12)
        both = coefficients(np.zeros(k), np.concatenate([np.diag(h), -np.diag(h)]))
        b0 = both[0]
        jac = ((both[1:k + 1] - both[k + 1:]) / (2.0 * h[:, None])).T   # 52×K
        w = np.where(on, TARGET, HOLD)
        w[0] = 0.0                                                      # '_neutral'
        goal = np.where(on, np.asarray(target, np.float64), b0)
        sw = np.sqrt(w)
        jw = jac * sw[:, None]

        def loss(beta, b):
            return float(beta @ beta + (w * (b - goal) ** 2).sum())

        beta, b, best, passes = np.zeros(k), b0, loss(np.zeros(k), b0), 1 + 2 * k
        for _ in range(steps):
            # min over δ of |β + δ|² + |√w (b + J δ - goal)|²
            step = -np.linalg.solve(np.eye(k) + jw.T @ jw, beta + jw.T @ (sw * (b - goal)))
            t = 1.0
            while True:
                bn = coefficients(beta + t * step)[0]
                passes += 1
                ln = loss(beta + t * step, bn)
                if ln < best or t < 0.5 ** HALVINGS:
                    break
                t *= 0.5
            if ln >= best:
                break
            dz = t * step
            jw = jw + np.outer(sw * (bn - b) - jw @ dz, dz) / (dz @ dz)   # Broyden: J dz = the change seen
            done = best - ln < STOP * best
            beta, b, best = beta + dz, bn, ln
            if done:
                break
    alpha = beta / scale
    d = np.einsum("k,kpc->pc", alpha, units)
    if np.sqrt((d * d).sum(1)).max() > P.MAX_MOVE * pr.scale:
        return None
    return Solution(d, b, best, passes, alpha, np.zeros_like(d))


def _beta_scale(pr: P.Prior, q: np.ndarray, units: np.ndarray) -> np.ndarray:
    energy = np.array([sum(P.variables_of(pr, u)[:, c] @ q @ P.variables_of(pr, u)[:, c] for c in (0, 1))
                       for u in units])
    return np.sqrt(UNIT_COST * np.maximum(energy, 1e-12))


def solve_lbfgs(mesh: np.ndarray, target: np.ndarray, targeted: np.ndarray, pr: P.Prior, units: np.ndarray,
                free_cost: Optional[float] = FREE_COST, iterations: int = ITERATIONS, net=None,
                start=None) -> Solution:
    """The same loss by L-BFGS with a strong-Wolfe line search and autograd through the network, from zero or
    `start` = (β, v or None) in the variables above."""
    import torch

    from ...models import blendshapes as B

    net = B.network() if net is None else net
    dtype = next(net.parameters()).dtype
    units = np.asarray(units, np.float64).reshape(-1, 478, 2)
    free = free_cost is not None
    q = P.quadratic(pr)
    beta_scale = _beta_scale(pr, q, units)
    with P.one_thread():
        x = torch.from_numpy(np.ascontiguousarray(mesh[:, :2], np.float64))
        sub = torch.as_tensor(list(B.LANDMARK_SUBSET))
        with torch.no_grad():
            b0 = net(x[sub][None].to(dtype))[0].double()
        t = torch.from_numpy(np.asarray(target, np.float64))
        on = torch.from_numpy(np.asarray(targeted, bool))
        hold = ~on
        hold[0] = False  # '_neutral'
        u_t = torch.from_numpy(units)
        scale_t = torch.from_numpy(beta_scale)
        beta = torch.zeros(len(units), dtype=torch.float64)
        if start is not None:
            beta = torch.from_numpy(np.array(start[0], np.float64))
        beta.requires_grad_(True)
        params = [beta]
        if free:
            r = torch.from_numpy(P.cholesky_upper(free_cost * q))
            v = torch.zeros((r.shape[0], 2), dtype=torch.float64)
            if start is not None and start[1] is not None:
                v = torch.from_numpy(np.array(start[1], np.float64))
            v.requires_grad_(True)
            params.append(v)
        n_free = int(pr.variable.sum())
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=iterations, history_size=20,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)
        count = [0]

        def objective():
            d = torch.einsum("k,kpc->pc", beta / scale_t, u_t)
            loss = beta.square().sum()
            e = torch.zeros_like(d)
            if free:
                dv = torch.linalg.solve_triangular(r, v, upper=True)
                e = P.assemble(pr, dv[:n_free], dv[n_free:] if pr.irises_free else None)
                d = d + e
                loss = loss + v.square().sum()
            b = net((x + d)[sub][None].to(dtype))[0].double()
            loss = loss + TARGET * (b - t)[on].square().sum() + HOLD * (b - b0)[hold].square().sum() \
                + P.cap_energy(pr, d)
            return loss, d, b, e

        def closure():
            opt.zero_grad()
            loss = objective()[0]
            loss.backward()
            count[0] += 1
            return loss

        if len(units) or free:
            opt.step(closure)
        with torch.no_grad():
            loss, d, b, e = objective()
            alpha = (beta / scale_t).numpy().copy()
    return Solution(d.numpy().copy(), b.numpy().copy(), float(loss), count[0], alpha, e.numpy().copy())
