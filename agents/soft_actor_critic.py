"""Soft actor-critic heads for box actions: K soft critics Q_k(s, a), one per base reward, and K
tanh-squashed Gaussian actors pi_k (Haarnoja et al. 2018), all learned from one replay of
reward vectors in one forward and one backward pass.

Linear composition (and any other composition of the heads' values) acts by sampling: every
actor proposes `sac.candidates` actions, and so does the product of the actors' Gaussians
raised to the task's weights (the composed density itself when the actors are exact Boltzmann
policies of quadratic Q's); greedy acting adds all their means. Each candidate is scored by the
composed value, e.g. sum_k w_k Q_k(s, a); greedy acting takes the best one, and stochastic
acting draws one with probability proportional to exp(Q_w(s, a) / alpha) / q(a), q being the
density of the even mixture of the proposals (self-normalised importance sampling of the
composed Boltzmann density). A task that is one head with a positive weight acts by that
head's own actor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from agents.heads import Compose, HeadsAgent, make_adam
from composable_rl.config import AgentConfig, Config, ConfigError
from composable_rl.maths import functional as fn
from composable_rl.maths.levers import Quantile, quantile_sample
from composable_rl.replay import Batch
from composable_rl.world import ActionSpec, World

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # the actors' log standard deviations lie in between


def repeat_rows(x: Tensor, times: int) -> Tensor:
    """Each row of x [B, ...] `times` times in a row: [B * times, ...] (a view for times = 1)."""
    return x[:, None].expand(x.shape[0], times, *x.shape[1:]).reshape(-1, *x.shape[1:])


class EnsembleMLP(nn.Module):
    """E independent MLPs (ReLU between layers) evaluated together by batched matrix products:
    [E, B, sizes[0]] -> [E, B, sizes[-1]]. Each layer starts as nn.Linear would."""

    def __init__(self, members: int, sizes: Sequence[int]) -> None:
        super().__init__()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            bound = 1.0 / math.sqrt(fan_in)
            w = torch.empty(members, fan_in, fan_out).uniform_(-bound, bound)
            self.weights.append(nn.Parameter(w))
            self.biases.append(
                nn.Parameter(torch.empty(members, 1, fan_out).uniform_(-bound, bound))
            )

    def forward(self, x: Tensor, frozen: bool = False) -> Tensor:
        """Outputs [E, B, out] for inputs [E, B, in] (or [1, B, in], shared by every member).
        `frozen` passes no gradient to the weights, only to the inputs."""
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if frozen:
                w, b = w.detach(), b.detach()
            x = torch.baddbmm(b, x.expand(w.shape[0], -1, -1), w)
            if i < last:
                x = torch.relu_(x)  # in place: baddbmm's backward does not need its output
        return x


class TwinCritics(nn.Module):
    """Two independent critics, each one MLP on (observation, action) whose last layer holds
    the K heads: Q [2, B, K] for observations [B, O] and actions [B, D]."""

    def __init__(self, obs_size: int, action_size: int, num_heads: int, hidden: Sequence[int]):
        super().__init__()
        self.net = EnsembleMLP(2, [obs_size + action_size, *hidden, num_heads])

    def forward(self, obs: Tensor, action: Tensor, frozen: bool = False) -> Tensor:
        """Q [2, B, K] of every head for each (observation, action) pair."""
        return self.net(torch.cat([obs, action], -1)[None], frozen)


class Actors(nn.Module):
    """K tanh-squashed Gaussian actors: means and log standard deviations [B, K, D] (before the
    squashing) for observations [B, O], from one shared trunk or from K separate networks."""

    def __init__(
        self, obs_size: int, action_size: int, num_heads: int, hidden: Sequence[int], shared: bool
    ) -> None:
        super().__init__()
        self.shape = (num_heads, 2, action_size)
        if shared:
            self.net = EnsembleMLP(1, [obs_size, *hidden, num_heads * 2 * action_size])
        else:
            self.net = EnsembleMLP(num_heads, [obs_size, *hidden, 2 * action_size])

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        out = self.net(obs[None])  # [1, B, K * 2 * D] or [K, B, 2 * D]
        out = out.transpose(0, 1).reshape(obs.shape[0], *self.shape)
        mean, raw = out.unbind(2)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(raw) + 1)
        return mean, log_std


class SoftActorCritic(HeadsAgent):
    """K soft actor-critic heads over a box of actions; `online` and `target` are the twin
    critics, `actors` the K actors, `log_alpha` [K] the heads' temperatures. `one_task` says
    that every behaviour task is the one head with a positive weight: training then acts by its
    actor alone, without scoring candidates.

    Each update draws the actors' actions at s and s', regresses both critics of every head on
    r_k + gamma * (the target critics' Q_k(s', a'_k) - alpha_k log pi_k(a'_k | s')), moves each
    actor towards Q_k(s, a_k) - alpha_k log pi_k(a_k | s) (the critics frozen), and each
    temperature towards its target entropy: one summed loss, one backward pass. Q_k of the twins
    is the smaller of them (clipped double Q, Fujimoto et al. 2018), or their mean.
    """

    def __init__(
        self,
        obs_size: int,
        action_spec: ActionSpec,
        head_names: Sequence[str],
        cfg: AgentConfig,
        one_task: bool = False,
    ) -> None:
        super().__init__()
        self.head_names = list(head_names)
        self.cfg, self.action_spec = cfg, action_spec
        self.one_task = one_task
        k, d, scfg = len(self.head_names), math.prod(action_spec.shape), cfg.sac
        self.action_size = d
        low, high = action_spec.bounds()
        self.register_buffer("box_middle", ((high + low) / 2).flatten(), persistent=False)
        self.register_buffer("box_half", ((high - low) / 2).flatten(), persistent=False)
        self.log_half = float(self.box_half.log().sum())  # the squashed density's scale to the box
        self.target_entropy = -float(d) if scfg.target_entropy is None else scfg.target_entropy
        critic = cfg.hidden if scfg.critic_hidden is None else scfg.critic_hidden
        self.online = TwinCritics(obs_size, d, k, critic)
        self.target = TwinCritics(obs_size, d, k, critic)
        self.target.load_state_dict(self.online.state_dict())
        self.target.requires_grad_(False)
        self.actors = Actors(obs_size, d, k, cfg.hidden, scfg.shared_actor)
        alpha = math.log(max(cfg.alpha, 1e-8))
        self.log_alpha = nn.Parameter(torch.full((k,), alpha), requires_grad=scfg.autotune)
        # one Adam for critics, actors and temperatures: three cost 11% more time per update
        groups = [*self.online.parameters(), *self.actors.parameters()]
        self.optimizers = {"heads": make_adam(groups + [self.log_alpha] * scfg.autotune, cfg.lr)}
        self.updates = 0

    # --- acting -------------------------------------------------------------------------------

    def to_box(self, u: Tensor) -> Tensor:
        """Points of (-1, 1)^D [..., D] as actions of the world's box [..., *shape]."""
        return (self.box_middle + self.box_half * u).reshape(*u.shape[:-1], *self.action_spec.shape)

    def twins(self, q: Tensor) -> Tensor:
        """One value from the twin critics' [2, ...]: the smaller (clipped double Q), or with
        `sac.clipped_double_q` off their mean."""
        return q.amin(0) if self.cfg.sac.clipped_double_q else q.mean(0)

    def head_values_at(self, obs: Tensor, actions: Tensor) -> Tensor:
        """Every head's value [N, K, C] of C candidate actions [N, C, D] of (-1, 1)^D."""
        n, c, _ = actions.shape
        box = self.box_middle + self.box_half * actions
        q = self.twins(self.online(repeat_rows(obs, c), box.reshape(n * c, -1)))
        return q.view(n, c, -1).transpose(1, 2)

    def composed_values(self, obs: Tensor, actions: Tensor, compose: Compose) -> Tensor:
        """What acting maximises [N, C]: `compose` of the heads' values at C candidate actions
        [N, C, D] of (-1, 1)^D ([N, K, C] -> [N, C])."""
        return compose(self.head_values_at(obs, actions))

    def temperature(self, weights: Tensor) -> Tensor:
        """The composed density's temperature [N] for weights [N, K]: sum_k |w_k| alpha_k, which
        is the heads' common alpha for weights that sum to 1, and alpha_k for a one-hot."""
        return (weights.abs() * self.log_alpha.exp()).sum(1).clamp_min(1e-8)

    def actor_means(self, obs: Tensor) -> Tensor:
        """Every actor's mean action [N, K, D] of (-1, 1)^D for observations [N, ...]."""
        return torch.tanh(self.actors(obs.flatten(1).float())[0])

    def candidates(
        self, obs: Tensor, weights: Tensor | None, greedy: bool, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Proposals for observations [N, ...]: M samples of each actor and, given head weights
        [N, K], of the product of the actors' Gaussians raised to w_k alpha_k / sum |w| alpha
        (negative weights: 0), which is the composed Boltzmann density when the actors are
        exact; then, when `greedy`, the means of them all. Returns candidates [N, C, D] of
        (-1, 1)^D, their log density [N, C] under the even mixture of the proposals (the means:
        0, unused), and the proposals' means [N, J, D] (the K actors first)."""
        mean, log_std = self.actors(obs.flatten(1).float())  # [N, K, D]
        if weights is not None:
            shares = (
                weights.clamp_min(0) * self.log_alpha.exp() / self.temperature(weights)[:, None]
            )
            none = shares.sum(1, keepdim=True) == 0  # nothing positive: an even product
            shares = torch.where(none, 1.0 / len(self.head_names), shares)
            product = fn.gaussian_product(mean, log_std, shares)
            mean = torch.cat([mean, product[0][:, None]], 1)
            log_std = torch.cat([log_std, product[1][:, None]], 1)
        n, j, d = mean.shape
        m = self.cfg.sac.candidates
        noise = torch.randn((n, j, m, d), generator=generator, device=mean.device)
        z = (mean[:, :, None] + log_std.exp()[:, :, None] * noise).reshape(n, j * m, d)
        # the density of every candidate under every proposal, then under their mixture,
        # in z (before the squashing) and then through tanh
        each = fn.gaussian_log_prob(mean[:, None], log_std[:, None], z[:, :, None])  # [N, C, J]
        log_q = torch.logsumexp(each, -1) - math.log(j) - fn.tanh_log_det(z).sum(-1)
        drawn, means = torch.tanh(z), torch.tanh(mean)
        if greedy:
            drawn = torch.cat([drawn, means], 1)
            log_q = torch.cat([log_q, log_q.new_zeros(n, j)], 1)
        return drawn, log_q, means

    def choose(
        self,
        obs: Tensor,
        compose: Compose,
        weights: Tensor | None,
        alpha: float | Tensor,
        generator: torch.Generator | None,
        quantile: Quantile | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The candidate [N, D] of (-1, 1)^D that acting on `compose` picks (greedy for alpha = 0,
        else drawn by importance sampling at temperature `alpha`; or, given a `quantile`, drawn
        by the quantiliser whose base is the proposals' mixture, every drawn candidate counting
        alike), and the proposals' draws and means (see `candidates`)."""
        if quantile is not None and quantile.base is not None:
            raise ValueError(
                "a quantile base head needs discrete actions; with continuous actions the base "
                "is the sampler's candidates (leave the base out)"
            )
        greedy = quantile.q == 0 if quantile else isinstance(alpha, float) and alpha == 0
        drawn, log_q, means = self.candidates(obs, weights, greedy, generator)
        scores = self.composed_values(obs, drawn, compose)
        rows = torch.arange(len(drawn), device=drawn.device)
        if quantile is None:
            index = fn.importance_choice(scores, log_q, alpha, generator)
        else:
            index = quantile_sample(scores, None, quantile.q, generator)
        return drawn[rows, index], drawn, means

    @torch.no_grad()
    def act(
        self,
        obs: Tensor,
        context: Tensor,
        *,
        epsilon: float = 0.0,
        alpha: float | None = None,
        generator: torch.Generator | None = None,
        behaviour: bool = False,
        quantile: Quantile | None = None,
    ) -> Tensor:
        """Actions [N, *shape] for the linear task of weights `context` [N, K] (or [K]), see
        the module docstring; `alpha` None is the composed temperature (`temperature`), 0 is
        greedy; `behaviour` changes nothing here (every slot acts on its own task); `quantile`
        quantilises the candidates (`choose`)."""
        if behaviour and self.one_task:
            u, _ = self.sample_unit(obs.flatten(1).float(), generator)
            return self.explore(self.to_box(u[:, 0]), epsilon, generator)
        if quantile is not None and quantile.q == 0:  # the greedy policy, exactly
            quantile, alpha = None, 0.0
        weights = context.expand(obs.shape[0], -1).to(self.box_half.dtype)

        def linear(q: Tensor) -> Tensor:
            return (q * weights[:, :, None]).sum(1)

        temperature = self.temperature(weights) if alpha is None else float(alpha)
        chosen, drawn, means = self.choose(obs, linear, weights, temperature, generator, quantile)
        if quantile is not None:
            return self.explore(self.to_box(chosen), epsilon, generator)
        # one head with a positive weight: that head's own actor (its mean when greedy, else
        # its first sample)
        rows = torch.arange(len(drawn), device=drawn.device)
        single = ((weights != 0).sum(1) == 1) & (weights.sum(1) > 0)
        head = weights.argmax(1)
        own = means[rows, head] if alpha == 0 else drawn[rows, head * self.cfg.sac.candidates]
        actions = torch.where(single[:, None], own, chosen)
        return self.explore(self.to_box(actions), epsilon, generator)

    @torch.no_grad()
    def act_on(
        self,
        obs: Tensor,
        compose: Compose,
        *,
        alpha: float | None = None,
        generator: torch.Generator | None = None,
        weights: Tensor | None = None,
        quantile: Quantile | None = None,
    ) -> Tensor:
        """Actions [N, *shape] on `compose` of the heads' values at the candidates
        ([N, K, C] -> [N, C]): the best candidate (alpha = 0) or one drawn by importance
        sampling at temperature `alpha` (None: the mean of the heads' temperatures), or by
        the quantiliser of `quantile`. `weights` [N, K], the composition's head weights where
        it has them, add the actors' product as a proposal."""
        temperature = float(self.log_alpha.exp().mean()) if alpha is None else float(alpha)
        chosen = self.choose(obs, compose, weights, temperature, generator, quantile)[0]
        return self.to_box(chosen)

    # --- learning -----------------------------------------------------------------------------

    def sample_unit(
        self, obs: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """One point of (-1, 1)^D of every actor [B, K, D] for observations [B, O] and its log
        density there [B, K]."""
        mean, log_std = self.actors(obs)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        return fn.tanh_gaussian_sample(mean, log_std, noise)

    def sample_actions(
        self, obs: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """One action of every actor [B, K, D] of the world's box (flattened) for observations
        [B, O] and its log density [B, K] there."""
        u, log_prob = self.sample_unit(obs, generator)
        return self.box_middle + self.box_half * u, log_prob - self.log_half

    def head_q(self, net: TwinCritics, obs: Tensor, actions: Tensor, frozen: bool) -> Tensor:
        """Q_k(s, a_k) [B, K] of the twins (`twins`): each head's value of its own actor's
        action (actions [B, K, D])."""
        b, k, d = actions.shape
        q = net(repeat_rows(obs, k), actions.reshape(b * k, d), frozen)  # [2, B * K, K]
        return self.twins(q.view(2, b, k, k).diagonal(dim1=2, dim2=3))

    def update(self, batch: Batch) -> dict[str, Tensor]:
        """One gradient step of critics, actors and temperatures; detached diagnostics."""
        obs, next_obs = batch.obs.flatten(1).float(), batch.next_obs.flatten(1).float()
        action = batch.action.flatten(1)
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            next_action, next_log_prob = self.sample_actions(next_obs)
            next_q = self.head_q(self.target, next_obs, next_action, frozen=True)
            discount_t = self.cfg.gamma * (~batch.terminated).to(next_q.dtype)
            target = fn.soft_q_target(batch.reward, discount_t, next_q - alpha * next_log_prob)
        q = self.online(obs, action)  # [2, B, K]
        td = target - q
        critic_loss = 0.5 * td.square().mean(1).sum()
        new_action, log_prob = self.sample_actions(obs)
        q_new = self.head_q(self.online, obs, new_action, frozen=True)
        actor_loss = (alpha * log_prob - q_new).mean(0).sum()
        loss = critic_loss + actor_loss
        if self.cfg.sac.autotune:
            shortfall = (log_prob.detach() + self.target_entropy).mean(0)
            loss = loss - (self.log_alpha * shortfall).sum()
        self.optimise(loss)
        with torch.no_grad():
            return {
                "td_loss": critic_loss.detach(),
                "actor_loss": actor_loss.detach(),
                "td_error": td.abs().mean((0, 1)),
                "q_mean": q.mean((0, 1)),
                "entropy": -log_prob.detach().mean(0),
                "alpha": alpha,
            }


def check_observations(cfg: Config, world: World, encoder: str) -> None:
    """Soft actor-critic heads read vector observations with the mlp encoder; else a
    ConfigError naming agent.heads."""
    spec = world.observation_spec
    if spec.kind != "vector" or encoder != "mlp":
        raise ConfigError(
            f"agent.heads: soft_actor_critic heads read vector observations with the mlp "
            f"encoder; the {cfg.env.name} world gives {spec.kind} observations {spec.shape}",
            "agent.heads",
        )


def build(cfg: Config, world: World, encoder: str, sparse: int) -> SoftActorCritic:
    """Soft actor-critic heads for a world of box actions and vector observations."""
    check_observations(cfg, world, encoder)
    tasks = cfg.tasks
    one_task = (
        len(world.head_names) == 1
        and tasks.weight_dist == "dirichlet"
        and (tasks.fixed_weights is None or tasks.fixed_weights[0] > 0)
    )
    spec = world.observation_spec
    return SoftActorCritic(
        math.prod(spec.shape), world.action_spec, world.head_names, cfg.agent, one_task
    )
