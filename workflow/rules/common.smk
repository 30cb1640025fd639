# Config validation, the jobs' environment and the Plan whose methods the rules call (workflow/lib/sbplan.py).
# Every rule is a thin shell call into `python -m soundbench`.
import os
import re
import sys
from pathlib import Path

from snakemake.utils import validate

ROOT = Path(workflow.basedir)
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "workflow" / "lib")]

from soundbench import configuration, datasets as dataset_registry  # noqa: E402
from sbplan import Plan, job_environment  # noqa: E402

# Jobs run `python -m soundbench` from this checkout (src first on PYTHONPATH) with the interpreter that runs
# Snakemake (its directory first on PATH), unless a conda env that a job activates (--sdm conda) comes first.
# Declared as envvars: Snakemake also passes them to the jobs of executors that do not inherit the environment.
os.environ.update(job_environment(os.environ, ROOT / "src", sys.executable))


envvars:
    "PATH",
    "PYTHONPATH",


configuration.check_schema(config, ROOT / "workflow" / "schemas" / "config.schema.yaml")
validate(config, schema="../schemas/config.schema.yaml")  # fills the defaults
configuration.check_references(config)

plan = Plan(config)
CONDA_ENV = f"../../envs/{config['conda_env']}.yaml"  # used with --sdm conda


wildcard_constraints:
    # the published datasets and the names of configured own data (type: audiofolder)
    dataset="|".join(re.escape(n) for n in sorted(set(dataset_registry.NAMES) | set(config.get("datasets", {})))),
    system="[a-z0-9_]+",
    variant="[A-Za-z0-9_.-]+",
    seed=r"\d+",
    shard=r"\d+",
    feature="[A-Za-z0-9_.-]+",
