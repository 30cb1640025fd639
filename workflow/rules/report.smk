# Every run's metrics -> results/tables.csv (mean +- std over seeds, paper numbers) and figures.


rule aggregate:
    """Collect the metrics of every (experiment, seed) into one table and the figures."""
    input:
        metrics=plan.run_files("metrics.json"),
        info=plan.run_files("train.json"),
    output:
        table=report("results/tables.csv", caption="../report/tables.rst", category="Results"),
        per_seed="results/per_seed.csv",
        stages="results/stage_times.csv",
        bars=report("results/figures/primary_metric.png", caption="../report/primary_metric.rst", category="Figures"),
        curves=report("results/figures/training_curves.png", caption="../report/training_curves.rst", category="Figures"),
    params:
        runs=plan.runs_arg,
    conda:
        CONDA_ENV
    log:
        "logs/aggregate.log",
    benchmark:
        "benchmarks/aggregate.tsv"
    localrule: True
    shell:
        "python -m soundbench aggregate --runs {params.runs} --table {output.table} --figures $(dirname {output.bars}) "
        "--benchmarks benchmarks > {log} 2>&1"
