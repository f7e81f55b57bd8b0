"""Facts about the machine and the software a benchmark ran on, for the CSV."""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
import re
import uuid


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return ""


def fastpenalty_version() -> str:
    import fastpenalty

    return getattr(fastpenalty, "__version__", "") or _package_version("fastpenalty")


def versions() -> dict:
    return {
        "fastpenalty_version": fastpenalty_version(),
        "torch_version": _package_version("torch"),
        "numpy_version": _package_version("numpy"),
        "keras_version": _package_version("keras"),
        "python_version": platform.python_version(),
    }


def provider_version(provider: str, facts: dict) -> str:
    """The version of the library behind a provider name."""
    if provider.startswith("torch"):
        return facts["torch_version"]
    if provider.startswith("keras"):
        return facts["keras_version"]
    if provider.startswith("numpy"):
        return facts["numpy_version"]
    return facts["fastpenalty_version"]


def cpu_model_name() -> str:
    name = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine()
    name = re.sub(r"\((R|TM|tm|r)\)", "", name)
    name = re.sub(r"\s+CPU\s+@.*$", "", name)
    name = re.sub(r"\s+(Processor|CPU)$", "", name)
    return " ".join(name.split())


def cpu_device(threads: int, isa: str) -> str:
    return f"cpu: {cpu_model_name()} ({threads} threads, {isa})"


def cuda_device(torch_module) -> str:
    return f"cuda: {torch_module.cuda.get_device_name()}"


def run_facts(quick: bool) -> dict:
    """Facts shared by every row of one run."""
    facts = {
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run_id": uuid.uuid4().hex[:12],
        "quick": int(bool(quick)),
    }
    facts.update(versions())
    return facts
