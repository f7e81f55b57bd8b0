"""The speed targets of the project, checked on the median (p50) of a figure.

Targets are about memory-bound sizes: below MIN_ELEMENTS, call overheads dominate and no
target is claimed. Where a provider has several variants (torch_foreach[alloc], [scratch])
the target is checked against its fastest one.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_ELEMENTS = 10_000_000


@dataclass(frozen=True)
class Target:
    api: str
    mode: str
    provider: str
    metric: str
    threshold: float
    text: str


TARGETS = (
    Target("numpy", "accumulate", "fastpenalty", "fraction_of_probe", 0.93, "accumulate_ >= 93% of the g+=w probe"),
    Target("numpy", "value", "fastpenalty", "fraction_of_probe", 0.95, "value >= 95% of the read probe"),
    Target("torch", "accumulate", "fastpenalty", "fraction_of_probe", 0.80, "accumulate_ >= 80% of torch._foreach_add_"),
    Target("torch", "accumulate", "torch_eager", "fastpenalty_speedup", 10.0, ">= 10x torch eager autograd"),
    Target("torch", "accumulate", "torch_foreach", "fastpenalty_speedup", 5.0, ">= 5x the best torch._foreach_* code"),
    Target("torch", "accumulate", "torch_compile", "fastpenalty_speedup", 1.0, "faster than torch.compile"),
    Target("torch", "value", "torch_compile", "fastpenalty_speedup", 1.0,
           "value never slower than torch.compile of the same list"),
)


@dataclass(frozen=True)
class Verdict:
    target: Target
    device: str
    case: str
    dtype: str
    isa: str
    value: float
    passed: bool

    @property
    def where(self) -> str:
        return f"{self.case} {self.dtype}" + (f" {self.isa}" if self.isa else "")


def _key(row) -> tuple:
    return (row["device"], row["case"], row["api"], row["dtype"], row.get("isa", ""))


def check(rows: list) -> list:
    """A Verdict for every target that applies to a measured group and peer in ``rows``."""
    verdicts = []
    for key in sorted({_key(r) for r in rows}):
        device, case, api, dtype, isa = key
        case_rows = [r for r in rows if _key(r) == key]
        if max(int(r["n_elements"]) for r in case_rows) < MIN_ELEMENTS:
            continue
        for target in TARGETS:
            if target.api != api or not any(r["mode"] == target.mode for r in case_rows):
                continue
            figures = [r["p50"] for r in case_rows
                       if r["mode"] == target.mode and r["provider"] == target.provider and r["metric"] == target.metric
                       and (target.provider != "fastpenalty" or r["variant"] == "")]
            if not figures:  # that peer was not measured in this run
                continue
            value = min(figures)  # the fastest variant of a peer, the hardest comparison
            verdicts.append(Verdict(target, device, case, dtype, isa, value, value >= target.threshold))
    return verdicts
