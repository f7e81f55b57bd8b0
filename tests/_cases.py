"""Factor cases shared by the core value/grad/accumulate tests (fixture `factors` in conftest)."""

FACTORS = {
    "l1_only": (0.013, 0.0),
    "l2_only": (0.0, 0.021),
    "both": (0.013, 0.021),
    "large": (3.5, 1.25),
}
