"""The committee file: which key sets form the peg committee and the policy they publish.

Configuration from the notaries' operators, never from the network. Every
``canal notaryd`` of the committee and the peg coordinator (``canal peg``) read
the same file::

    {
      "committees": [ {"epoch": 0, "threshold": 2, "pubkeys": [...], "windows": [...]} ],
      "policy": {"min_confirmations": {"alpha": 6, "beta": 24},
                 "release_fee_sat": {"alpha": 2000, "beta": 1000}}
    }

Committees are :meth:`relay.committee.Committee.to_dict` records; the policy is
:class:`relay.notary.PegPolicy`'s published part.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from base_chain.params import get_params
from base_chain.rpc.tls import write_atomic

from .committee import Committee, CommitteeError
from .notary import PegPolicy

__all__ = ["PegConfig", "load_peg_config", "write_peg_config"]


@dataclass(frozen=True)
class PegConfig:
    committees: tuple[Committee, ...]
    policy: PegPolicy

    @property
    def current(self) -> Committee:
        """The newest committee (highest epoch): the one whose deposit addresses are handed out."""
        return max(self.committees, key=lambda c: c.epoch)

    def committee(self, epoch: int) -> Committee | None:
        return next((c for c in self.committees if c.epoch == epoch), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "committees": [c.to_dict() for c in self.committees],
            "policy": {
                "min_confirmations": dict(sorted(self.policy.min_confirmations.items())),
                "release_fee_sat": dict(sorted(self.policy.release_fee_sat.items())),
            },
        }


def _per_chain(d: Any, what: str) -> dict[str, int]:
    if not isinstance(d, Mapping):
        raise CommitteeError(f"policy.{what} must map chain names to integers")
    out = {}
    for chain, v in d.items():
        get_params(str(chain))  # ValueError for an unknown chain
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise CommitteeError(f"policy.{what}.{chain} must be an integer >= 0, got {v!r}")
        out[str(chain)] = v
    return out


def load_peg_config(path: Path) -> PegConfig:
    """Read a committee file; raises CommitteeError (or ValueError for an unknown chain) naming the fault."""
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CommitteeError(f"cannot read committee file {path}: {e}") from None
    if not isinstance(d, dict) or not isinstance(d.get("committees"), list) or not d["committees"]:
        raise CommitteeError(f"{path}: expected {{'committees': [...], 'policy': {{...}}}}")
    committees = tuple(Committee.from_dict(c) for c in d["committees"])
    if len({c.epoch for c in committees}) != len(committees):
        raise CommitteeError(f"{path}: two committees share an epoch")
    policy = d.get("policy")
    if not isinstance(policy, dict):
        raise CommitteeError(f"{path}: no policy")
    return PegConfig(
        committees,
        PegPolicy(
            min_confirmations=_per_chain(policy.get("min_confirmations"), "min_confirmations"),
            release_fee_sat=_per_chain(policy.get("release_fee_sat"), "release_fee_sat"),
        ),
    )


def write_peg_config(path: Path, committees: Sequence[Committee], policy: PegPolicy) -> PegConfig:
    config = PegConfig(tuple(committees), policy)
    write_atomic(path, (json.dumps(config.to_dict(), indent=2) + "\n").encode(), 0o644)
    return config
