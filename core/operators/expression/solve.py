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
prior is |β|² + |v|² and the optimiser sees a well-conditioned problem (the membrane alone spans strains of 10⁴ : 1
between the lips' short edges and the cheeks' long ones). L-BFGS with a strong-Wolfe line search from zero (or a
given start), a fixed budget: the same inputs give the same displacement, bit for bit (one CPU thread).
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
ITERATIONS = 30


@dataclass
class Solution:
    displacement: np.ndarray    # 478×2 px
    predicted: np.ndarray       # 52 coefficients the network gives for the displaced mesh
    loss: float
    evaluations: int            # network passes (forward + backward)
    alpha: np.ndarray           # strength of each action unit
    free: np.ndarray            # the free part e (478×2 px; zeros without one)


def solve(mesh: np.ndarray, target: np.ndarray, targeted: np.ndarray, pr: P.Prior, units: np.ndarray,
          free_cost: Optional[float] = FREE_COST, iterations: int = ITERATIONS, net=None) -> Solution:
    """`units`: K×478×2 action-unit fields; `free_cost`: the free part's weight (None: no free part)."""
    import torch

    from ...models import blendshapes as B

    net = B.network() if net is None else net
    dtype = next(net.parameters()).dtype
    units = np.asarray(units, np.float64).reshape(-1, 478, 2)
    free = free_cost is not None
    q = P.quadratic(pr)
    energy = np.array([sum(P.variables_of(pr, u)[:, c] @ q @ P.variables_of(pr, u)[:, c] for c in (0, 1))
                       for u in units])
    beta_scale = np.sqrt(UNIT_COST * np.maximum(energy, 1e-12))
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
        beta = torch.zeros(len(units), dtype=torch.float64, requires_grad=True)
        params = [beta]
        if free:
            r = torch.from_numpy(P.cholesky_upper(free_cost * q))
            v = torch.zeros((r.shape[0], 2), dtype=torch.float64, requires_grad=True)
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
