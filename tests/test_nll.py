"""The importance-sampled NLL estimator on models whose log p(x) is known exactly."""

import math

import pytest
import torch

from dvae_core.metrics.nll import importance_weighted_nll


class LinearGaussian:
    """z ~ N(0, 1), x | z ~ N(a z, σ² I): p(x) and p(z | x) are Gaussian in closed form.

    The proposal q(z | x) is the exact posterior moved by ``shift`` and widened by ``widen``.
    """

    def __init__(self, a: torch.Tensor, sigma: float, shift: float = 0.0, widen: float = 1.0):
        self.a, self.sigma, self.shift, self.widen = a, sigma, shift, widen

    def posterior(self, x: torch.Tensor) -> torch.distributions.Normal:
        precision = 1 + self.a.dot(self.a) / self.sigma ** 2
        mean = x @ self.a / self.sigma ** 2 / precision
        return torch.distributions.Normal(mean + self.shift, self.widen * precision.rsqrt())

    def log_importance_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        q = self.posterior(x)
        z = q.sample((k,))                                                       # (k, n)
        log_prior = torch.distributions.Normal(0.0, 1.0).log_prob(z)
        log_lik = torch.distributions.Normal(z[..., None] * self.a, self.sigma).log_prob(x).sum(-1)
        return log_lik + log_prior - q.log_prob(z)

    def exact_nll(self, x: torch.Tensor) -> torch.Tensor:
        covariance = torch.outer(self.a, self.a) + self.sigma ** 2 * torch.eye(len(self.a), dtype=self.a.dtype)
        mean = torch.zeros(len(self.a), dtype=self.a.dtype)
        return -torch.distributions.MultivariateNormal(mean, covariance).log_prob(x)

    def sample(self, n: int) -> torch.Tensor:
        z = torch.randn(n, 1)
        return z * self.a + self.sigma * torch.randn(n, len(self.a))


A = torch.tensor([1.5, -0.5, 2.0], dtype=torch.float64)


@pytest.mark.parametrize("k, chunk", [(1, 1), (7, 3), (64, 16)])
def test_exact_posterior_gives_the_exact_nll_with_zero_spread(k, chunk):
    torch.manual_seed(0)
    model = LinearGaussian(A, sigma=0.7)
    x = model.sample(50)
    result = importance_weighted_nll(model, x, k=k, batch_size=20, chunk=chunk)
    exact = model.exact_nll(x).numpy()
    assert result["per_image"] == pytest.approx(exact, abs=1e-9)
    assert result["nll"] == pytest.approx(exact.mean(), abs=1e-9)
    assert result["elbo"] == pytest.approx(-exact.mean(), abs=1e-9)   # every weight equals p(x)
    assert result["std_error"] == pytest.approx(exact.std(ddof=1) / math.sqrt(50))
    assert result["bits_per_dim"] == pytest.approx(exact.mean() / (3 * math.log(2)))


def test_mismatched_proposal_tightens_with_k_and_stays_above_the_truth():
    torch.manual_seed(0)
    model = LinearGaussian(A, sigma=0.7, shift=0.4, widen=1.5)
    x = model.sample(2000)
    exact = model.exact_nll(x).mean().item()
    estimates = []
    for k in (1, 4, 16, 64):
        result = importance_weighted_nll(model, x, k=k, batch_size=500, chunk=16)
        assert result["nll"] <= -result["elbo"] + 1e-12               # log-mean-exp ≥ mean, always
        if k == 1:
            assert result["nll"] == pytest.approx(-result["elbo"])   # one sample: the ELBO itself
        estimates.append(result["nll"])
    # The bound tightens with k (Burda et al., Theorem 1): gaps here are ≥ 0.02 nats, while the
    # Monte-Carlo noise of a 2000-image mean is about 0.005.
    assert all(a > b for a, b in zip(estimates, estimates[1:]))
    assert estimates[-1] > exact - 0.01
    assert estimates[0] - exact > 0.1


class ScriptedWeights:
    """Hands out the log-weights 0, 1, 2, … in order, to check how chunks are combined."""

    def __init__(self):
        self.next = 0

    def log_importance_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        values = torch.arange(self.next, self.next + k, dtype=torch.float64)
        self.next += k
        return values[:, None].expand(k, x.shape[0])


def test_chunks_combine_into_one_log_mean_exp():
    result = importance_weighted_nll(ScriptedWeights(), torch.zeros(2, 4), k=10, batch_size=2, chunk=3)
    expected = -(torch.logsumexp(torch.arange(10.0, dtype=torch.float64), 0) - math.log(10))
    assert result["per_image"] == pytest.approx([expected.item()] * 2)
    assert result["elbo"] == pytest.approx(4.5)


def test_rejects_non_positive_sizes():
    with pytest.raises(ValueError, match="positive"):
        importance_weighted_nll(ScriptedWeights(), torch.zeros(2, 4), k=0)
