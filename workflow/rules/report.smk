# Every run's metrics -> results/tables.csv (mean +- std over seeds, paper numbers) and figures.


def run_records():
    out = []
    for v, s in all_runs():
        e = experiment(v)
        paper = {m: val for (d, m), val in systems.get(e["system"]).paper.items() if d == e["dataset"]}
        out.append({"dataset": e["dataset"], "system": e["system"], "variant": v, "seed": s,
                    "config_hash": experiment_hash(v), "paper": {**paper, **e["paper"]}, "run_dir": run_dir(v, s)})
    return out


rule aggregate:
    """Collect the metrics of every (experiment, seed) into one table and the figures."""
    input:
        metrics=[f"{run_dir(v, s)}/metrics.json" for v, s in all_runs()],
        info=[f"{run_dir(v, s)}/train.json" for v, s in all_runs()],
    output:
        table=report("results/tables.csv", caption="../report/tables.rst", category="Results"),
        per_seed="results/per_seed.csv",
        stages="results/stage_times.csv",
        bars=report("results/figures/primary_metric.png", caption="../report/primary_metric.rst", category="Figures"),
        curves=report("results/figures/training_curves.png", caption="../report/training_curves.rst", category="Figures"),
    params:
        runs=lambda w: q(run_records()),
    conda:
        CONDA_ENV
    log:
        "logs/aggregate.log",
    benchmark:
        "benchmarks/aggregate.tsv"
    localrule: True
    shell:
        "{SB} aggregate --runs {params.runs} --table {output.table} --figures $(dirname {output.bars}) --benchmarks benchmarks > {log} 2>&1"
