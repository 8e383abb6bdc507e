"""Named sites where regimes attach their modules: on a transformer block (`TunableBlock`) or on a tower's
pooled feature (`bench.models.towers.Tower`)."""
from __future__ import annotations

from torch import nn


class Sites(nn.ModuleDict):
    """The modules attached to a host, keyed by site; a key that is not one of `valid` is a ValueError."""

    def __init__(self, valid: tuple[str, ...]):
        super().__init__()
        self.valid = valid

    def __setitem__(self, site: str, module: nn.Module) -> None:
        if site not in self.valid:
            raise ValueError(f"unknown site {site!r}; valid sites: {', '.join(self.valid)}")
        super().__setitem__(site, module)


class Attachable(nn.Module):
    """A module with sites (`self.tuners`, a Sites) that regimes fill with `attach`; the modules there follow
    train/eval even when their frozen host stays in eval mode (`LongTailModel.train`)."""

    tuners: Sites

    def attach(self, site: str, module: nn.Module) -> nn.Module:
        """Put `module` at `site` and return it; the site must be valid and free."""
        valid = self.tuners.valid
        if site not in valid:
            raise ValueError(f"unknown site {site!r}; valid sites: {', '.join(valid)}")
        if site in self.tuners:
            raise ValueError(f"site {site!r} is already taken by {type(self.tuners[site]).__name__}; "
                             f"valid sites: {', '.join(valid)}; free: "
                             f"{', '.join(s for s in valid if s not in self.tuners) or 'none'}")
        self.tuners[site] = module
        return module

    def _transform(self, site: str, x):
        return self.tuners[site](x) if site in self.tuners else x


def attached_modules(model: nn.Module) -> list[tuple[str, Attachable, str]]:
    """(name prefix, host, site) of every module a regime attached anywhere in `model`: its tensors are named
    `prefix + their name in the module`."""
    return [(f"{name}.tuners.{site}." if name else f"tuners.{site}.", host, site)
            for name, host in model.named_modules() if isinstance(host, Attachable) for site in host.tuners]


def attached_parameters(model: nn.Module) -> list[str]:
    """The names of the trainable tensors of every attached module: the tensors a regime injected."""
    return [prefix + name for prefix, host, site in attached_modules(model)
            for name, param in host.tuners[site].named_parameters() if param.requires_grad]
