"""Where each file of a workspace lives: the one map of a user's folder.

A workspace is the folder of its ``models.conf`` (``../shared/examples/workspace`` is the
model)::

    models.conf                          the profiles (production, then bench-*)
    README.md                            the user's; fit keeps its ``## Models`` table
    docs/client-settings.md              capability and sampler tables, one section per profile
    benchmarks/evalplus/bench-client.conf  per bench profile: SYSTEM_PROMPT where one is needed
    benchmarks/evalplus/display-names.json  bench profile -> the name the report shows
    benchmarks/evalplus/reference-scores.json  bench profile -> published pass@1 per dataset
    benchmarks/evalplus/README.md        the bench profiles table
    benchmarks/evalplus/results/         raw EvalPlus runs, one folder each, and REPORT.md
    runs/                                fit test / fit tune records (profiles.runs)
    .fit/                                fit's own state (tuning studies, fit add progress)

Every path a command touches comes from here, so the layout is stated once.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

BENCH_PREFIX = "bench-"


class Workspace(BaseModel):
    """The paths of one workspace, rooted at its models.conf's folder."""

    model_config = ConfigDict(frozen=True)

    conf: Path

    @classmethod
    def of(cls, conf_path: str | Path) -> Workspace:
        return cls(conf=Path(conf_path))

    @property
    def root(self) -> Path:
        return self.conf.resolve().parent

    @property
    def readme(self) -> Path:
        return self.root / "README.md"

    @property
    def client_settings(self) -> Path:
        return self.root / "docs" / "client-settings.md"

    @property
    def bench_dir(self) -> Path:
        return self.root / "benchmarks" / "evalplus"

    @property
    def bench_client(self) -> Path:
        return self.bench_dir / "bench-client.conf"

    @property
    def display_names(self) -> Path:
        return self.bench_dir / "display-names.json"

    @property
    def reference_scores(self) -> Path:
        return self.bench_dir / "reference-scores.json"

    @property
    def bench_readme(self) -> Path:
        return self.bench_dir / "README.md"

    @property
    def results(self) -> Path:
        return self.bench_dir / "results"

    @property
    def report(self) -> Path:
        return self.results / "REPORT.md"

    @property
    def state_dir(self) -> Path:
        return self.root / ".fit"


def is_bench_profile(profile_id: str) -> bool:
    """Bench profiles are found by their prefix; nothing else registers them."""
    return profile_id.startswith(BENCH_PREFIX)


def bench_id(profile_id: str) -> str:
    """``[bench-<id>]`` of production profile ``<id>``."""
    return BENCH_PREFIX + profile_id


def production_id(bench_profile_id: str) -> str:
    return bench_profile_id[len(BENCH_PREFIX) :]
